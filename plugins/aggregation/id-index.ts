/**
 * The entry-id index: which entry ids are already stored in a batch (or failed batch), so
 * duplicate detection never reads every batch file (SPEC §4, issue 2 item 4). Ids are spread
 * over 256 shard files `aggregated/index/ids-<xx>.tsv` by CRC-32 of the id, so a lookup reads
 * one small file per distinct shard, whatever the history size.
 *
 * Line format: `\n<entryId>\t<batchId>` appended; every write starts with a newline so a torn
 * earlier write can never glue onto a new id, and a line without a tab (torn) is ignored.
 * Shards are fsynced before the journal forgets the ids (see Journal.compact).
 */
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { FsPort } from '../../src/core/fs-port.js';

export const shardOf = (entryId: string): string => (crc32(entryId) & 0xff).toString(16).padStart(2, '0');

export interface IdIndex {
  /**
   * Returns the subset of `ids` present in the index. Reads each needed shard once, and on
   * later lookups only the bytes appended to it since (shards are append-only), so one index
   * can serve several holds of the store lock in one process (a streamed ingest) and still see
   * every id other processes added in between. Must be called under the store lock.
   */
  lookup(ids: Iterable<string>): Set<string>;
  /**
   * Appends pairs and fsyncs every touched shard — all shards' fsyncs overlapping (group
   * commit) — and the directory when a shard was created. Throws the port's error.
   */
  add(pairs: ReadonlyArray<{ entryId: string; batchId: string }>): Promise<void>;
}

export function openIdIndex(dir: string, fsPort: FsPort): IdIndex {
  const shardFile = (shard: string) => path.join(dir, `ids-${shard}.tsv`);
  /** Ids of each shard read so far, and how many bytes of its file were read. */
  const loaded = new Map<string, { ids: Set<string>; bytes: number }>();
  const loadShard = (shard: string): Set<string> => {
    let state = loaded.get(shard);
    if (!state) loaded.set(shard, (state = { ids: new Set(), bytes: 0 }));
    const size = fsPort.stat(shardFile(shard))?.size ?? 0;
    if (size <= state.bytes) return state.ids;
    let data: Buffer;
    try {
      data = fsPort.readFile(shardFile(shard));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return state.ids;
    }
    // Every write starts with a newline, so the appended tail splits into whole lines.
    for (const line of data.toString('utf8', state.bytes).split('\n')) {
      const tab = line.indexOf('\t');
      if (tab > 0) state.ids.add(line.slice(0, tab));
    }
    state.bytes = data.length;
    return state.ids;
  };
  const checked = new Set<string>();
  return {
    lookup(ids) {
      const found = new Set<string>();
      checked.clear();
      for (const id of ids) {
        const shard = shardOf(id);
        const set = checked.has(shard) ? loaded.get(shard)!.ids : (checked.add(shard), loadShard(shard));
        if (set.has(id)) found.add(id);
      }
      return found;
    },
    async add(pairs) {
      if (pairs.length === 0) return;
      fsPort.mkdirp(dir);
      const byShard = new Map<string, string[]>();
      for (const { entryId, batchId } of pairs) {
        const shard = shardOf(entryId);
        let lines = byShard.get(shard);
        if (!lines) byShard.set(shard, (lines = []));
        lines.push(`${entryId}\t${batchId}`);
        loaded.get(shard)?.ids.add(entryId);
      }
      let created = false;
      const appends: Array<{ file: string; data: Buffer }> = [];
      for (const [shard, lines] of byShard) {
        const file = shardFile(shard);
        if (!fsPort.stat(file)) created = true;
        appends.push({ file, data: Buffer.from('\n' + lines.join('\n')) });
      }
      await fsPort.appendAllDurable(appends);
      if (created) fsPort.fsyncDir(dir);
    },
  };
}
