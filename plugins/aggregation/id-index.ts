/**
 * The entry-id index: which entry ids are already stored in a batch (or failed batch), so
 * duplicate detection never reads every batch file (SPEC §4, issue 2 item 4). Ids are spread
 * over 256 shard files `aggregated/index/ids-<xx>.tsv` by CRC-32 of the id, so a lookup reads
 * one small file per distinct shard, whatever the history size.
 *
 * Line format: `\n<entryId>\t<batchId>` appended; every write starts with a newline so a torn
 * earlier write can never glue onto a new id, and a line without a tab (torn) is ignored.
 * Shards are fsynced before the journal forgets the ids (see Journal.compact).
 *
 * Released batches: an id counts as stored only if at least one of its lines names a batch that
 * was not released (a batch set aside as damaged, recorded by the journal's `x` records; see
 * release.ts). The released set is consulted only when a fingerprint hit is confirmed against
 * the shard's text, and only when it is non-empty, so the lookup of new ids costs the same.
 *
 * Rebuild ({@link rebuildIdIndex}, by `aggregate-validate --repair`): every shard is replaced
 * atomically (temp file, fsync, rename, one fsync of the folder). Shards are otherwise
 * append-only, so an index that cached a shard's length notices a replaced shard by its inode
 * number (or a shorter size) and reads it again from the start.
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
  /**
   * Sets the ids of released batches (the journal's live `released` Set): from then on a line
   * naming one of them does not make its id stored, in {@link lookup} and {@link owners}.
   */
  setReleased(batchIds: ReadonlySet<string>): void;
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
  let released: ReadonlySet<string> = new Set();
  /** Bytes of each shard file already fingerprinted (shards are append-only). */
  const readBytes = new Map<string, number>();
  /** Inode of each shard file when it was fingerprinted: a rebuilt shard has a new one. */
  const readInode = new Map<string, number | undefined>();
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
    let done = readBytes.get(shard) ?? 0;
    const st = fsPort.stat(shardFile(shard));
    const size = st?.size ?? 0;
    if (done > 0 && (size < done || st?.ino !== readInode.get(shard))) {
      // Replaced by a rebuild (or removed): read it again from the start. Fingerprints of ids
      // no longer there only cost a confirmation read, never a wrong answer.
      done = 0;
      readBytes.set(shard, 0);
    }
    readInode.set(shard, st?.ino);
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
      if (wanted.has(id) && !into.has(id) && !released.has(line.slice(tab + 1))) into.set(id, line.slice(tab + 1));
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
        const anyReleased = released.size > 0;
        for (const line of (readShard(SHARD_NAMES[shard]!)?.toString('utf8') ?? '').split('\n')) {
          const tab = line.indexOf('\t');
          if (tab > 0 && (!anyReleased || !released.has(line.slice(tab + 1)))) stored.add(line.slice(0, tab));
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
    setReleased(batchIds) {
      released = batchIds;
    },
  };
}

/** A shard file name `ids-<xx>.tsv`. */
export const SHARD_FILE_PATTERN = /^ids-[0-9a-f]{2}\.tsv$/;

/**
 * The health check's view of the index (health.ts `idIndex`): shard files present in `dir`
 * (one readdir), and entries whose ids should be indexed by now — those in batch files
 * (`journal.totals.batchEntries`) less those the journal still lists (`journal.committed`,
 * indexed at its next compaction).
 */
export function idIndexSample(fsPort: FsPort, dir: string, journal: { totals: { batchEntries: number }; committed: ReadonlyArray<unknown> }): { shards: number; indexedEntries: number } {
  return {
    shards: fsPort.readdir(dir).filter((n) => SHARD_FILE_PATTERN.test(n)).length,
    indexedEntries: Math.max(0, journal.totals.batchEntries - journal.committed.length),
  };
}

/** Longest entry id a line may hold, in UTF-16 code units (entry.ts: entryId is 1–128). */
const MAX_ID_LENGTH = 128;

/** What {@link scanIdIndex} found in one shard file. */
export interface ShardScan {
  /** File name, `ids-<xx>.tsv`. */
  name: string;
  /**
   * Lines that no append of this product can leave, even torn: NUL or other control bytes,
   * bytes that are not UTF-8, more than one tab, an empty id, an id longer than 128 code units
   * (a zero-filled, overwritten or garbled shard). 1-based line numbers, at most 5 kept.
   */
  malformed: number;
  malformedLines: number[];
  /**
   * Lines without a tab that could be the start of an id (an append killed mid-write leaves
   * one; the next append starts on a new line, and its ids were never acknowledged): harmless.
   */
  torn: number;
}

/** The whole index as read by {@link scanIdIndex}. */
export interface IndexScan {
  /** Entry ids per batch id, in line order (an id listed twice under one batch appears twice). */
  byBatch: Map<string, string[]>;
  /** Every shard file found, sorted by name. */
  shards: ShardScan[];
}

// eslint-disable-next-line no-control-regex
const BAD_LINE_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f\ufffd]/;

/**
 * Reads every shard in `dir` whole (for `aggregate-validate` and the release of a damaged batch:
 * not a hot path; ~50 MB for a million ids). Never throws for a bad line (it is counted);
 * throws the port's errors other than a missing folder.
 */
export function scanIdIndex(dir: string, fsPort: FsPort): IndexScan {
  const byBatch = new Map<string, string[]>();
  const shards: ShardScan[] = [];
  for (const name of fsPort.readdir(dir).filter((n) => SHARD_FILE_PATTERN.test(n)).sort()) {
    const scan: ShardScan = { name, malformed: 0, malformedLines: [], torn: 0 };
    const lines = fsPort.readFile(path.join(dir, name)).toString('utf8').split('\n');
    lines.forEach((line, i) => {
      if (line.length === 0) return;
      const tab = line.indexOf('\t');
      const bad = BAD_LINE_CHARS.test(line) || tab === 0 || (tab > 0 && line.indexOf('\t', tab + 1) !== -1) || (tab === -1 ? line.length : tab) > MAX_ID_LENGTH;
      if (bad) {
        scan.malformed++;
        if (scan.malformedLines.length < 5) scan.malformedLines.push(i + 1);
        return;
      }
      if (tab === -1) {
        scan.torn++;
        return;
      }
      const batchId = line.slice(tab + 1);
      let ids = byBatch.get(batchId);
      if (!ids) byBatch.set(batchId, (ids = []));
      ids.push(line.slice(0, tab));
    });
    shards.push(scan);
  }
  return { byBatch, shards };
}

/**
 * Replaces the whole index in `dir` with exactly `pairs` (duplicate lines dropped). Every shard
 * that gets lines, or exists now, is first written whole to a temp file `ids-<xx>.tsv.<pid>`
 * beside it and all of those are fdatasynced (concurrently); only then is each renamed over its
 * shard, and the folder fsynced once. So at any instant — a kill, or a power loss that undoes
 * some of the renames — every shard is either the old one or a complete new one, never a short
 * file (a group write's syncfs path renames before syncing, which is why it is not used here).
 * The caller makes sure both are safe (see aggregate-validate's repair). Returns the number of
 * lines written. Throws the port's errors (some shards may then be new already; run it again).
 */
export async function rebuildIdIndex(dir: string, fsPort: FsPort, pairs: Iterable<{ entryId: string; batchId: string }>): Promise<number> {
  const lines: Array<Set<string> | undefined> = new Array(256);
  for (const { entryId, batchId } of pairs) (lines[crc32(entryId) & 0xff] ??= new Set()).add(`${entryId}\t${batchId}`);
  fsPort.mkdirp(dir);
  const names = fsPort.readdir(dir);
  // Temp shards of an earlier rebuild that was killed: never renamed, so never part of the index.
  for (const name of names) if (/^ids-[0-9a-f]{2}\.tsv\.\d{1,10}$/.test(name)) fsPort.unlink(path.join(dir, name));
  const existing = new Set(names.filter((n) => SHARD_FILE_PATTERN.test(n)));
  const items: Array<{ file: string; temp: string; data: Buffer }> = [];
  let written = 0;
  for (let shard = 0; shard < 256; shard++) {
    const name = `ids-${SHARD_NAMES[shard]!}.tsv`;
    const shardLines = lines[shard];
    if (!shardLines && !existing.has(name)) continue;
    written += shardLines?.size ?? 0;
    const file = path.join(dir, name);
    items.push({ file, temp: `${file}.${process.pid}`, data: Buffer.from(shardLines ? '\n' + [...shardLines].join('\n') : '') });
  }
  if (items.length === 0) return 0;
  await fsPort.appendAllDurable(items.map(({ temp, data }) => ({ file: temp, data })));
  for (const { temp, file } of items) fsPort.rename(temp, file);
  fsPort.fsyncDir(dir);
  return written;
}
