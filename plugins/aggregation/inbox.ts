/**
 * The inbox: a way to acknowledge entries without the store lock. When the lock stays busy
 * (many processes at once, a long flush), `aggregate` writes its validated entries to
 * `aggregated/inbox/<epoch ms>-<pid>-<8 hex>.ndjson` atomically and durably (temp file, fsync,
 * rename, directory fsync) and returns: a hook never waits long, and nothing is lost to a lock
 * timeout. Whoever next holds the lock merges every inbox file into the journal — duplicates
 * are dropped there, by entry id, as for any call — and then removes the file. A crash between
 * the merge and the removal only means the next merge finds every entry a duplicate.
 *
 * Format: one entry (the validated, normalized shape of plugins/aggregation/types.ts) per line.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import type { Entry } from './types.js';
import type { StoreLayout } from './layout.js';

/** How long `aggregate` waits for the store lock before it queues in the inbox, ms. */
export const INBOX_AFTER_MS = 2_000;

const INBOX_FILE = /^\d{13}-\d+-[0-9a-f]{8}\.ndjson$/;

export const inboxDir = (layout: StoreLayout): string => path.join(layout.aggregated, 'inbox');

/** Writes `entries` durably to a new inbox file; returns its path relative to the data root. */
export function queueInInbox(ctx: HandlerContext, layout: StoreLayout, entries: readonly Entry[]): string {
  const dir = inboxDir(layout);
  ctx.fs.mkdirp(dir);
  const file = path.join(dir, `${String(ctx.now()).padStart(13, '0')}-${process.pid}-${randomBytes(4).toString('hex')}.ndjson`);
  ctx.fs.writeFileDurable(file, entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
  return path.relative(ctx.dataRoot, file);
}

/**
 * Inbox files, oldest first, with their entries. A file that does not parse (disk damage: the
 * writes are atomic) is returned with `entries: undefined` for the caller to quarantine.
 * Call with the store lock held.
 */
export function readInbox(ctx: HandlerContext, layout: StoreLayout): Array<{ file: string; entries: Entry[] | undefined }> {
  const dir = inboxDir(layout);
  return ctx.fs
    .readdir(dir)
    .filter((name) => INBOX_FILE.test(name))
    .sort()
    .map((name) => {
      const file = path.join(dir, name);
      try {
        const text = ctx.fs.readFile(file).toString('utf8');
        return { file, entries: text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Entry) };
      } catch {
        return { file, entries: undefined };
      }
    });
}
