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

/** Shard names by number: `SHARD_NAMES[crc32(id) & 0xff]` ("00"…"ff"). */
const SHARD_NAMES: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export const shardOf = (entryId: string): string => SHARD_NAMES[crc32(entryId) & 0xff]!;

export interface IdIndex {
  /**
   * Returns the subset of `ids` present in the index. Reads each needed shard once, and on
   * later lookups only the bytes appended to it since (shards are append-only), so one index
   * can serve several holds of the store lock in one process (a streamed ingest) and still see
   * every id other processes added in between. Must be called under the store lock.
   */
  lookup(ids: Iterable<string>): Set<string>;
  /**
   * The batch id each of `ids` is recorded under (the first line of the id, when a damaged
   * store lists it twice); ids not in the index are absent from the map. Reads each needed
   * shard whole (for `aggregate-migrate`, not a hot path).
   */
  owners(ids: Iterable<string>): Map<string, string>;
  /**
   * Appends pairs and fsyncs every touched shard — all shards' fsyncs overlapping (group
   * commit) — and then the directory (a shard may have been created by a killed process).
   * Throws the port's error.
   */
  add(pairs: ReadonlyArray<{ entryId: string; batchId: string }>): Promise<void>;
  /**
   * The first half of {@link add} for whole batches, done ahead: the lines each shard will get
   * (CPU only; nothing is written, and the ids' fingerprints are taken in at once, which can
   * only make a later lookup read a shard to confirm). It yields to the event loop every
   * `yieldEvery` ids (default: never), so a group write in flight keeps its threads busy: the
   * bulk import computes its index lines while its batch files are written. Pass the result
   * to {@link commit}, or drop it.
   */
  prepare(batches: ReadonlyArray<{ batchId: string; entryIds: readonly string[] }>, options?: { yieldEvery?: number }): Promise<PreparedAdd>;
  /** The second half of {@link add}: appends and fsyncs what {@link prepare} computed. Throws the port's error. */
  commit(prepared: PreparedAdd): Promise<void>;
}

/** Lines for the index computed by {@link IdIndex.prepare}, per shard number. */
export interface PreparedAdd {
  readonly ids: number;
  readonly shards: ReadonlyArray<{ shard: number; data: Buffer }>;
}

/** FNV-1a over UTF-16 code units: a second 32-bit hash of an id, independent of its CRC-32. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Fingerprints of ids — CRC-32 and FNV-1a, 64 bits — in an open-addressing hash set held in
 * one Uint32Array (linear probing, at most half full): about 16 bytes per id instead of ~100
 * for a Set of strings, so a streamed ingest of 1,000,000 entries keeps the whole index in
 * ~32 MB. A hit only means "maybe": the caller confirms it against the shard's text, so a
 * fingerprint collision can never turn a new entry into a duplicate.
 */
class FingerprintSet {
  private table = new Uint32Array(2 * 4096);
  private count = 0;

  has(a: number, b: number): boolean {
    const mask = this.table.length / 2 - 1;
    for (let slot = b & mask; ; slot = (slot + 1) & mask) {
      const x = this.table[2 * slot]!;
      const y = this.table[2 * slot + 1]!;
      if (x === 0 && y === 0) return false;
      if (x === a && y === b) return true;
    }
  }

  /** Makes room for `n` more fingerprints at once (one rehash instead of one per doubling). */
  reserve(n: number): void {
    let slots = this.table.length / 2;
    while ((this.count + n) * 2 > slots) slots *= 2;
    if (slots !== this.table.length / 2) this.grow(slots);
  }

  add(a: number, b: number): void {
    if (a === 0 && b === 0) b = 1; // (0, 0) marks an empty slot
    if (this.has(a, b)) return;
    if ((this.count + 1) * 2 > this.table.length / 2) this.grow();
    this.insert(a, b);
    this.count++;
  }

  private insert(a: number, b: number): void {
    const mask = this.table.length / 2 - 1;
    let slot = b & mask;
    while (this.table[2 * slot] !== 0 || this.table[2 * slot + 1] !== 0) slot = (slot + 1) & mask;
    this.table[2 * slot] = a;
    this.table[2 * slot + 1] = b;
  }

  private grow(slots = this.table.length): void {
    const old = this.table;
    this.table = new Uint32Array(slots * 2);
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0 || old[i + 1] !== 0) this.insert(old[i]!, old[i + 1]!);
  }
}

export function openIdIndex(dir: string, fsPort: FsPort): IdIndex {
  const shardFile = (shard: string) => path.join(dir, `ids-${shard}.tsv`);
  const fingerprints = new FingerprintSet();
  /** Bytes of each shard file already fingerprinted (shards are append-only). */
  const readBytes = new Map<string, number>();
  const readShard = (shard: string): Buffer | undefined => {
    try {
      return fsPort.readFile(shardFile(shard));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return undefined;
    }
  };
  /** Fingerprints the bytes appended to `shard` since the last refresh. */
  const refresh = (shard: string): void => {
    const done = readBytes.get(shard) ?? 0;
    const size = fsPort.stat(shardFile(shard))?.size ?? 0;
    if (size <= done) return;
    let data: Buffer;
    try {
      data = fsPort.readFileFrom(shardFile(shard), done);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return;
    }
    // Every write starts with a newline, so the appended tail splits into whole lines.
    for (const line of data.toString('utf8').split('\n')) {
      const tab = line.indexOf('\t');
      if (tab > 0) {
        const id = line.slice(0, tab);
        fingerprints.add(crc32(id), fnv1a(id));
      }
    }
    readBytes.set(shard, done + data.length);
  };
  /** The ids of the last lookup with their CRC-32s and FNV-1a hashes, for the add that usually follows it. */
  let lastLookup: { ids: readonly string[]; hashes: Uint32Array; fnvs: Uint32Array } | undefined;
  /**
   * Lines to append, built id by id. The hashes of the last lookup are reused for the same ids
   * in the same order (ingestBulk adds a subsequence of what it looked up): each id is hashed
   * once per call, not twice. `expected`: how many ids will come (room is made for them).
   */
  const startPrepare = (expected: number) => {
    const last = lastLookup;
    lastLookup = undefined;
    fingerprints.reserve(expected);
    let j = 0;
    let ids = 0;
    const lines: Array<string[] | undefined> = new Array(256);
    return {
      line(entryId: string, batchId: string): void {
        if (last) while (j < last.ids.length && last.ids[j] !== entryId) j++;
        const known = last !== undefined && j < last.ids.length;
        const a = known ? last.hashes[j]! : crc32(entryId);
        (lines[a & 0xff] ??= []).push(`${entryId}\t${batchId}`);
        fingerprints.add(a, known ? last.fnvs[j]! : fnv1a(entryId));
        ids++;
      },
      finish(): PreparedAdd {
        const shards: Array<{ shard: number; data: Buffer }> = [];
        for (let shard = 0; shard < 256; shard++) {
          const shardLines = lines[shard];
          if (shardLines) shards.push({ shard, data: Buffer.from('\n' + shardLines.join('\n')) });
        }
        return { ids, shards };
      },
    };
  };
  const commitPrepared = async (prepared: PreparedAdd): Promise<void> => {
    if (prepared.shards.length === 0) return;
    fsPort.mkdirp(dir);
    // Take in what others appended first; then our own lines need no reading back (they are
    // fingerprinted already): a streamed ingest's next lookup reads only others' lines.
    for (const { shard } of prepared.shards) refresh(SHARD_NAMES[shard]!);
    await fsPort.appendAllDurable(prepared.shards.map(({ shard, data }) => ({ file: shardFile(SHARD_NAMES[shard]!), data })));
    for (const { shard, data } of prepared.shards) readBytes.set(SHARD_NAMES[shard]!, (readBytes.get(SHARD_NAMES[shard]!) ?? 0) + data.length);
    // Always, not only when a shard was created here: a process killed after creating one and
    // before this fsync leaves a shard whose name a power loss would undo (~0.1 ms).
    fsPort.fsyncDir(dir);
  };
  /** entryId → batch id of its first line, for the ids asked for, from the shard's whole text. */
  const ownersInShard = (shard: string, wanted: ReadonlySet<string>, into: Map<string, string>): void => {
    for (const line of (readShard(shard)?.toString('utf8') ?? '').split('\n')) {
      const tab = line.indexOf('\t');
      if (tab <= 0) continue;
      const id = line.slice(0, tab);
      if (wanted.has(id) && !into.has(id)) into.set(id, line.slice(tab + 1));
    }
  };
  return {
    owners(ids) {
      const byShard = new Map<string, Set<string>>();
      for (const id of ids) {
        const shard = shardOf(id);
        let set = byShard.get(shard);
        if (!set) byShard.set(shard, (set = new Set()));
        set.add(id);
      }
      const out = new Map<string, string>();
      for (const [shard, wanted] of byShard) ownersInShard(shard, wanted, out);
      return out;
    },
    lookup(ids) {
      const found = new Set<string>();
      const maybe: Array<string[] | undefined> = new Array(256);
      const refreshed = new Uint8Array(256);
      const list = Array.isArray(ids) ? (ids as string[]) : [...ids];
      const hashes = new Uint32Array(list.length);
      const fnvs = new Uint32Array(list.length);
      for (let i = 0; i < list.length; i++) {
        const id = list[i]!;
        const a = crc32(id);
        const b = fnv1a(id);
        hashes[i] = a;
        fnvs[i] = b;
        const shard = a & 0xff;
        if (refreshed[shard] === 0) {
          refresh(SHARD_NAMES[shard]!);
          refreshed[shard] = 1;
        }
        if (!fingerprints.has(a, b || (a === 0 ? 1 : 0))) continue;
        (maybe[shard] ??= []).push(id);
      }
      lastLookup = { ids: list, hashes, fnvs };
      // Confirm every "maybe" against the shard's text: exact ids only.
      for (let shard = 0; shard < 256; shard++) {
        const candidates = maybe[shard];
        if (!candidates) continue;
        const stored = new Set<string>();
        for (const line of (readShard(SHARD_NAMES[shard]!)?.toString('utf8') ?? '').split('\n')) {
          const tab = line.indexOf('\t');
          if (tab > 0) stored.add(line.slice(0, tab));
        }
        for (const id of candidates) if (stored.has(id)) found.add(id);
      }
      return found;
    },
    async add(pairs) {
      if (pairs.length === 0) return;
      const prepared = startPrepare(pairs.length);
      for (const { entryId, batchId } of pairs) prepared.line(entryId, batchId);
      await commitPrepared(prepared.finish());
    },
    async prepare(batches, options = {}) {
      let expected = 0;
      for (const { entryIds } of batches) expected += entryIds.length;
      const prepared = startPrepare(expected);
      const every = options.yieldEvery ?? Infinity;
      let sinceYield = 0;
      for (const { batchId, entryIds } of batches) {
        for (const id of entryIds) prepared.line(id, batchId);
        sinceYield += entryIds.length;
        if (sinceYield >= every) {
          sinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      return prepared.finish();
    },
    async commit(prepared) {
      await commitPrepared(prepared);
    },
  };
}
