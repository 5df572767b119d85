/**
 * Batch files and failed batches on disk (SPEC §5; seed "Batch File Format" and "Failed Batch
 * Format"). Batch files are written once, atomically (write-file-atomic: temp file, fsync,
 * rename) followed by an fsync of `aggregated/` so the rename survives a power loss, and never
 * rewritten — except once by `aggregate-migrate`, which upgrades a file of the older format
 * (see {@link parseBatchBytes}). This module knows nothing about triggers or the journal.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { FsPort } from '../../src/core/fs-port.js';
import { canonicalJson, inCanonicalOrder } from './entry.js';
import type { BatchFile, Entry } from './types.js';

/** Format version written into every batch file. */
export const BATCH_VERSION = '2.0.0';
/** Major version of the batch format this product reads and writes (semver: a new major is incompatible). */
export const BATCH_FORMAT_MAJOR = 2;

/**
 * User-facing strings about batch format versions (one place, STYLE §4), shared by every
 * reader: validate, recovery, migrate and the actions that read batch files. `file` is the
 * path relative to the data root.
 */
export const BATCH_MESSAGES = {
  newerVersion: (file: string, version: string) =>
    `${file} has version ${version}; this FlowForge Aggregation reads batch format ${BATCH_FORMAT_MAJOR}.x — upgrade the product`,
  legacy: (file: string, version: string | null) =>
    `${file} is in the older batch format (${version === null ? 'no version' : `version ${version}`}): run provider-bridge aggregate-migrate to upgrade it`,
} as const;

/** `sha256:<hex>` over the canonical JSON (sorted keys) of `entries`. */
export function entriesChecksum(entries: readonly Entry[]): string {
  return 'sha256:' + createHash('sha256').update(canonicalEntriesJson(entries)).digest('hex');
}

/**
 * canonicalJson of an entry list: one native `JSON.stringify` when every entry is in canonical
 * order already (entries from validation, or read back from a file this product wrote), else
 * entry by entry.
 */
function canonicalEntriesJson(entries: readonly Entry[]): string {
  if (inCanonicalOrder(entries)) return JSON.stringify(entries);
  let text = '[';
  for (let i = 0; i < entries.length; i++) text += (i === 0 ? '' : ',') + canonicalEntryJson(entries[i]);
  return `${text}]`;
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

/**
 * {@link makeBatch} and the file's text in one pass: each entry is serialized once, in canonical
 * form, and those same bytes are both hashed for `checksum` and written as `entries` (a parse of
 * `text` deep-equals `batch`; entry members come out in sorted order). A bulk import serializes
 * 100k entries this way in about half the time of checksum + `JSON.stringify(batch)`.
 */
export function serializeBatch(batchId: string, timestamp: number, entries: Entry[], recovered = false): { batch: BatchFile; text: string } {
  const entriesText = canonicalEntriesJson(entries);
  const checksum = 'sha256:' + createHash('sha256').update(entriesText).digest('hex');
  const batch: BatchFile = { batchId, timestamp, version: BATCH_VERSION, entries, entryCount: entries.length, recovered, checksum };
  const text =
    `{"batchId":${JSON.stringify(batchId)},"timestamp":${JSON.stringify(timestamp)},"version":${JSON.stringify(BATCH_VERSION)},` +
    `"entries":${entriesText},"entryCount":${entries.length},"recovered":${recovered ? 'true' : 'false'},"checksum":${JSON.stringify(checksum)}}`;
  return { batch, text };
}

/**
 * Writes a batch file durably (atomic + directory fsync): `batch` as JSON, or the text from
 * {@link serializeBatch}. Throws the port's error on failure.
 */
export function writeBatchFile(fsPort: FsPort, file: string, batch: BatchFile | string): void {
  fsPort.writeFileDurable(file, typeof batch === 'string' ? batch : JSON.stringify(batch));
}

/** Why a stored batch file cannot be used as it is. */
export type BatchProblem = 'unreadable' | 'not-json' | 'bad-shape' | 'checksum' | 'entry-count' | 'newer-version' | 'legacy';

/**
 * What reading a batch (or failed / abandoned batch) file found:
 * - `{batch}`: a current file (major {@link BATCH_FORMAT_MAJOR}) whose entryCount and checksum
 *   match its entries;
 * - `{problem: 'newer-version', version}`: written by a newer product (a greater major
 *   version). It must never be rewritten, moved or quarantined; report it with
 *   {@link BATCH_MESSAGES}.newerVersion;
 * - `{problem: 'legacy', version, document}`: the older format (seed "Batch File Format"):
 *   no `version`, a major below 2, or a 2.x file without `checksum` (its entries may lack
 *   `entryId` and hold timestamps in seconds or ISO form). `aggregate-migrate` upgrades it; other readers leave it alone and
 *   report {@link BATCH_MESSAGES}.legacy. `version` is the file's text (null when absent);
 * - any other problem: the file is damaged (a candidate for `recovery/errors/`).
 */
export type BatchRead =
  | { batch: BatchFile }
  | { problem: 'newer-version'; version: string }
  | { problem: 'legacy'; version: string | null; document: Record<string, unknown> }
  | { problem: Exclude<BatchProblem, 'newer-version' | 'legacy'> };

/**
 * semver's `coerce` alone (`semver/functions/coerce`: ~4.5 ms to load, against ~18 ms for the
 * whole package), required on first use: only a file whose version is not exactly
 * {@link BATCH_VERSION} needs it, so the flush and hook paths never load it.
 */
let coerceVersion: typeof import('semver/functions/coerce.js') | undefined;
function semverCoerce(): typeof import('semver/functions/coerce.js') {
  coerceVersion ??= createRequire(import.meta.url)('semver/functions/coerce.js') as typeof import('semver/functions/coerce.js');
  return coerceVersion;
}

/**
 * The major version of a batch document's `version` field: a string (`"2.0.0"`, `"1.x"`,
 * `"v3"`) or a number, read with semver's `coerce`; `null` when the field is absent (the
 * oldest format had none); `NaN` when it holds no version at all.
 */
export function batchMajorVersion(version: unknown): number | null {
  if (version === undefined || version === null) return null;
  if (version === BATCH_VERSION) return BATCH_FORMAT_MAJOR;
  if (typeof version !== 'string' && typeof version !== 'number') return Number.NaN;
  return semverCoerce()(String(version))?.major ?? Number.NaN;
}

/**
 * Classifies the bytes of a batch (or failed / abandoned batch) file; see {@link BatchRead}.
 * A UTF-8 byte-order mark (an editor's touch) is ignored. The version is looked at before the
 * shape, so a newer format is refused as newer whatever its shape. Pure.
 */
export function parseBatchBytes(raw: Buffer): Exclude<BatchRead, { problem: 'unreadable' }> {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8').replace(/^\uFEFF/, ''));
  } catch {
    return { problem: 'not-json' };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { problem: 'bad-shape' };
  const fields = doc as Record<string, unknown>;
  const major = batchMajorVersion(fields.version);
  const versionText = fields.version === undefined || fields.version === null ? null : String(fields.version);
  if (major !== null && major > BATCH_FORMAT_MAJOR) return { problem: 'newer-version', version: versionText! };
  if (Number.isNaN(major) || !Array.isArray(fields.entries)) return { problem: 'bad-shape' };
  // A 2.x file with a checksum is current even if an entry lost its entryId: that is damage for
  // aggregate-validate to report, never something to paper over with a derived id.
  if (major === null || major < BATCH_FORMAT_MAJOR || !('checksum' in fields)) return { problem: 'legacy', version: versionText, document: fields };
  const batch = doc as BatchFile;
  if (typeof batch.batchId !== 'string') return { problem: 'bad-shape' };
  if (batch.entryCount !== batch.entries.length) return { problem: 'entry-count' };
  if (batch.checksum !== entriesChecksum(batch.entries)) return { problem: 'checksum' };
  return { batch };
}

/**
 * Reads and classifies a batch (or failed batch) file ({@link parseBatchBytes}). Returns
 * undefined when the file does not exist; throws only for I/O errors other than ENOENT.
 */
export function readBatchFile(fsPort: FsPort, file: string): BatchRead | undefined {
  let raw: Buffer;
  try {
    raw = fsPort.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return parseBatchBytes(raw);
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
