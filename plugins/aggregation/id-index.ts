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
  /** Returns the subset of `ids` present in the index. Reads each needed shard once. */
  lookup(ids: Iterable<string>): Set<string>;
  /**
   * The batch id each of `ids` is recorded under (the first line of the id, when a damaged
   * store lists it twice); ids not in the index are absent from the map.
   */
  owners(ids: Iterable<string>): Map<string, string>;
  /** Appends pairs and fsyncs every touched shard (and the directory for new shards). */
  add(pairs: ReadonlyArray<{ entryId: string; batchId: string }>): void;
}

export function openIdIndex(dir: string, fsPort: FsPort): IdIndex {
  const shardFile = (shard: string) => path.join(dir, `ids-${shard}.tsv`);
  /** Shard → entryId → batch id of its first line. */
  const loaded = new Map<string, Map<string, string>>();
  const loadShard = (shard: string): Map<string, string> => {
    let owners = loaded.get(shard);
    if (owners) return owners;
    owners = new Map();
    let text = '';
    try {
      text = fsPort.readFile(shardFile(shard)).toString('utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    for (const line of text.split('\n')) {
      const tab = line.indexOf('\t');
      if (tab > 0 && !owners.has(line.slice(0, tab))) owners.set(line.slice(0, tab), line.slice(tab + 1));
    }
    loaded.set(shard, owners);
    return owners;
  };
  return {
    lookup(ids) {
      const found = new Set<string>();
      for (const id of ids) if (loadShard(shardOf(id)).has(id)) found.add(id);
      return found;
    },
    owners(ids) {
      const found = new Map<string, string>();
      for (const id of ids) {
        const owner = loadShard(shardOf(id)).get(id);
        if (owner !== undefined) found.set(id, owner);
      }
      return found;
    },
    add(pairs) {
      if (pairs.length === 0) return;
      fsPort.mkdirp(dir);
      const byShard = new Map<string, string[]>();
      for (const { entryId, batchId } of pairs) {
        const shard = shardOf(entryId);
        let lines = byShard.get(shard);
        if (!lines) byShard.set(shard, (lines = []));
        lines.push(`${entryId}\t${batchId}`);
        const owners = loaded.get(shard);
        if (owners && !owners.has(entryId)) owners.set(entryId, batchId);
      }
      let created = false;
      for (const [shard, lines] of byShard) {
        const file = shardFile(shard);
        if (!fsPort.stat(file)) created = true;
        const fd = fsPort.openAppend(file);
        try {
          fsPort.writeAll(fd, Buffer.from('\n' + lines.join('\n')));
          fsPort.fsync(fd);
        } finally {
          fsPort.close(fd);
        }
      }
      if (created) fsPort.fsyncDir(dir);
    },
  };
}
