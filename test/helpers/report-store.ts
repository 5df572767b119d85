/**
 * Test helpers for reports: batch, failed, abandoned and team batch files written directly in
 * the store's formats (plugins/aggregation/batch-store.ts), and entries shaped like the sources'.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeBatch, type FailedBatchFile } from '../../plugins/aggregation/batch-store.js';
import { storeLayout } from '../../plugins/aggregation/layout.js';
import type { BatchFile, Entry } from '../../plugins/aggregation/types.js';

let counter = 0;
/** A fresh batch id `batch_<13 digits>_<8 hex>` (unique within the process). */
export function nextBatchId(at = Date.UTC(2026, 2, 10)): string {
  counter++;
  return `batch_${String(at + counter).padStart(13, '0')}_${counter.toString(16).padStart(8, '0')}`;
}

function write(file: string, doc: unknown): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });
  return file;
}

/**
 * Writes `aggregated/<id>.json` (or `team/<clone>/<id>.json` with `clone`), flushed at `at`
 * (epoch ms, default 2026-03-10T00:00Z); returns its path.
 */
export function writeBatch(dataRoot: string, entries: Entry[], options: { clone?: string; at?: number; mutate?: (b: BatchFile) => unknown } = {}): string {
  const id = nextBatchId(options.at);
  const batch = makeBatch(id, options.at ?? Date.UTC(2026, 2, 10), entries);
  const dir = options.clone === undefined ? storeLayout(dataRoot).aggregated : path.join(dataRoot, 'team', options.clone);
  return write(path.join(dir, `${id}.json`), options.mutate ? options.mutate(batch) : batch);
}

function failedDoc(entries: Entry[], at = Date.UTC(2026, 2, 10)): { id: string; doc: FailedBatchFile } {
  const id = nextBatchId(at);
  return { id, doc: { ...makeBatch(id, at, entries), failedAt: at, retryCount: 0, lastRetryAt: null, lastError: 'EIO: test', nextRetryAt: at } };
}

/** Writes `aggregated/recovery/<id>.failed.json`, flushed at `at` (epoch ms, default 2026-03-10T00:00Z). */
export function writeFailed(dataRoot: string, entries: Entry[], at?: number): string {
  const { id, doc } = failedDoc(entries, at);
  return write(path.join(storeLayout(dataRoot).recovery, `${id}.failed.json`), doc);
}

/** Writes `aggregated/recovery/abandoned/<id>.abandoned.json`. */
export function writeAbandoned(dataRoot: string, entries: Entry[]): string {
  const { id, doc } = failedDoc(entries);
  return write(path.join(storeLayout(dataRoot).abandoned, `${id}.abandoned.json`), { ...doc, retryCount: 5 });
}

/** A `commit` entry as the git sources make it; `tz` as git prints it (`+0200`). */
export function commit(sha: string, userId: string, iso: string, extra: { tz?: string; branch?: string | null } = {}): Entry {
  return {
    entryId: `commit:${sha}`,
    userId,
    action: 'commit',
    timestamp: Date.parse(iso),
    metadata: { branch: extra.branch === undefined ? 'main' : extra.branch, deletions: 1, filesChanged: 1, insertions: 2, parents: [], sha, tz: extra.tz ?? '+0000' },
  };
}

/** A `time-tracking` entry as the sessions source makes it (`durationMs` in ms). */
export function session(userId: string, sessionId: string, iso: string, durationMs: number, taskId?: string): Entry {
  const metadata: Record<string, unknown> = { duration: durationMs, sessionId };
  if (taskId !== undefined) metadata.taskId = taskId;
  return { entryId: `session:${userId}:${sessionId}:${durationMs}`, userId, action: 'time-tracking', timestamp: Date.parse(iso), metadata };
}
