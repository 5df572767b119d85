/**
 * Batch checksum verification for reports, partly off the main thread. Verifying a checksum
 * means hashing the canonical JSON of a file's entries, about a third of the CPU time of a report
 * over a large store. The main thread parses each file anyway to count it; worker threads verify
 * copies of the same bytes meanwhile (parsing them again), as long as they keep up: when more
 * than {@link MAX_OUTSTANDING} files wait for a worker (no idle CPU), the main thread verifies
 * the entries it has parsed itself, which costs less than a worker's parse + verify. With few
 * files, or one CPU, everything is verified in the calling thread.
 *
 * The bytes come from the caller (read through the file port), so workers touch no disk.
 */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { entriesChecksum, type BatchProblem } from '../batch-store.js';
import type { Entry } from '../types.js';

/** Below this many files, checksums are verified in the calling thread. */
export const WORKER_MIN_FILES = 200;
/** At most this many worker threads. */
export const MAX_WORKERS = 4;
/** Files sent to a worker per message. */
const CHUNK_FILES = 16;
/** Files queued for the workers beyond which the caller verifies in its own thread. */
export const MAX_OUTSTANDING = 64;

export interface ChecksumVerifier {
  /**
   * Verifies batch file number `id` (the caller's numbering): `raw` its bytes, `entries` and
   * `checksum` as the caller parsed them.
   */
  submit(id: number, raw: Buffer, entries: readonly Entry[], checksum: string): void;
  /** Problems by file id, once every submitted file is verified; stops the workers. */
  finish(): Promise<Map<number, BatchProblem>>;
}

/** Worker count for `files` files on this machine: 0 (inline) or 1…MAX_WORKERS. */
export function workersFor(files: number): number {
  const cpus = os.availableParallelism();
  if (files < WORKER_MIN_FILES || cpus < 2) return 0;
  return Math.min(MAX_WORKERS, cpus - 1);
}

/** A verifier with `workers` worker threads (0: inline). */
export function createChecksumVerifier(workers: number): ChecksumVerifier {
  const problems = new Map<number, BatchProblem>();
  const inline = (id: number, entries: readonly Entry[], checksum: string) => {
    if (entriesChecksum(entries) !== checksum) problems.set(id, 'checksum');
  };
  if (workers === 0) return { submit: (id, _raw, entries, checksum) => inline(id, entries, checksum), finish: async () => problems };
  const pool = Array.from({ length: workers }, () => new Worker(new URL('./checksum-worker.js', import.meta.url)));
  let failure: Error | undefined;
  let outstanding = 0;
  let settle: (() => void) | undefined;
  for (const worker of pool) {
    worker.on('message', (results: Array<{ id: number; problem?: BatchProblem }>) => {
      for (const r of results) if (r.problem) problems.set(r.id, r.problem);
      outstanding -= results.length;
      if (outstanding === 0) settle?.();
    });
    worker.on('error', (error) => {
      failure ??= error;
      settle?.();
    });
  }
  let next = 0;
  let chunk: Array<{ id: number; bytes: Uint8Array }> = [];
  const flush = () => {
    if (chunk.length === 0) return;
    const worker = pool[next++ % pool.length]!;
    // Copies, transferred: a Buffer from the file port may share a pooled ArrayBuffer.
    worker.postMessage(chunk, chunk.map((job) => job.bytes.buffer as ArrayBuffer));
    chunk = [];
  };
  return {
    submit(id, raw, entries, checksum) {
      if (outstanding >= MAX_OUTSTANDING || failure) return inline(id, entries, checksum);
      outstanding++;
      chunk.push({ id, bytes: new Uint8Array(raw) });
      if (chunk.length === CHUNK_FILES) flush();
    },
    async finish() {
      flush();
      try {
        if (outstanding > 0 && !failure) await new Promise<void>((resolve) => (settle = resolve));
        if (failure) throw new Error(`checksum verification failed in a worker thread: ${failure.message}`, { cause: failure });
        return problems;
      } finally {
        await Promise.all(pool.map((worker) => worker.terminate()));
      }
    },
  };
}
