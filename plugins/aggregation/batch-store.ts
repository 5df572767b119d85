/**
 * Batch files and failed batches on disk (SPEC §5; seed "Batch File Format" and "Failed Batch
 * Format"). Batch files are written once, atomically (write-file-atomic: temp file, fsync,
 * rename) followed by an fsync of `aggregated/` so the rename survives a power loss, and never
 * rewritten. This module knows nothing about triggers or the journal.
 */
import { createHash } from 'node:crypto';
import type { FsPort } from '../../src/core/fs-port.js';
import { canonicalJson } from './entry.js';
import type { BatchFile, Entry } from './types.js';

/** Format version written into every batch file. */
export const BATCH_VERSION = '2.0.0';

/** `sha256:<hex>` over the canonical JSON (sorted keys) of `entries`. */
export function entriesChecksum(entries: readonly Entry[]): string {
  let text = '[';
  for (let i = 0; i < entries.length; i++) text += (i === 0 ? '' : ',') + canonicalEntryJson(entries[i]);
  return 'sha256:' + createHash('sha256').update(`${text}]`).digest('hex');
}

/** The members of a stored entry, in canonical (sorted) order. */
const ENTRY_KEYS = ['action', 'entryId', 'metadata', 'timestamp', 'userId'] as const;
const ENTRY_KEY_SET: ReadonlySet<string> = new Set(ENTRY_KEYS);

/**
 * canonicalJson of one entry, written member by member for the stored shape (only the five
 * entry fields; text ids, a number timestamp) — a report verifies 1M entries' checksums, and
 * this skips copying each entry into key order. Anything else goes through canonicalJson.
 */
function canonicalEntryJson(entry: unknown): string {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry) || Object.getPrototypeOf(entry) !== Object.prototype) return canonicalJson(entry);
  const e = entry as Record<string, unknown>;
  for (const key in e) if (!ENTRY_KEY_SET.has(key)) return canonicalJson(entry);
  if (typeof e.entryId !== 'string' || typeof e.userId !== 'string' || typeof e.action !== 'string' || typeof e.timestamp !== 'number') return canonicalJson(entry);
  let text = `{"action":${JSON.stringify(e.action)},"entryId":${JSON.stringify(e.entryId)}`;
  if (e.metadata !== undefined && typeof e.metadata !== 'function' && typeof e.metadata !== 'symbol') text += `,"metadata":${canonicalJson(e.metadata)}`;
  return `${text},"timestamp":${JSON.stringify(e.timestamp)},"userId":${JSON.stringify(e.userId)}}`;
}

/** Builds the batch document; `timestamp` is the flush time in epoch ms. */
export function makeBatch(batchId: string, timestamp: number, entries: Entry[], recovered = false): BatchFile {
  return { batchId, timestamp, version: BATCH_VERSION, entries, entryCount: entries.length, recovered, checksum: entriesChecksum(entries) };
}

/** Writes a batch file durably (atomic + directory fsync). Throws the port's error on failure. */
export function writeBatchFile(fsPort: FsPort, file: string, batch: BatchFile): void {
  fsPort.writeFileDurable(file, JSON.stringify(batch));
}

/** Why a stored batch file cannot be trusted. */
export type BatchProblem = 'unreadable' | 'not-json' | 'bad-shape' | 'checksum' | 'entry-count' | 'newer-version';

/**
 * Reads and verifies a batch (or failed batch) file. Returns the document, or the problem;
 * throws only for I/O errors other than ENOENT (which returns undefined).
 */
export function readBatchFile(fsPort: FsPort, file: string): { batch: BatchFile } | { problem: BatchProblem } | undefined {
  let raw: Buffer;
  try {
    raw = fsPort.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let doc: unknown;
  try {
    // A UTF-8 byte-order mark (an editor's touch) does not make a batch unreadable.
    doc = JSON.parse(raw.toString('utf8').replace(/^\uFEFF/, ''));
  } catch {
    return { problem: 'not-json' };
  }
  const batch = doc as BatchFile;
  if (typeof doc !== 'object' || doc === null || typeof batch.batchId !== 'string' || !Array.isArray(batch.entries)) {
    return { problem: 'bad-shape' };
  }
  const major = Number.parseInt(String(batch.version ?? '').split('.')[0] ?? '', 10);
  if (major > 2) return { problem: 'newer-version' };
  if (batch.entryCount !== batch.entries.length) return { problem: 'entry-count' };
  if (batch.checksum !== entriesChecksum(batch.entries)) return { problem: 'checksum' };
  return { batch };
}

/** A failed batch awaiting the recovery pass (seed "Failed Batch Format" + integrity fields). */
export interface FailedBatchFile extends BatchFile {
  /** Epoch ms of the first failure. */
  failedAt: number;
  /** Attempts made by the recovery pass so far (the in-process attempts are not counted). */
  retryCount: number;
  /** Epoch ms of the last recovery attempt, or null. */
  lastRetryAt: number | null;
  /** Message of the last error. */
  lastError: string;
  /** Epoch ms before which the recovery pass leaves it alone. */
  nextRetryAt: number;
}
