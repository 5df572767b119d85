/**
 * The journal: the durable buffer of accepted entries (SPEC §5), a write-ahead log at
 * `aggregated/journal/journal.log`. It knows nothing about triggers; the aggregator decides
 * when to flush and drives the intent → batch file → commit protocol through it.
 *
 * Format (ours): one record per line, `<crc32 as 8 hex> <JSON>\n`, where the CRC-32 (zlib)
 * covers the JSON bytes. Records:
 * - `h` header, first line after a compaction: `{t:"h", committedTo, nextSeq, totals}`
 * - `e` entry: `{t:"e", s: seq, at: appendedAt (epoch ms), e: Entry}`
 * - `i` flush intent: `{t:"i", at, batches: [{b: batchId, from, to, failed?}]}` — written and
 *   fsynced before any batch file, so a crash between the file and the commit is detectable
 * - `c` commit: `{t:"c", at, batches: [...same]}` — the entries `from..to` (seqs) now live in
 *   that batch file (or, with `failed`, in `recovery/<batch>.failed.json`)
 * - `a` abort: `{t:"a", at}` — the open intent's files were never completed
 * - `r` recovered: `{t:"r", at, b, n}` — the recovery pass wrote failed batch `b` (`n` entries)
 *   as a batch file; counted once per batch id in the totals
 * - `m` migrated: `{t:"m", at, b, n}` — `aggregate-migrate` upgraded batch file `b` (`n`
 *   entries) from the older format, which no journal had recorded; counted once per batch id
 * - `x` released: `{t:"x", at, b, n, k}` — batch `b` (`k`: `batch` | `failed` | `abandoned`,
 *   `n` entries known) was set aside as damaged (moved to `recovery/errors/`, see release.ts):
 *   its entry ids no longer count as stored, so a re-import of the source stores them again.
 *   Written only after the file was moved durably; counted once per batch id (the totals lose
 *   the batch), and the released ids are carried in the header's `totals.released`.
 *
 * Seqs are contiguous and batches always take the oldest pending entries, so "committed" is a
 * single high-water mark `committedTo`. Records that fail their checksum, do not parse, or are a
 * torn tail are copied to `recovery/errors/` and dropped from the journal; every valid record
 * is kept (SPEC §5).
 */
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { FsPort } from '../../src/core/fs-port.js';
import type { Entry } from './types.js';

/** An entry in the journal with its sequence number and append time (epoch ms). */
export interface JournalEntry {
  seq: number;
  appendedAt: number;
  entry: Entry;
}

/**
 * One batch inside an intent or commit record: entries with seq in [from, to]. A batch a bulk
 * ingest wrote straight to its file (entries never appended to the journal, see
 * aggregator.ts `ingestBulk`) has `n`, its entry count, and the empty range `from = to = 0`
 * (seqs start at 1), so it never moves `committedTo`.
 */
export interface BatchRange {
  b: string;
  from: number;
  to: number;
  /** true when the batch went to `recovery/` as a failed batch instead of a batch file. */
  failed?: boolean;
  /** Entries of a batch written straight to its file (not in the journal); absent otherwise. */
  n?: number;
}

/** Whether `range` is a batch written straight to its file by a bulk ingest. */
export const isDirectRange = (range: BatchRange): boolean => range.n !== undefined;

/** Cumulative counters carried across compactions (exact, crash-consistent). */
export interface JournalTotals {
  /** Batch files written (not counting failed batches). */
  batches: number;
  /** Entries in those batch files. */
  batchEntries: number;
  /** Batches that went to recovery/ as failed. */
  failedBatches: number;
  /** Epoch ms of the last commit that wrote a batch file (not one that only parked batches in recovery/), or null. */
  lastFlushAt: number | null;
  /** Ids of failed batches the recovery pass wrote as batch files (counted once each). */
  recovered: string[];
  /**
   * Ids of older-format batch files `aggregate-migrate` upgraded (counted once each). Absent
   * until the first migration, so journals of stores that never migrated keep their shape.
   */
  migrated?: string[];
  /**
   * Ids of batches set aside as damaged whose entries were released for re-import (`x`
   * records, see release.ts). Absent until the first release, so other journals keep their shape.
   */
  released?: string[];
}

/** Where a released batch's file was: a batch file, a failed batch or an abandoned batch. */
export type ReleasedKind = 'batch' | 'failed' | 'abandoned';

type HeaderRecord = { t: 'h'; committedTo: number; nextSeq: number; totals: JournalTotals };
type EntryRecord = { t: 'e'; s: number; at: number; e: Entry };
type IntentRecord = { t: 'i'; at: number; batches: BatchRange[] };
type CommitRecord = { t: 'c'; at: number; batches: BatchRange[] };
type AbortRecord = { t: 'a'; at: number };
type RecoveredRecord = { t: 'r'; at: number; b: string; n: number };
type MigratedRecord = { t: 'm'; at: number; b: string; n: number };
type ReleasedRecord = { t: 'x'; at: number; b: string; n: number; k: ReleasedKind };
type JournalRecord = HeaderRecord | EntryRecord | IntentRecord | CommitRecord | AbortRecord | RecoveredRecord | MigratedRecord | ReleasedRecord;

/** What a load found wrong and moved aside. */
export interface QuarantineReport {
  /** Records dropped (bad checksum, bad JSON, torn tail, zero fill). */
  badRecords: number;
  /** Bytes moved to the quarantine file. */
  badBytes: number;
  /** Path of the quarantine file, relative to the data root's recovery/errors. */
  file?: string;
}

export interface Journal {
  /** Pending entries (seq > committedTo), oldest first. */
  readonly pending: readonly JournalEntry[];
  /** Entries already in a batch (or failed batch) but still listed here, not yet in the index. */
  readonly committed: ReadonlyArray<{ entryId: string; batchId: string }>;
  /**
   * Entry ids present anywhere in the journal: pending, or committed to a batch that was not
   * released (see {@link release}).
   */
  hasId(entryId: string): boolean;
  /**
   * Ids of batches released for re-import (`x` records): live, the same Set object for the
   * journal's lifetime, grown by {@link release}. Empty in almost every store.
   */
  readonly released: ReadonlySet<string>;
  readonly totals: JournalTotals;
  /** The last intent that has neither a commit nor an abort after it. */
  readonly openIntent: BatchRange[] | undefined;
  /** Size of the journal file in bytes. */
  readonly sizeBytes: number;
  /** Appends entries (one write, one fdatasync). Durable when it returns. */
  append(entries: Entry[], appendedAt: number): JournalEntry[];
  /** Records a flush intent durably. */
  intent(batches: BatchRange[], at: number): void;
  /** Records a commit durably; the ranges leave `pending`. */
  commit(batches: BatchRange[], at: number, entryCounts: number[]): void;
  /** Records that the open intent was abandoned (its entries stay pending). */
  abort(at: number): void;
  /** Records that the recovery pass wrote failed batch `batchId` (`entryCount` entries) as a batch file. */
  recovered(batchId: string, entryCount: number, at: number): void;
  /**
   * Records durably (one write, one fdatasync) that `aggregate-migrate` upgraded these
   * older-format batch files, so the totals count them; a batch id already recorded is ignored.
   */
  migrated(batches: ReadonlyArray<{ batchId: string; entryCount: number }>, at: number): void;
  /**
   * Rewrites the journal atomically with only a header and the pending entries. Call only after
   * `committed` ids are durably in the index.
   */
  compact(): void;
  /**
   * Records durably (one write, one fdatasync) that these batches were set aside as damaged:
   * their entry ids stop counting as stored (here and, through {@link released}, in the id
   * index), and the totals lose them (`batch`: one batch file and `entryCount` entries fewer;
   * `failed`/`abandoned`: one failed batch fewer). A batch id already released is ignored.
   * Call only after the batch's file is durably out of the store. Throws the port's errors.
   */
  release(batches: ReadonlyArray<{ batchId: string; kind: ReleasedKind; entryCount: number }>, at: number): void;
  close(): void;
}

const JOURNAL_FILE = 'journal.log';

function encode(record: JournalRecord): string {
  const json = JSON.stringify(record);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

function decodeLine(line: string): JournalRecord | undefined {
  if (line.length < 10 || line[8] !== ' ') return undefined;
  const json = line.slice(9);
  const sum = Number.parseInt(line.slice(0, 8), 16);
  if (!/^[0-9a-f]{8}$/.test(line.slice(0, 8)) || crc32(json) !== sum) return undefined;
  try {
    const record = JSON.parse(json) as JournalRecord;
    if (typeof record !== 'object' || record === null || typeof record.t !== 'string') return undefined;
    return record;
  } catch {
    return undefined;
  }
}

const emptyTotals = (): JournalTotals => ({ batches: 0, batchEntries: 0, failedBatches: 0, lastFlushAt: null, recovered: [] });

/**
 * Opens (creating if needed) the journal in `dir`, replays it and quarantines bad records into
 * `errorsDir`. Throws the file port's errors (EACCES, EIO…) unchanged; the caller holds the
 * store lock.
 */
export function openJournal(dir: string, errorsDir: string, fsPort: FsPort, now: () => number): { journal: Journal; quarantine: QuarantineReport } {
  const file = path.join(dir, JOURNAL_FILE);
  fsPort.mkdirp(dir);
  let raw: Buffer;
  try {
    raw = fsPort.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    raw = Buffer.alloc(0);
  }

  let committedTo = 0;
  let nextSeq = 1;
  let totals = emptyTotals();
  const entries = new Map<number, JournalEntry>();
  let openIntent: BatchRange[] | undefined;
  const rangeOwner: Array<{ b: string; from: number; to: number }> = [];
  const goodLines: string[] = [];
  const badChunks: string[] = [];

  const applyRecovered = (b: string, n: number) => {
    if (totals.recovered.includes(b)) return; // recorded again after a crash: counted once
    totals.recovered.push(b);
    totals.batches++;
    totals.batchEntries += n;
    totals.failedBatches = Math.max(0, totals.failedBatches - 1);
  };
  const applyMigrated = (b: string, n: number) => {
    const list = (totals.migrated ??= []);
    if (list.includes(b)) return;
    list.push(b);
    totals.batches++;
    totals.batchEntries += n;
  };
  const released = new Set<string>();
  const applyReleased = (b: string, n: number, k: ReleasedKind) => {
    if (released.has(b)) return; // recorded again after a crash: counted once
    released.add(b);
    (totals.released ??= []).push(b);
    if (k === 'batch') {
      totals.batches = Math.max(0, totals.batches - 1);
      totals.batchEntries = Math.max(0, totals.batchEntries - n);
    } else totals.failedBatches = Math.max(0, totals.failedBatches - 1);
  };
  const applyCommit = (batches: BatchRange[], counts?: number[]) => {
    batches.forEach((range, i) => {
      committedTo = Math.max(committedTo, range.to);
      rangeOwner.push({ b: range.b, from: range.from, to: range.to });
      let n = counts?.[i] ?? range.n;
      if (n === undefined) {
        n = 0;
        for (let s = range.from; s <= range.to; s++) if (entries.has(s)) n++;
      }
      if (range.failed) totals.failedBatches++;
      else {
        totals.batches++;
        totals.batchEntries += n;
      }
    });
  };

  let text = raw.toString('utf8');
  if (text.startsWith('\uFEFF')) {
    // A byte-order mark is not a record: set it aside like any other stray bytes.
    badChunks.push('\uFEFF');
    text = text.slice(1);
  }
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length === 0) continue;
    const record = nl === -1 ? undefined : decodeLine(line); // a line without its newline is a torn tail
    if (!record) {
      badChunks.push(line);
      continue;
    }
    switch (record.t) {
      case 'h':
        committedTo = record.committedTo;
        nextSeq = record.nextSeq;
        totals = { ...emptyTotals(), ...record.totals, recovered: [...(record.totals.recovered ?? [])] };
        if (record.totals.migrated) totals.migrated = [...record.totals.migrated];
        released.clear();
        if (record.totals.released) {
          totals.released = [...record.totals.released];
          for (const b of totals.released) released.add(b);
        }
        break;
      case 'e':
        entries.set(record.s, { seq: record.s, appendedAt: record.at, entry: record.e });
        nextSeq = Math.max(nextSeq, record.s + 1);
        break;
      case 'i':
        openIntent = record.batches;
        break;
      case 'c':
        applyCommit(record.batches);
        if (record.batches.some((range) => !range.failed)) totals.lastFlushAt = record.at;
        openIntent = undefined;
        break;
      case 'a':
        openIntent = undefined;
        break;
      case 'r':
        applyRecovered(record.b, record.n);
        break;
      case 'm':
        applyMigrated(record.b, record.n);
        break;
      case 'x':
        applyReleased(record.b, record.n, record.k);
        break;
      default:
        badChunks.push(line);
        continue;
    }
    goodLines.push(line);
  }

  const quarantine: QuarantineReport = { badRecords: badChunks.length, badBytes: 0 };
  if (badChunks.length > 0) {
    // Keep the bad bytes for a human (never deleted silently), then rewrite without them.
    const payload = badChunks.join('\n') + '\n';
    quarantine.badBytes = Buffer.byteLength(payload);
    fsPort.mkdirp(errorsDir);
    const name = `journal-${now()}-${process.pid}.bad`;
    fsPort.writeFileDurable(path.join(errorsDir, name), payload);
    quarantine.file = name;
    fsPort.writeFileDurable(file, goodLines.map((l) => l + '\n').join(''));
  }

  const batchOf = (seq: number): string => {
    for (let i = rangeOwner.length - 1; i >= 0; i--) {
      const r = rangeOwner[i]!;
      if (seq >= r.from && seq <= r.to) return r.b;
    }
    return 'unknown';
  };
  const ids = new Set<string>();
  let pending: JournalEntry[] = [];
  let committed: Array<{ entryId: string; batchId: string }> = [];
  for (const je of [...entries.values()].sort((a, b) => a.seq - b.seq)) {
    if (je.seq > committedTo) {
      ids.add(je.entry.entryId);
      pending.push(je);
    } else {
      const batchId = batchOf(je.seq);
      // An entry of a released batch is no longer stored: a re-import may store it again.
      if (released.size === 0 || !released.has(batchId)) ids.add(je.entry.entryId);
      committed.push({ entryId: je.entry.entryId, batchId });
    }
  }

  let sizeBytes = quarantine.badRecords > 0 ? goodLines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0) : raw.length;
  let fd: number | undefined;
  /**
   * Whether the journal's name is known durable in this process. Not from its having bytes: a
   * process killed between a compaction's rename and its directory fsync leaves the new file
   * under a name that a power loss would undo (and with it every record appended to it since).
   * So the first write of each process also fsyncs the directory, once (~0.2 ms).
   */
  let nameDurable = false;
  const write = (records: JournalRecord[]) => {
    const data = Buffer.from(records.map(encode).join(''));
    if (fd === undefined) fd = fsPort.openAppend(file);
    fsPort.writeAll(fd, data);
    fsPort.fsync(fd);
    sizeBytes += data.length;
    if (!nameDurable) {
      fsPort.fsyncDir(dir);
      nameDurable = true;
    }
  };

  const journal: Journal = {
    get pending() {
      return pending;
    },
    get committed() {
      return committed;
    },
    hasId: (entryId) => ids.has(entryId),
    released,
    get totals() {
      return totals;
    },
    get openIntent() {
      return openIntent;
    },
    get sizeBytes() {
      return sizeBytes;
    },
    append(newEntries, appendedAt) {
      if (newEntries.length === 0) return [];
      const added = newEntries.map((entry) => ({ seq: nextSeq++, appendedAt, entry }));
      write(added.map((je) => ({ t: 'e', s: je.seq, at: je.appendedAt, e: je.entry })));
      for (const je of added) ids.add(je.entry.entryId);
      pending = pending.concat(added);
      return added;
    },
    intent(batches, at) {
      write([{ t: 'i', at, batches }]);
      openIntent = batches;
    },
    commit(batches, at, entryCounts) {
      write([{ t: 'c', at, batches }]);
      applyCommit(batches, entryCounts);
      // The last flush that wrote a batch file: one that only parked batches in recovery/ is not.
      if (batches.some((range) => !range.failed)) totals.lastFlushAt = at;
      openIntent = undefined;
      const cut = committedTo;
      const moved = pending.filter((je) => je.seq <= cut);
      pending = pending.filter((je) => je.seq > cut);
      // Ranges are sorted and contiguous: walk them alongside the moved entries (O(n), not n × batches).
      const ranges = [...batches].sort((a, b) => a.from - b.from);
      let r = 0;
      for (const je of moved) {
        while (r < ranges.length - 1 && je.seq > ranges[r]!.to) r++;
        const range = ranges[r];
        committed.push({ entryId: je.entry.entryId, batchId: range && je.seq >= range.from && je.seq <= range.to ? range.b : batchOf(je.seq) });
      }
    },
    abort(at) {
      write([{ t: 'a', at }]);
      openIntent = undefined;
    },
    recovered(batchId, entryCount, at) {
      if (totals.recovered.includes(batchId)) return;
      write([{ t: 'r', at, b: batchId, n: entryCount }]);
      applyRecovered(batchId, entryCount);
    },
    migrated(batches, at) {
      const known = new Set(totals.migrated ?? []);
      const records: MigratedRecord[] = [];
      for (const { batchId, entryCount } of batches) {
        if (known.has(batchId)) continue;
        known.add(batchId);
        records.push({ t: 'm', at, b: batchId, n: entryCount });
      }
      if (records.length === 0) return;
      write(records);
      for (const r of records) applyMigrated(r.b, r.n);
    },
    compact() {
      if (fd !== undefined) {
        fsPort.close(fd);
        fd = undefined;
      }
      const header: HeaderRecord = { t: 'h', committedTo, nextSeq, totals };
      const body = [header as JournalRecord, ...pending.map((je): JournalRecord => ({ t: 'e', s: je.seq, at: je.appendedAt, e: je.entry }))]
        .map(encode)
        .join('');
      fsPort.writeFileDurable(file, body);
      nameDurable = true;
      sizeBytes = Buffer.byteLength(body);
      for (const c of committed) ids.delete(c.entryId);
      committed = [];
    },
    release(batches, at) {
      const records: ReleasedRecord[] = [];
      const seen = new Set<string>();
      for (const { batchId, kind, entryCount } of batches) {
        if (released.has(batchId) || seen.has(batchId)) continue;
        seen.add(batchId);
        records.push({ t: 'x', at, b: batchId, n: entryCount, k: kind });
      }
      if (records.length === 0) return;
      write(records);
      for (const r of records) applyReleased(r.b, r.n, r.k);
      // Committed entries of those batches (flushed, not yet compacted into the index) are no
      // longer stored either; a pending entry never belongs to a batch.
      const pendingIds = new Set(pending.map((je) => je.entry.entryId));
      for (const c of committed) if (seen.has(c.batchId) && !pendingIds.has(c.entryId)) ids.delete(c.entryId);
    },
    close() {
      if (fd !== undefined) {
        fsPort.close(fd);
        fd = undefined;
      }
    },
  };
  return { journal, quarantine };
}

/** What {@link readPendingSnapshot} found: pending entries, oldest first, and records it skipped. */
export interface PendingSnapshot {
  /** Entries appended and not yet committed to a batch (or failed batch), oldest first. */
  pending: Entry[];
  /**
   * Complete lines that failed their checksum or did not parse: the next call that opens the
   * store quarantines them. A torn last line (an append in progress) is not counted: it was not
   * acknowledged yet.
   */
  badRecords: number;
}

/**
 * Reads the pending entries of the journal in `dir` without the store lock and without writing
 * anything (for readers such as `aggregate-report`). Safe against a concurrent writer: appends
 * only add lines (a torn last line is ignored), and compaction replaces the file atomically with
 * one holding the same pending entries. Returns an empty snapshot when there is no journal;
 * throws the port's errors other than ENOENT.
 */
export function readPendingSnapshot(dir: string, fsPort: FsPort): PendingSnapshot {
  let raw: Buffer;
  try {
    raw = fsPort.readFile(path.join(dir, JOURNAL_FILE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { pending: [], badRecords: 0 };
    throw error;
  }
  let text = raw.toString('utf8');
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  let committedTo = 0;
  let badRecords = 0;
  const entries = new Map<number, Entry>();
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    if (nl === -1) break; // torn tail: an append still in progress
    const line = text.slice(start, nl);
    start = nl + 1;
    if (line.length === 0) continue;
    const record = decodeLine(line);
    if (!record) {
      badRecords++;
      continue;
    }
    if (record.t === 'h') committedTo = record.committedTo;
    else if (record.t === 'e') entries.set(record.s, record.e);
    else if (record.t === 'c') for (const range of record.batches) committedTo = Math.max(committedTo, range.to);
  }
  const pending = [...entries].filter(([seq]) => seq > committedTo).sort((a, b) => a[0] - b[0]).map(([, entry]) => entry);
  return { pending, badRecords };
}
