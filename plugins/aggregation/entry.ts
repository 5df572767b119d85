/**
 * Entry validation and normalization (SPEC §4), with valibot.
 *
 * Every source (`--entry`, `--input`, sessions, git) ends here: {@link validateEntries} turns
 * caller input into {@link Entry} objects with an integer epoch-millisecond `timestamp`,
 * redacted metadata and an `entryId`, or rejects the whole call with an {@link InputError}
 * listing every problem (index + field path). {@link parseEntryText} reads the JSON-array /
 * NDJSON text of `--input` and `--entry`.
 *
 * Decisions where SPEC §4 is silent (for the README):
 * - Timestamps given as numeric strings (`"1700000000000"`) are rejected: a string must be an
 *   ISO-8601 date-time with an offset. A number-in-a-string is usually a quoting mistake, and
 *   telling seconds from milliseconds in text is guesswork; JSON has numbers for that.
 * - Epoch seconds are converted exactly from their decimal form (`1700000000.123` →
 *   `1700000000123`), never rounded; more than three fractional digits of a second (a
 *   fraction of a millisecond) is "non-integer after conversion" and rejected. ISO fractions
 *   beyond milliseconds are accepted only when the extra digits are zeros.
 * - Metadata depth: the metadata object itself is depth 1, each nested object or array adds one
 *   level; scalars add none. Depth 5 is accepted, depth 6 is rejected.
 * - Metadata size: bytes of UTF-8 of `JSON.stringify` of the stored (redacted, normalized)
 *   metadata; 16 384 bytes is accepted, 16 385 rejected.
 * - `taskId` numbers must be safe integers (a larger number has already lost digits); they
 *   become decimal strings. Text lengths (userId, entryId, action) count UTF-16 code units.
 * - Redacted values are replaced without being inspected, so a secret is never echoed back in
 *   an error message.
 * - Stored metadata objects have their keys in sorted order (the canonical order), so their
 *   `JSON.stringify` is their canonical JSON; the top-level entry keys keep the fixed order.
 * - ISO strings: `T` and `Z` upper case, seconds and fraction optional (`.` or `,`), offset
 *   `Z` or `±hh:mm`; calendar-invalid dates (Feb 30) are rejected.
 */
import { hash } from 'node:crypto';
import * as v from 'valibot';
import { InputError, type ErrorDetail } from '../../src/core/errors.js';
import type { Entry } from './types.js';

/** Upper bound of `metadata.duration`: 7 days in milliseconds. */
export const MAX_DURATION_MS = 604_800_000;
/** Upper bound of serialized metadata: bytes of UTF-8 JSON. */
export const METADATA_MAX_BYTES = 16_384;
/** Maximum nesting depth of metadata (the metadata object is depth 1). */
export const METADATA_MAX_DEPTH = 5;
/** Earliest accepted timestamp: 2000-01-01T00:00:00Z in epoch milliseconds. */
export const MIN_TIMESTAMP_MS = 946_684_800_000;
/** Numbers below this are epoch seconds, at or above it epoch milliseconds (SPEC §4). */
export const SECONDS_THRESHOLD = 1e11;
/** A key as compared for redaction: lower case, without `-`, `_`, `.` or spaces (`API_Key` → `apikey`). */
export function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_. ]/g, '');
}

/**
 * Whether a metadata key falls under the redaction list: its normalized form contains a
 * normalized redaction key, so `accessToken`, `x-api-key`, `db_password` and `Cookie` are all
 * caught by the defaults. Redacting a harmless key by mistake costs a value; missing a secret
 * would write it to disk, so the match errs on the side of redacting.
 */
export function isRedacted(redact: ReadonlySet<string>, key: string): boolean {
  const k = normalizeKey(key);
  for (const r of redact) if (k.includes(r)) return true;
  return false;
}

/** Distinct keys whose redaction decision one call remembers (a hostile input cannot grow it further). */
const REDACTION_MEMO_KEYS = 4096;

/** {@link isRedacted} over `redact`, remembering the decision for up to REDACTION_MEMO_KEYS keys. */
function memoizedRedaction(redact: ReadonlySet<string>): (key: string) => boolean {
  const memo = new Map<string, boolean>();
  return (key) => {
    let hit = memo.get(key);
    if (hit === undefined) {
      hit = isRedacted(redact, key);
      if (memo.size < REDACTION_MEMO_KEYS) memo.set(key, hit);
    }
    return hit;
  };
}

/** The replacement of a redacted metadata value (SPEC §4). */
export const REDACTED = '[REDACTED]';

/** User-facing strings of entry parsing and validation (one place, STYLE §4). */
export const ENTRY_MESSAGES = {
  invalidEntries: (n: number) => `${n} invalid ${n === 1 ? 'entry' : 'entries'}: nothing was accepted`,
  invalidText: (n: number, origin: string) =>
    `${origin}: ${n} ${n === 1 ? 'line is' : 'lines are'} not valid JSON: nothing was accepted`,
  invalidArray: (origin: string) => `${origin}: not a valid JSON array: nothing was accepted`,
  badLinesAndInvalid: (origin: string, lines: number, entries: number) =>
    `${origin}: ${lines} ${lines === 1 ? 'line is' : 'lines are'} not valid JSON and ${entries} ${entries === 1 ? 'entry is' : 'entries are'} invalid: nothing was accepted`,
  // V8 quotes a piece of the offending text (`Unexpected token 'p', "password=h"... is not valid
  // JSON`); that piece is input, possibly a secret, and error text reaches logs: drop it.
  badJson: (reason: string) => `not valid JSON: ${reason.replace(/, ".*"(?:\.\.\.)? is not valid JSON$/s, '')}`,
  notObject: 'an entry must be a JSON object {userId, action, timestamp, metadata?, entryId?}',
  unknownKey: (key: string) => `unknown field "${key}" (allowed: entryId, userId, action, timestamp, metadata)`,
  missing: (field: string) => `${field} is required`,
  textType: (field: string) => `${field} must be a string`,
  textLength: (field: string, max: number) => `${field} must be 1–${max} characters`,
  controlChars: (field: string) => `${field} must not contain control or bidirectional-override characters`,
  notWellFormed: (field: string) => `${field} is not well-formed Unicode (it has a lone UTF-16 surrogate, e.g. \\ud800): such text cannot be stored as UTF-8`,
  actionChars: 'action must be 1–64 characters of A–Z a–z 0–9 _ . : -',
  timestampType: 'timestamp must be a number (epoch milliseconds, or epoch seconds below 1e11) or an ISO-8601 string with an offset',
  timestampFinite: 'timestamp must be a finite number (not NaN or Infinity)',
  timestampInteger: 'timestamp must be a whole number of milliseconds after conversion',
  timestampNumericString: 'timestamp must be a number, not a numeric string; strings must be ISO-8601 with an offset',
  timestampIso: 'timestamp string must be an ISO-8601 date-time with an offset (Z or ±hh:mm), e.g. 2024-05-01T09:30:00+02:00',
  timestampTooEarly: 'timestamp is before 2000-01-01T00:00:00Z',
  timestampTooLate: (maxSkew: number) => `timestamp is more than ${maxSkew} ms in the future (maxClockSkew)`,
  metadataType: 'metadata must be a plain JSON object',
  metadataTooLarge: (bytes: number) => `metadata is ${bytes} bytes serialized; at most ${METADATA_MAX_BYTES} bytes (16 KiB) are allowed`,
  metadataTooDeep: `metadata is nested deeper than ${METADATA_MAX_DEPTH} levels (the metadata object is level 1)`,
  forbiddenKey: (key: string) => `key "${key}" is not allowed (prototype pollution guard)`,
  notJson: (what: string) => `${what} is not a JSON value`,
  sessionId: 'metadata.sessionId must be a string',
  taskId: 'metadata.taskId must be a string or a safe integer',
  duration: `metadata.duration must be an integer number of milliseconds from 0 to ${MAX_DURATION_MS} (7 days)`,
} as const;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// C0/C1 controls, and the bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069)
// that make text display in a different order than it is stored ("Trojan Source").
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const ACTION_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;
const NUMERIC_STRING_RE = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
const IDENTIFIER_RE = /^[A-Za-z_$][\w$]*$/;
const INDEX_KEY_RE = /^(0|[1-9]\d*)$/;

// ---------------------------------------------------------------------------------------------
// Schemas that do not depend on the call: built once at module load.

/**
 * `String.prototype.isWellFormed` (ES2024, in Node 20): false when the text has a lone UTF-16
 * surrogate. Such text turns into U+FFFD when written as UTF-8 (the id index, report files), so
 * two different ids would meet as one.
 */
const isWellFormed = (text: string): boolean => (text as unknown as { isWellFormed(): boolean }).isWellFormed();

const idText = (field: string, max: number) =>
  v.pipe(
    v.string(ENTRY_MESSAGES.textType(field)),
    v.minLength(1, ENTRY_MESSAGES.textLength(field, max)),
    v.maxLength(max, ENTRY_MESSAGES.textLength(field, max)),
    v.check((s) => !CONTROL_CHARS.test(s), ENTRY_MESSAGES.controlChars(field)),
    v.check(isWellFormed, ENTRY_MESSAGES.notWellFormed(field)),
  );

const UserIdSchema = idText('userId', 128);
const EntryIdSchema = idText('entryId', 128);
const ActionSchema = v.pipe(v.string(ENTRY_MESSAGES.textType('action')), v.regex(ACTION_RE, ENTRY_MESSAGES.actionChars));

/** Problems reported by the metadata walk, relative to the metadata object. */
interface MetaProblem {
  path: (string | number)[];
  message: string;
  value?: unknown;
}

interface CallOptions {
  now: number;
  maxClockSkew: number;
  /** Redaction keys, normalized with {@link normalizeKey}. */
  redact: Set<string>;
  /** {@link isRedacted} for `redact`, memoized for the call (metadata keys repeat entry after entry). */
  redactedKey: (key: string) => boolean;
  /**
   * Normalized metadata → its canonical JSON when validation had to compute it; otherwise
   * `JSON.stringify` of the (key-sorted) copy is canonical.
   */
  canonicalMetadata: WeakMap<object, string>;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/**
 * Converts a timestamp as SPEC §4 accepts it (epoch ms, epoch seconds below 1e11, or an
 * ISO-8601 string with an offset) to integer epoch ms, or returns the error message (one of
 * {@link ENTRY_MESSAGES}). Range checks (2000-01-01, clock skew) are the caller's.
 */
export function toEpochMs(input: unknown): number | string {
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return ENTRY_MESSAGES.timestampFinite;
    if (Math.abs(input) < SECONDS_THRESHOLD) return secondsToMs(input);
    return Number.isInteger(input) ? input : ENTRY_MESSAGES.timestampInteger;
  }
  if (typeof input === 'string') {
    if (NUMERIC_STRING_RE.test(input)) return ENTRY_MESSAGES.timestampNumericString;
    return isoToMs(input);
  }
  return ENTRY_MESSAGES.timestampType;
}

/** Exact decimal conversion: the digits the caller wrote, shifted by three places. */
function secondsToMs(seconds: number): number | string {
  const text = String(seconds);
  if (/e/i.test(text)) {
    const ms = seconds * 1000;
    return Number.isInteger(ms) ? ms : ENTRY_MESSAGES.timestampInteger;
  }
  const negative = text.startsWith('-');
  const [whole = '0', frac = ''] = (negative ? text.slice(1) : text).split('.');
  if (frac.length > 3) return ENTRY_MESSAGES.timestampInteger;
  const ms = Number(whole) * 1000 + Number(frac.padEnd(3, '0'));
  return negative ? -ms : ms;
}

function isoToMs(text: string): number | string {
  const m = ISO_RE.exec(text);
  if (!m) return ENTRY_MESSAGES.timestampIso;
  const [, ys, mos, ds, hs, mis, ss = '0', fs = '', z, sign, ohs = '0', oms = '0'] = m;
  const y = Number(ys), mo = Number(mos), d = Number(ds), h = Number(hs), mi = Number(mis), s = Number(ss);
  const oh = Number(ohs), om = Number(oms);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59 || oh > 23 || om > 59) {
    return ENTRY_MESSAGES.timestampIso;
  }
  if (fs.length > 3 && /[1-9]/.test(fs.slice(3))) return ENTRY_MESSAGES.timestampInteger;
  const frac = Number(fs.slice(0, 3).padEnd(3, '0'));
  const utc = Date.UTC(y, mo - 1, d, h, mi, s, frac);
  // Date.UTC maps years 0–99 to 1900–1999; those are before 2000 either way.
  const offsetMs = z ? 0 : (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  return utc - offsetMs;
}

/** State of one metadata walk. */
interface Walk {
  redact: Set<string>;
  /** {@link isRedacted} for `redact`, memoized for the call. */
  redactedKey: (key: string) => boolean;
  problems: MetaProblem[];
  /** Whether an array-index-like key ("0", "12") was copied: those break insertion order. */
  indexKeys: boolean;
  /**
   * Upper bound of the copy's serialized size in UTF-8 bytes (a code unit is at most 6 bytes,
   * as a `\u00XX` escape), so small metadata skips the exact measurement.
   */
  bound: number;
}

/**
 * Own enumerable keys, sorted by UTF-16 code units: copies are built in canonical key order,
 * so `JSON.stringify` of a copy is its canonical JSON — unless an object has array-index-like
 * keys, which JavaScript always enumerates first in numeric order (then `walk.indexKeys`).
 */
function sortedKeys(obj: object, walk: Walk): string[] {
  const keys = Object.keys(obj);
  sortCodeUnits(keys);
  let bound = 2;
  for (const k of keys) {
    bound += 6 * k.length + 4;
    const c = k.charCodeAt(0);
    if (c >= 48 && c <= 57 && !walk.indexKeys && INDEX_KEY_RE.test(k)) walk.indexKeys = true;
  }
  walk.bound += bound;
  return keys;
}

/** Keys up to this many are sorted by insertion sort (no allocation); more by Array#sort. */
const INSERTION_SORT_MAX = 16;

/**
 * Sorts strings in place by UTF-16 code units, as `Array#sort()` without a comparator does (and
 * as `<` compares). Metadata objects have a handful of keys, and `Array#sort` allocates a work
 * array on every call (about 0.8 KB; 400 MB for a streamed million entries): small arrays take
 * an insertion sort instead.
 */
function sortCodeUnits(keys: string[]): void {
  if (keys.length > INSERTION_SORT_MAX) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/**
 * Walks metadata once: rejects forbidden keys, non-JSON values and excess depth, checks the
 * known fields, converts a numeric taskId, redacts, and returns a fresh copy with keys in
 * sorted order (the input is never mutated).
 */
function normalizeMetadata(meta: Record<string, unknown>, walk: Walk): Record<string, unknown> {
  const { redact, problems } = walk;
  const out: Record<string, unknown> = {};
  for (const key of sortedKeys(meta, walk)) {
    const value = meta[key];
    if (FORBIDDEN_KEYS.has(key)) {
      problems.push({ path: [key], message: ENTRY_MESSAGES.forbiddenKey(key) });
      continue;
    }
    if (!isWellFormed(key)) {
      problems.push({ path: [key], message: ENTRY_MESSAGES.notWellFormed('a metadata key') });
      continue;
    }
    if (redact.size > 0 && walk.redactedKey(key)) {
      out[key] = REDACTED;
      walk.bound += REDACTED.length + 2;
      continue;
    }
    if (key === 'sessionId') {
      if (typeof value !== 'string') problems.push({ path: [key], message: ENTRY_MESSAGES.sessionId, value });
      else if (!isWellFormed(value)) problems.push({ path: [key], message: ENTRY_MESSAGES.notWellFormed('metadata.sessionId'), value });
      else {
        out[key] = value;
        walk.bound += 6 * value.length + 2;
      }
      continue;
    }
    if (key === 'taskId') {
      if (typeof value === 'string' && !isWellFormed(value)) problems.push({ path: [key], message: ENTRY_MESSAGES.notWellFormed('metadata.taskId'), value });
      else if (typeof value === 'string') {
        out[key] = value;
        walk.bound += 6 * value.length + 2;
      } else if (typeof value === 'number' && Number.isSafeInteger(value)) {
        out[key] = String(value);
        walk.bound += 24;
      } else problems.push({ path: [key], message: ENTRY_MESSAGES.taskId, value });
      continue;
    }
    if (key === 'duration') {
      if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_DURATION_MS) {
        out[key] = value;
        walk.bound += 24;
      }
      else problems.push({ path: [key], message: ENTRY_MESSAGES.duration, value });
      continue;
    }
    out[key] = copyJson(value, [], key, 2, walk);
  }
  return out;
}

/**
 * Deep copy of the JSON value `parent[key]` at `depth` (the metadata object is depth 1), with
 * redaction. Paths are built only for containers and problems: this runs for every value of
 * every entry.
 */
function copyJson(
  value: unknown,
  parent: readonly (string | number)[],
  key: string | number,
  depth: number,
  walk: Walk,
): unknown {
  const { problems } = walk;
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value)) {
        problems.push({ path: [...parent, key], message: ENTRY_MESSAGES.notWellFormed('a metadata text'), value });
        return undefined;
      }
      walk.bound += 6 * value.length + 2;
      return value;
    case 'boolean':
      walk.bound += 5;
      return value;
    case 'number':
      walk.bound += 24;
      if (Number.isFinite(value)) return value;
      problems.push({ path: [...parent, key], message: ENTRY_MESSAGES.notJson(String(value)), value });
      return undefined;
    case 'object':
      break;
    default:
      problems.push({ path: [...parent, key], message: ENTRY_MESSAGES.notJson(typeof value), value });
      return undefined;
  }
  if (value === null) {
    walk.bound += 4;
    return null;
  }
  const here = [...parent, key];
  if (depth > METADATA_MAX_DEPTH) {
    problems.push({ path: here, message: ENTRY_MESSAGES.metadataTooDeep });
    return undefined;
  }
  if (Array.isArray(value)) {
    walk.bound += 2 + value.length;
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyJson(value[i], here, i, depth + 1, walk);
    return out;
  }
  if (!isPlainObject(value)) {
    problems.push({ path: here, message: ENTRY_MESSAGES.notJson(`an instance of ${value.constructor?.name ?? 'a class'}`) });
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const k of sortedKeys(value, walk)) {
    if (FORBIDDEN_KEYS.has(k)) {
      problems.push({ path: [...here, k], message: ENTRY_MESSAGES.forbiddenKey(k) });
      continue;
    }
    if (!isWellFormed(k)) {
      problems.push({ path: [...here, k], message: ENTRY_MESSAGES.notWellFormed('a metadata key') });
      continue;
    }
    if (walk.redact.size > 0 && walk.redactedKey(k)) {
      out[k] = REDACTED;
      walk.bound += REDACTED.length + 2;
      continue;
    }
    out[k] = copyJson(value[k], here, k, depth + 1, walk);
  }
  return out;
}

function pathItems(input: unknown, keys: (string | number)[]): [v.IssuePathItem, ...v.IssuePathItem[]] {
  const items = keys.map((key) => ({ type: 'unknown', origin: 'value', input, key, value: undefined }) as v.UnknownPathItem);
  return items as [v.IssuePathItem, ...v.IssuePathItem[]];
}

/** The entry schema for one call (`now`, skew and redaction differ per call; the rest is shared). */
function createEntrySchema(opts: CallOptions) {
  const timestamp = v.pipe(
    v.unknown(),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const ms = toEpochMs(dataset.value);
      if (typeof ms === 'string') {
        addIssue({ message: ms });
        return NEVER;
      }
      if (ms < MIN_TIMESTAMP_MS) {
        addIssue({ message: ENTRY_MESSAGES.timestampTooEarly });
        return NEVER;
      }
      if (ms > opts.now + opts.maxClockSkew) {
        addIssue({ message: ENTRY_MESSAGES.timestampTooLate(opts.maxClockSkew) });
        return NEVER;
      }
      return ms;
    }),
  );
  const metadata = v.pipe(
    v.custom<Record<string, unknown>>(isPlainObject, ENTRY_MESSAGES.metadataType),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const walk: Walk = { redact: opts.redact, redactedKey: opts.redactedKey, problems: [], indexKeys: false, bound: 0 };
      const { problems } = walk;
      const out = normalizeMetadata(dataset.value, walk);
      if (problems.length === 0 && (walk.indexKeys || walk.bound > METADATA_MAX_BYTES)) {
        // The copy has sorted keys, so JSON.stringify gives its canonical JSON (and any member
        // order has the same bytes); a derived entry id reuses it.
        const canonical = walk.indexKeys ? canonicalJson(out) : JSON.stringify(out);
        // A UTF-16 code unit is at most 3 UTF-8 bytes: short texts need no byte count.
        const bytes = canonical.length * 3 <= METADATA_MAX_BYTES ? 0 : Buffer.byteLength(canonical, 'utf8');
        if (bytes > METADATA_MAX_BYTES) problems.push({ path: [], message: ENTRY_MESSAGES.metadataTooLarge(bytes), value: bytes });
        else opts.canonicalMetadata.set(out, canonical);
      }
      if (problems.length === 0) return out;
      for (const p of problems) {
        addIssue({ message: p.message, input: p.value, ...(p.path.length > 0 ? { path: pathItems(dataset.value, p.path) } : {}) });
      }
      return NEVER;
    }),
  );
  // valibot's object schemas take arrays for objects: rule them out first.
  return v.pipe(
    v.custom<Record<string, unknown>>((x) => typeof x === 'object' && x !== null && !Array.isArray(x), ENTRY_MESSAGES.notObject),
    v.strictObject(
    {
      entryId: v.optional(EntryIdSchema),
      userId: UserIdSchema,
      action: ActionSchema,
      timestamp,
      metadata: v.optional(metadata),
    },
    (issue) => {
      if (issue.expected === 'Object') return ENTRY_MESSAGES.notObject;
      if (issue.expected === 'never') return ENTRY_MESSAGES.unknownKey(String(issue.input));
      return ENTRY_MESSAGES.missing(String(issue.path?.[issue.path.length - 1]?.key ?? issue.expected));
    },
    ),
  );
}

/** Formats a key path as in `[3].metadata.duration` / `[0].metadata["api-key"]`. */
function formatPath(index: number, keys: readonly unknown[]): string {
  let out = `[${index}]`;
  for (const key of keys) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && IDENTIFIER_RE.test(key)) out += `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** A value safe to show in JSON output: scalars as they are, the rest described. */
function displayValue(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
      return value.length > 200 ? `${value.slice(0, 200)}…` : value;
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return `${value}n`;
    case 'undefined':
      return undefined;
    case 'function':
      return '[function]';
    case 'symbol':
      return String(value);
    default:
      return value === null ? null : undefined;
  }
}

/**
 * Validates and normalizes caller entries (SPEC §4). All or nothing: when any item is
 * invalid, throws {@link InputError} (exit 2) whose `details` list every problem of every item
 * as `{path, message, value?}`, `path` like `[3].timestamp`, `[0].metadata.duration`,
 * `[2].metadata.__proto__` or `[1]` (the item is not an object); `value` is the offending
 * scalar when there is one.
 *
 * Output entries are fresh objects with keys in the order entryId, userId, action, timestamp,
 * metadata (omitted when absent); `timestamp` is integer epoch milliseconds; numeric
 * `metadata.taskId` becomes a string; metadata values under a key equal to one of
 * `opts.redactKeys` (see {@link isRedacted}: case- and separator-insensitive, contained, at any depth) are `"[REDACTED]"`; `entryId` is the
 * given one or {@link deriveEntryId}. The input is never mutated.
 *
 * @param raw items as parsed from JSON (or built by a source)
 * @param opts.now wall clock, epoch ms; `opts.maxClockSkew`: milliseconds a timestamp may lie
 *   in the future; `opts.redactKeys`: config `privacy.redactKeys`
 * @throws InputError when any item is invalid; nothing is returned then
 */
export function validateEntries(raw: unknown[], opts: { now: number; maxClockSkew: number; redactKeys: readonly string[] }): Entry[] {
  const redact = new Set(opts.redactKeys.map(normalizeKey).filter((k) => k !== ''));
  const schemaOpts: CallOptions = {
    now: opts.now,
    maxClockSkew: opts.maxClockSkew,
    redact,
    redactedKey: memoizedRedaction(redact),
    canonicalMetadata: new WeakMap(),
  };
  const schema = createEntrySchema(schemaOpts);
  const out: Entry[] = [];
  const details: ErrorDetail[] = [];
  let invalid = 0;
  for (let i = 0; i < raw.length; i++) {
    const result = v.safeParse(schema, raw[i]);
    if (!result.success) {
      invalid++;
      for (const issue of result.issues) {
        const keys = issue.path?.map((p) => p.key) ?? [];
        const detail: ErrorDetail = { path: formatPath(i, keys), message: issue.message };
        // An unknown key's issue input is the key itself, already in the path.
        const value = issue.type === 'strict_object' && issue.expected !== 'Object' ? undefined : displayValue(issue.input);
        if (value !== undefined) detail.value = value;
        details.push(detail);
      }
      continue;
    }
    if (details.length > 0) continue;
    const e = result.output;
    const timestamp = e.timestamp as number;
    const entryId =
      e.entryId ??
      entryIdOf(e.userId, e.action, timestamp, e.metadata === undefined ? undefined : (schemaOpts.canonicalMetadata.get(e.metadata) ?? JSON.stringify(e.metadata)));
    // Members in canonical (sorted) order, like the metadata copy: JSON.stringify of a stored
    // entry is then its canonical JSON (see inCanonicalOrder), as batch checksums need.
    out.push(
      e.metadata === undefined
        ? { action: e.action, entryId, timestamp, userId: e.userId }
        : { action: e.action, entryId, metadata: e.metadata, timestamp, userId: e.userId },
    );
  }
  if (details.length > 0) throw new InputError(ENTRY_MESSAGES.invalidEntries(invalid), { details });
  return out;
}

const NOT_COPYABLE = Symbol('not copyable');
/** Digits that may be an array index, which engines list before other keys (checked conservatively). */
const ARRAY_INDEX_RE = /^(?:0|[1-9]\d{0,9})$/;

/**
 * Canonical JSON: like `JSON.stringify` without whitespace, with object keys sorted by UTF-16
 * code units at every depth (RFC 8785 key order; numbers in ECMAScript form). `undefined`
 * object members are dropped and `undefined` array items become `null`, as in JSON. Used for
 * derived entry ids and batch checksums, so equal data always hashes equal.
 */
export function canonicalJson(value: unknown): string {
  // Fast path, same output: a copy with keys in canonical order, serialized by the native
  // JSON.stringify (stored metadata is key-sorted already, so mostly only entries are copied).
  // Reports verify every batch checksum through here: 1M entries in well under a second.
  if (inCanonicalOrder(value)) return JSON.stringify(value) ?? 'null';
  const copy = canonicalCopy(value);
  if (copy !== NOT_COPYABLE) return JSON.stringify(copy) ?? 'null';
  return canonicalJsonSlow(value);
}

/**
 * True when {@link canonicalCopy} would return `value` itself, so that `JSON.stringify(value)`
 * is its canonical JSON: every object plain, without an array-index, `__proto__` or `toJSON`
 * key, its keys already in ascending code-unit order — as validation builds entries and
 * metadata. Allocates nothing (for…in instead of Object.keys): a batch of validated entries is
 * checked and then serialized by one native `JSON.stringify`. An inherited enumerable key (a
 * polluted prototype) can only make it answer false.
 */
export function inCanonicalOrder(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if ((proto !== Object.prototype && proto !== null) || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  let previous: string | undefined;
  for (const key in value) {
    const first = key.charCodeAt(0);
    if ((first >= 48 && first <= 57 && ARRAY_INDEX_RE.test(key)) || key === '__proto__') return false;
    if (previous !== undefined && !(previous < key)) return false;
    previous = key;
    if (!inCanonicalOrder((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

/** The reference algorithm, for values {@link canonicalCopy} cannot reorder. */
function canonicalJsonSlow(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const item: unknown = value[i];
      out += item === undefined || typeof item === 'function' || typeof item === 'symbol' ? 'null' : canonicalJsonSlow(item);
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const item = obj[key];
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(key)}:${canonicalJsonSlow(item)}`;
  }
  return `${out}}`;
}

/**
 * `value`, or a copy of it, whose `JSON.stringify` is its canonical JSON; NOT_COPYABLE when
 * insertion order cannot make it so: an object with an array-index key (engines list those
 * first, in numeric order), a `__proto__` own key, a `toJSON` method or a prototype other than
 * Object's (a Date, a Map…). Unchanged parts are shared, not copied.
 */
function canonicalCopy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const copy = canonicalCopy(item);
      if (copy === NOT_COPYABLE) return NOT_COPYABLE;
      if (copy !== item) (out ??= value.slice())[i] = copy;
    }
    return out ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if ((proto !== Object.prototype && proto !== null) || typeof (value as { toJSON?: unknown }).toJSON === 'function') return NOT_COPYABLE;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let sorted = true;
  let changed = false;
  const copies: unknown[] = new Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const first = key.charCodeAt(0);
    if ((first >= 48 && first <= 57 && ARRAY_INDEX_RE.test(key)) || key === '__proto__') return NOT_COPYABLE;
    if (i > 0 && !(keys[i - 1]! < key)) sorted = false;
    const item = obj[key];
    const copy = canonicalCopy(item);
    if (copy === NOT_COPYABLE) return NOT_COPYABLE;
    copies[i] = copy;
    if (copy !== item) changed = true;
  }
  if (sorted && !changed) return value;
  const order = sorted ? keys.map((_, i) => i) : keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1));
  const out: Record<string, unknown> = {};
  for (const i of order) out[keys[i]!] = copies[i];
  return out;
}

/**
 * Deterministic entry id (SPEC §4): `"e_"` + the first 32 hex digits (128 bits) of the SHA-256
 * of {@link canonicalJson} of `{userId, action, timestamp, metadata?}` — the normalized fields,
 * i.e. after timestamp conversion to epoch ms, taskId conversion and redaction. The same
 * activity submitted twice (in any key order, with the timestamp in seconds or ISO form)
 * therefore gets the same id and is counted as a duplicate.
 */
export function deriveEntryId(e: { userId: string; action: string; timestamp: number; metadata?: Record<string, unknown> | undefined }): string {
  return entryIdOf(e.userId, e.action, e.timestamp, e.metadata === undefined ? undefined : canonicalJson(e.metadata));
}

/**
 * The id from the parts, the metadata already in canonical JSON. Spells out
 * `canonicalJson({userId, action, timestamp, metadata})` — keys in sorted order action,
 * metadata, timestamp, userId — without building the object (the unit tests hold both equal).
 */
function entryIdOf(userId: string, action: string, timestamp: number, canonicalMetadata: string | undefined): string {
  const meta = canonicalMetadata === undefined ? '' : `"metadata":${canonicalMetadata},`;
  const canonical = `{"action":${JSON.stringify(action)},${meta}"timestamp":${JSON.stringify(timestamp)},"userId":${JSON.stringify(userId)}}`;
  return `e_${hash('sha256', canonical, 'hex').slice(0, 32)}`;
}

/**
 * Parses the text of `--input` or `--entry` (SPEC §4): a JSON array (text starting with `[`),
 * a single JSON object (possibly spanning lines), or NDJSON — one JSON value per non-empty
 * line, each value one entry. A leading UTF-8 BOM is stripped; blank text gives no items.
 * Items are returned unvalidated (see {@link validateEntries}); an NDJSON line that does not
 * parse is left out and listed in `problems`, so the caller can validate the rest and report
 * everything at once.
 *
 * @param origin where the text came from, used in error paths: `--input=foo.ndjson`, `--entry[2]`
 * @returns `items`; for NDJSON, `lines[k]` is item k's 1-based physical line; `problems` lists
 *   every unparseable line as `{path: "<origin>:line N", message}`
 * @throws InputError `{path: origin, message}` when a JSON array does not parse (nothing in it can be read)
 */
export function parseEntryText(text: string, origin: string): { items: unknown[]; lines?: number[]; problems: ErrorDetail[] } {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const trimmed = body.trimStart();
  if (trimmed === '') return { items: [], problems: [] };
  if (trimmed.startsWith('[')) {
    try {
      return { items: JSON.parse(body) as unknown[], problems: [] };
    } catch (error) {
      throw new InputError(ENTRY_MESSAGES.invalidArray(origin), {
        details: [{ path: origin, message: ENTRY_MESSAGES.badJson((error as Error).message) }],
        cause: error,
      });
    }
  }
  if (trimmed.startsWith('{')) {
    try {
      return { items: [JSON.parse(body) as unknown], problems: [] };
    } catch {
      // not one object: read it as NDJSON below
    }
  }
  const lines = body.split('\n');
  const items: unknown[] = [];
  const itemLines: number[] = [];
  const problems: ErrorDetail[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '') continue;
    try {
      items.push(JSON.parse(line));
      itemLines.push(i + 1);
    } catch (error) {
      problems.push({ path: `${origin}:line ${i + 1}`, message: ENTRY_MESSAGES.badJson((error as Error).message) });
    }
  }
  return { items, lines: itemLines, problems };
}

/** Lines of text that did not parse, by where they came from (see {@link parseEntryText}). */
export interface BadLines {
  origin: string;
  problems: ErrorDetail[];
}

/**
 * The one InputError for a call's input (exit 2), or undefined when there is nothing to report:
 * the NDJSON lines that did not parse and the problems of the entries that did (`invalid`, an
 * InputError of {@link validateEntries}, whose `[i]` paths count the parsed items), in the order
 * of the input. Each entry problem gets `source` (`--input=f.ndjson:line 5`) from `sourceOf(i)`
 * when the item came from NDJSON. The message counts both: see ENTRY_MESSAGES.
 */
export function inputError(badLines: readonly BadLines[], invalid: InputError | undefined, sourceOf: (item: number) => { origin: string; line: number } | undefined): InputError | undefined {
  const bad = badLines.filter((b) => b.problems.length > 0);
  if (bad.length === 0 && invalid === undefined) return undefined;
  // Sort key: origin (in argument order), then line; problems without a line keep their place.
  const order = new Map<string, number>();
  const rank = (origin: string) => {
    if (!order.has(origin)) order.set(origin, order.size);
    return order.get(origin)!;
  };
  const keyed: Array<{ detail: ErrorDetail; origin: number; line: number; seq: number }> = [];
  let seq = 0;
  const invalidItems = new Set<string>();
  for (const detail of invalid?.details ?? []) {
    const index = /^\[(\d+)\]/.exec(detail.path);
    if (index) invalidItems.add(index[1]!);
    const at = index ? sourceOf(Number(index[1])) : undefined;
    keyed.push({ detail: at ? { ...detail, source: `${at.origin}:line ${at.line}` } : detail, origin: at ? rank(at.origin) : -1, line: at?.line ?? 0, seq: seq++ });
  }
  let lines = 0;
  for (const { origin, problems } of bad) {
    for (const detail of problems) {
      lines++;
      keyed.push({ detail, origin: rank(origin), line: Number(/:line (\d+)$/.exec(detail.path)?.[1] ?? 0), seq: seq++ });
    }
  }
  keyed.sort((a, b) => a.origin - b.origin || a.line - b.line || a.seq - b.seq);
  const details = keyed.map((k) => k.detail);
  if (bad.length === 0) return new InputError(invalid!.message, { details });
  const origin = bad[0]!.origin;
  const message = invalid === undefined ? ENTRY_MESSAGES.invalidText(lines, origin) : ENTRY_MESSAGES.badLinesAndInvalid(origin, lines, invalidItems.size);
  return new InputError(message, { details });
}
