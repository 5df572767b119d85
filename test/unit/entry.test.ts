import test from 'ava';
import { entriesChecksum, makeBatch, parseBatchBytes, serializeBatch } from '../../plugins/aggregation/batch-store.js';
import { createHash } from 'node:crypto';
import { InputError } from '../../src/core/errors.js';
import {
  canonicalJson,
  deriveEntryId,
  inputError,
  parseEntryText,
  validateEntries,
  MAX_DURATION_MS,
  METADATA_MAX_BYTES,
} from '../../plugins/aggregation/entry.js';

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0); // 2024-05-01T12:00:00Z
const SKEW = 300_000;
const OPTS = { now: NOW, maxClockSkew: SKEW, redactKeys: ['token', 'password', 'secret', 'apiKey', 'authorization', 'cookie'] };
const base = { userId: 'alice', action: 'commit', timestamp: 1_700_000_000_000 };

function reject(t: import('ava').ExecutionContext, raw: unknown[], opts = OPTS): InputError {
  const error = t.throws(() => validateEntries(raw, opts), { instanceOf: InputError });
  if (!error) throw new Error('unreachable');
  return error as InputError;
}
const paths = (e: InputError) => e.details.map((d) => d.path);

test('a valid entry is normalized: canonical (sorted) key order, derived id, no metadata key when absent', (t) => {
  const [e] = validateEntries([{ timestamp: 1_700_000_000_000, action: 'commit', userId: 'alice' }], OPTS);
  t.deepEqual(Object.keys(e!), ['action', 'entryId', 'timestamp', 'userId']);
  t.is(JSON.stringify(e), canonicalJson(e));
  t.is(e!.timestamp, 1_700_000_000_000);
  t.regex(e!.entryId, /^e_[0-9a-f]{32}$/);
  t.is(e!.entryId, deriveEntryId(base));
});

test('a given entryId is kept; key order with metadata is action, entryId, metadata, timestamp, userId (canonical)', (t) => {
  const [e] = validateEntries([{ metadata: { a: 1 }, entryId: 'my-id', ...base }], OPTS);
  t.deepEqual(Object.keys(e!), ['action', 'entryId', 'metadata', 'timestamp', 'userId']);
  t.is(e!.entryId, 'my-id');
  t.is(JSON.stringify(e), '{"action":"commit","entryId":"my-id","metadata":{"a":1},"timestamp":1700000000000,"userId":"alice"}');
});

test('deriveEntryId is sha256 of canonical JSON of the normalized fields, first 32 hex, prefixed e_', (t) => {
  const fields = { userId: 'alice', action: 'commit', timestamp: 1_700_000_000_000, metadata: { z: 1, a: [{ y: 2, b: 3 }] } };
  const canonical = '{"action":"commit","metadata":{"a":[{"b":3,"y":2}],"z":1},"timestamp":1700000000000,"userId":"alice"}';
  t.is(canonicalJson(fields), canonical);
  t.is(deriveEntryId(fields), `e_${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}`);
  // validateEntries derives the same id, whatever the key order and timestamp form
  const [e1] = validateEntries([{ timestamp: 1_700_000_000, metadata: { a: [{ b: 3, y: 2 }], z: 1 }, action: 'commit', userId: 'alice' }], OPTS);
  const [e2] = validateEntries([{ ...fields, timestamp: '2023-11-14T22:13:20.000Z' }], OPTS);
  t.is(e1!.entryId, deriveEntryId(fields));
  t.is(e2!.entryId, deriveEntryId(fields));
});

test('derived id with array-index-like metadata keys equals canonicalJson-based id', (t) => {
  const meta = { '10': 'x', '9': 'y', b: { '2': 1, '1': 2 } };
  const [e] = validateEntries([{ ...base, metadata: meta }], OPTS);
  t.is(e!.entryId, `e_${createHash('sha256').update(canonicalJson({ ...base, metadata: meta })).digest('hex').slice(0, 32)}`);
  t.is(canonicalJson(meta), '{"10":"x","9":"y","b":{"1":2,"2":1}}');
});

test('canonicalJson: no whitespace, nested sort, undefined dropped in objects and null in arrays', (t) => {
  t.is(canonicalJson({ b: [1, undefined, 'x'], a: { d: null, c: true }, u: undefined }), '{"a":{"c":true,"d":null},"b":[1,null,"x"]}');
  t.is(canonicalJson('é"'), '"é\\""');
  t.is(canonicalJson(1.5), '1.5');
});

/** The definition of canonical JSON, written plainly: the reference canonicalJson must match. */
function referenceCanonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((x) => (x === undefined || typeof x === 'function' || typeof x === 'symbol' ? 'null' : referenceCanonical(x))).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const members = Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function' && typeof obj[k] !== 'symbol')
    .map((k) => `${JSON.stringify(k)}:${referenceCanonical(obj[k])}`);
  return `{${members.join(',')}}`;
}

test('canonicalJson equals the plain definition on tricky and on random values (its fast path reorders copies)', (t) => {
  const tricky: unknown[] = [
    JSON.parse('{"__proto__": {"b": 1, "a": 2}, "z": 0}'),
    { '10': 'x', '9': 'y', '4294967295': 'not an index', a: [{ '1': 1, b: 2, a: 1 }] },
    { toJSON: 'a string, not a method', b: 1, a: 2 },
    { when: new Date(0), b: undefined, a: [undefined, () => 1, Symbol('s')] },
    Object.assign(Object.create(null), { b: 1, a: { d: 1, c: [] } }),
    [{ b: 1, a: 2 }, [{ d: 1, c: 2 }], 'x', null, -0, 1e21, 'é\u2028"'],
    { entryId: 'e', userId: 'u', action: 'commit', timestamp: 1, metadata: { branch: null, parents: ['a', 'b'], sha: 'x', tz: '+0100' } },
    // Already in canonical order: serialized as they are (inCanonicalOrder), unless something
    // in them makes JSON.stringify differ from the definition.
    { action: 'commit', entryId: 'e', metadata: { a: [{ b: 1, c: { d: NaN, e: undefined } }], z: -0 }, timestamp: 1, userId: 'u' },
    { a: new Date(0), b: 1 },
    { a: { toJSON: () => 'replaced' }, b: 1 },
    { '1': 'index key first', a: 2 },
    { a: 1, b: Object.assign(Object.create({ inherited: 'enumerable' }), { c: 1 }) },
    [[{ a: 1 }], { b: [{ c: 1, d: 2 }] }],
    undefined,
  ];
  for (const value of tricky) t.is(canonicalJson(value), referenceCanonical(value));
  let seed = 42;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const keys = ['a', 'b', 'Z', '0', '7', '10', 'é', 'a.b', 'duration', '__proto__'];
  const gen = (depth: number): unknown => {
    const kind = rnd(depth > 3 ? 4 : 7);
    if (kind === 0) return rnd(1000) - 500;
    if (kind === 1) return `s${rnd(50)}`;
    if (kind === 2) return rnd(2) === 0 ? null : rnd(2) === 0;
    if (kind === 3) return undefined;
    if (kind === 4) return Array.from({ length: rnd(4) }, () => gen(depth + 1));
    const obj: Record<string, unknown> = {};
    for (let i = rnd(5); i > 0; i--) Object.defineProperty(obj, keys[rnd(keys.length)]!, { value: gen(depth + 1), enumerable: true, writable: true, configurable: true });
    return obj;
  };
  for (let i = 0; i < 2000; i++) {
    const value = gen(0);
    t.is(canonicalJson(value), referenceCanonical(value), JSON.stringify(value));
  }
});

test('batch checksums equal sha256 over the plain canonical JSON, for stored entries and odd shapes alike', (t) => {
  const entries: unknown[] = [
    { entryId: 'commit:1', userId: 'ana', action: 'commit', timestamp: 1_700_000_000_000, metadata: { branch: null, parents: ['p'], sha: '1', tz: '+0100' } },
    { entryId: 's', userId: 'é"\u2028', action: 'time-tracking', timestamp: 1, metadata: { z: { b: 1, a: [{ d: 1, c: 2 }] }, '10': 1, '9': 2 } },
    { userId: 'u', action: 'a', timestamp: 2, entryId: 'no metadata' },
    { entryId: 'extra', userId: 'u', action: 'a', timestamp: 3, extra: true },
    { entryId: 7, userId: 'u', action: 'a', timestamp: '4' },
    { entryId: 'undefined metadata', userId: 'u', action: 'a', timestamp: 5, metadata: undefined },
    JSON.parse('{"entryId":"p","userId":"u","action":"a","timestamp":6,"__proto__":{"x":1}}'),
    null,
    ['not', 'an', 'entry'],
  ];
  const expected = (list: unknown[]) => `sha256:${createHash('sha256').update(referenceCanonical(list)).digest('hex')}`;
  t.is(entriesChecksum(entries as never), expected(entries));
  for (const one of entries) t.is(entriesChecksum([one] as never), expected([one]));
  t.is(entriesChecksum([]), expected([]));
  // Validated entries (canonical order: one native JSON.stringify) hash as the definition says.
  const validated = validateEntries([{ ...base, metadata: { z: 1, a: { d: [1, { c: 2, b: 3 }] } } }, { ...base, entryId: 'x' }], OPTS);
  t.is(entriesChecksum(validated), expected(validated));
});

test('serializeBatch: the file text parses back to the batch makeBatch builds, and reads back as a verified batch', (t) => {
  const validated = validateEntries([{ ...base, metadata: { z: 1, a: { d: [1, { c: 2, b: 3 }] } } }, { ...base, entryId: 'x', metadata: { taskId: 7 } }], OPTS);
  // Entries not in canonical order (as an older file holds them) take the entry-by-entry path.
  const unordered = [{ userId: 'u', entryId: 'o', timestamp: 1, action: 'a', metadata: { b: 1, a: 2 } }];
  for (const entries of [validated, unordered, []]) {
    const { batch, text } = serializeBatch('batch_1700000000000_0000abcd', 1_700_000_000_123, entries as never, true);
    t.deepEqual(batch, makeBatch('batch_1700000000000_0000abcd', 1_700_000_000_123, entries as never, true));
    const read = parseBatchBytes(Buffer.from(text));
    t.true('batch' in read, JSON.stringify(read));
    if ('batch' in read) {
      t.is(read.batch.checksum, batch.checksum);
      t.deepEqual(Object.keys(JSON.parse(text)), ['batchId', 'timestamp', 'version', 'entries', 'entryCount', 'recovered', 'checksum']);
      t.is(JSON.stringify(JSON.parse(text).entries), referenceCanonical(entries));
    }
  }
});

test('the redacted, converted metadata feeds the derived id', (t) => {
  const [a] = validateEntries([{ ...base, metadata: { token: 'one', taskId: 7 } }], OPTS);
  const [b] = validateEntries([{ ...base, metadata: { token: 'two', taskId: '7' } }], OPTS);
  t.is(a!.entryId, b!.entryId);
  t.is(a!.entryId, deriveEntryId({ ...base, metadata: { token: '[REDACTED]', taskId: '7' } }));
});

// ---- timestamp -------------------------------------------------------------------------------

test('timestamp: epoch seconds (< 1e11) are converted to ms exactly', (t) => {
  const out = validateEntries(
    [
      { ...base, timestamp: 1_700_000_000 },
      { ...base, timestamp: 1_700_000_000.123 },
      { ...base, timestamp: 1_700_000_000.5 },
      { ...base, timestamp: 99_999_999_999 * 10 }, // ms
    ],
    OPTS,
  );
  t.deepEqual(
    out.map((e) => e.timestamp),
    [1_700_000_000_000, 1_700_000_000_123, 1_700_000_000_500, 999_999_999_990],
  );
});

test('timestamp: ISO-8601 with offset converted exactly; Z and fractions', (t) => {
  const out = validateEntries(
    [
      { ...base, timestamp: '2024-03-10T14:30:00+02:00' },
      { ...base, timestamp: '2024-03-10T14:30:00-05:30' },
      { ...base, timestamp: '2024-03-10T12:30:00.250Z' },
      { ...base, timestamp: '2024-03-10T12:30Z' },
      { ...base, timestamp: '2024-03-10T12:30:00.250000Z' },
    ],
    OPTS,
  );
  t.deepEqual(
    out.map((e) => e.timestamp),
    [Date.UTC(2024, 2, 10, 12, 30), Date.UTC(2024, 2, 10, 20, 0), Date.UTC(2024, 2, 10, 12, 30, 0, 250), Date.UTC(2024, 2, 10, 12, 30), Date.UTC(2024, 2, 10, 12, 30, 0, 250)],
  );
});

test('timestamp: every rejection with its exact path', (t) => {
  const error = reject(t, [
    { ...base, timestamp: Number.NaN },
    { ...base, timestamp: Number.POSITIVE_INFINITY },
    { ...base, timestamp: 1_700_000_000_000.5 },
    { ...base, timestamp: 1_700_000_000.1234 },
    { ...base, timestamp: '2024-03-10T14:30:00' },
    { ...base, timestamp: '2024-03-10' },
    { ...base, timestamp: '1700000000000' },
    { ...base, timestamp: '1999-12-31T23:59:59.999Z' },
    { ...base, timestamp: NOW + SKEW + 1 },
    { ...base, timestamp: true },
    { ...base, timestamp: '2024-02-30T00:00:00Z' },
    { ...base, timestamp: '2024-03-10T12:30:00.0001Z' },
    { userId: 'a', action: 'b' },
  ]);
  t.is(error.code, 'E_INPUT');
  t.is(error.exitCode, 2);
  t.is(error.message, '13 invalid entries: nothing was accepted');
  t.deepEqual(paths(error), Array.from({ length: 13 }, (_, i) => `[${i}].timestamp`));
  t.deepEqual(error.details[0], { path: '[0].timestamp', message: 'timestamp must be a finite number (not NaN or Infinity)', value: 'NaN' });
  t.is(error.details[1]!.value, 'Infinity');
  t.is(error.details[2]!.message, 'timestamp must be a whole number of milliseconds after conversion');
  t.is(error.details[3]!.message, 'timestamp must be a whole number of milliseconds after conversion');
  t.regex(error.details[4]!.message, /with an offset/);
  t.regex(error.details[6]!.message, /not a numeric string/);
  t.is(error.details[7]!.message, 'timestamp is before 2000-01-01T00:00:00Z');
  t.is(error.details[8]!.message, 'timestamp is more than 300000 ms in the future (maxClockSkew)');
  t.is(error.details[12]!.message, 'timestamp is required');
});

test('timestamp: boundaries — exactly 2000-01-01 and exactly now + skew are accepted', (t) => {
  const out = validateEntries([
    { ...base, timestamp: '2000-01-01T00:00:00Z' },
    { ...base, timestamp: 946_684_800 },
    { ...base, timestamp: NOW + SKEW },
    { ...base, timestamp: NOW + 1000 },
  ], OPTS);
  t.deepEqual(out.map((e) => e.timestamp), [946_684_800_000, 946_684_800_000, NOW + SKEW, NOW + 1000]);
  const error = reject(t, [{ ...base, timestamp: NOW + 1 }], { ...OPTS, maxClockSkew: 0 });
  t.deepEqual(paths(error), ['[0].timestamp']);
});

// ---- userId, action, entryId, shape ---------------------------------------------------------

test('text must be well-formed Unicode: a lone surrogate in an id, the user or metadata is refused with its path; surrogate pairs are fine', (t) => {
  // A lone surrogate becomes U+FFFD in UTF-8 (the id index): "lone-\ud800" and "lone-\ufffd" would meet as one id.
  t.deepEqual(
    validateEntries([{ ...base, entryId: 'pair-\ud83d\ude00', userId: 'ana-\ud83d\ude00', metadata: { 'k\ud83d\ude00': ['v\ud83d\ude00'] } }], OPTS).map((e) => e.entryId),
    ['pair-\ud83d\ude00'],
  );
  const error = reject(t, [
    { ...base, entryId: 'lone-\ud800-a' },
    { ...base, userId: 'ana\udc00' },
    { ...base, metadata: { note: 'x\ud800', nested: { ['k\udfff']: 1, list: ['ok', '\ud800'] } } },
    { ...base, metadata: { taskId: 'T-\ud800', sessionId: '\udc00' } },
  ]);
  t.deepEqual(paths(error), ['[0].entryId', '[1].userId', '[2].metadata.nested["k\\udfff"]', '[2].metadata.nested.list[1]', '[2].metadata.note', '[3].metadata.sessionId', '[3].metadata.taskId']);
  t.is(error.details[0]!.message, 'entryId is not well-formed Unicode (it has a lone UTF-16 surrogate, e.g. \\ud800): such text cannot be stored as UTF-8');
  t.is(error.details[4]!.message, 'a metadata text is not well-formed Unicode (it has a lone UTF-16 surrogate, e.g. \\ud800): such text cannot be stored as UTF-8');
});

test('userId: length 1–128 and no control characters', (t) => {
  t.is(validateEntries([{ ...base, userId: 'x'.repeat(128) }], OPTS).length, 1);
  const error = reject(t, [
    { ...base, userId: '' },
    { ...base, userId: 'x'.repeat(129) },
    { ...base, userId: 'a\u0000b' },
    { ...base, userId: 'tab\there' },
    { ...base, userId: 'del\u007f' },
    { ...base, userId: 'c1\u0085' },
    { ...base, userId: 42 },
    { ...base, userId: 'admin\u202Enimda' },
    { ...base, userId: 'iso\u2066late' },
  ]);
  t.deepEqual(paths(error), ['[0].userId', '[1].userId', '[2].userId', '[3].userId', '[4].userId', '[5].userId', '[6].userId', '[7].userId', '[8].userId']);
  t.is(error.details[2]!.message, 'userId must not contain control or bidirectional-override characters');
  t.is(error.details[7]!.message, 'userId must not contain control or bidirectional-override characters');
  t.is(error.details[6]!.message, 'userId must be a string');
  t.is(error.details[6]!.value, 42);
});

test('action: 1–64 of [A-Za-z0-9_.:-]', (t) => {
  t.is(validateEntries([{ ...base, action: 'time-tracking:v2.session_x' }, { ...base, action: 'a'.repeat(64) }], OPTS).length, 2);
  const error = reject(t, [{ ...base, action: '' }, { ...base, action: 'a'.repeat(65) }, { ...base, action: 'has space' }, { ...base, action: 'ümlaut' }, { ...base, action: 'a/b' }]);
  t.deepEqual(paths(error), ['[0].action', '[1].action', '[2].action', '[3].action', '[4].action']);
  t.deepEqual(error.details[2], { path: '[2].action', message: 'action must be 1–64 characters of A–Z a–z 0–9 _ . : -', value: 'has space' });
});

test('entryId: when given, 1–128 chars without control characters', (t) => {
  const error = reject(t, [{ ...base, entryId: '' }, { ...base, entryId: 'x'.repeat(129) }, { ...base, entryId: 'a\nb' }, { ...base, entryId: 5 }]);
  t.deepEqual(paths(error), ['[0].entryId', '[1].entryId', '[2].entryId', '[3].entryId']);
});

test('not an object, unknown top-level keys (incl. JSON.parse __proto__)', (t) => {
  const error = reject(t, [42, null, [], 'x', { ...base, extra: 1 }, JSON.parse('{"userId":"u","action":"a","timestamp":1700000000,"__proto__":{"x":1}}')]);
  t.deepEqual(paths(error), ['[0]', '[1]', '[2]', '[3]', '[4].extra', '[5].__proto__']);
  t.deepEqual(error.details[0], { path: '[0]', message: 'an entry must be a JSON object {userId, action, timestamp, metadata?, entryId?}', value: 42 });
  t.is(error.details[4]!.message, 'unknown field "extra" (allowed: entryId, userId, action, timestamp, metadata)');
});

test('several invalid entries: every problem of every entry listed together, valid ones not returned', (t) => {
  const error = reject(t, [
    base,
    { userId: '', action: 'bad action', timestamp: Number.NaN, metadata: { duration: -1 } },
    base,
    { ...base, metadata: { taskId: 1.5, sessionId: 3 } },
  ]);
  t.is(error.message, '2 invalid entries: nothing was accepted');
  t.deepEqual(paths(error), ['[1].userId', '[1].action', '[1].timestamp', '[1].metadata.duration', '[3].metadata.sessionId', '[3].metadata.taskId']);
});

// ---- metadata --------------------------------------------------------------------------------

test('metadata: taskId number → string, string kept; sessionId string', (t) => {
  const out = validateEntries([{ ...base, metadata: { taskId: 42, sessionId: 's1' } }, { ...base, metadata: { taskId: 'T-9' } }], OPTS);
  t.deepEqual(out[0]!.metadata, { sessionId: 's1', taskId: '42' });
  t.deepEqual(out[1]!.metadata, { taskId: 'T-9' });
  const error = reject(t, [{ ...base, metadata: { taskId: 2 ** 53 } }, { ...base, metadata: { taskId: null } }, { ...base, metadata: { sessionId: 1 } }]);
  t.deepEqual(paths(error), ['[0].metadata.taskId', '[1].metadata.taskId', '[2].metadata.sessionId']);
});

test('metadata.duration: integer ms, 0 ≤ d ≤ 7 days', (t) => {
  const out = validateEntries([{ ...base, metadata: { duration: 0 } }, { ...base, metadata: { duration: MAX_DURATION_MS } }], OPTS);
  t.deepEqual(out.map((e) => e.metadata!.duration), [0, 604_800_000]);
  const error = reject(t, [
    { ...base, metadata: { duration: -1 } },
    { ...base, metadata: { duration: MAX_DURATION_MS + 1 } },
    { ...base, metadata: { duration: 1.5 } },
    { ...base, metadata: { duration: '60' } },
  ]);
  t.deepEqual(paths(error), ['[0].metadata.duration', '[1].metadata.duration', '[2].metadata.duration', '[3].metadata.duration']);
  t.deepEqual(error.details[1], {
    path: '[1].metadata.duration',
    message: 'metadata.duration must be an integer number of milliseconds from 0 to 604800000 (7 days)',
    value: 604_800_001,
  });
});

test('metadata: __proto__, constructor, prototype rejected at any depth (JSON.parse objects too)', (t) => {
  const parsed = JSON.parse('{"a":{"b":[{"__proto__":{"polluted":true}}]},"__proto__":1,"constructor":2}');
  const error = reject(t, [{ ...base, metadata: parsed }, { ...base, metadata: { x: { y: { prototype: 1 } } } }]);
  t.deepEqual(paths(error), ['[0].metadata.__proto__', '[0].metadata.a.b[0].__proto__', '[0].metadata.constructor', '[1].metadata.x.y.prototype']);
  t.is(error.details[0]!.message, 'key "__proto__" is not allowed (prototype pollution guard)');
  t.is(({} as Record<string, unknown>).polluted, undefined);
});

test('metadata: must be a plain object; non-JSON values rejected with paths', (t) => {
  const error = reject(t, [
    { ...base, metadata: [] },
    { ...base, metadata: 'x' },
    { ...base, metadata: new Date(0) },
    { ...base, metadata: { f: () => 1, u: undefined, n: Number.NaN, i: Number.NEGATIVE_INFINITY, b: 1n, d: new Date(0), arr: [1, undefined] } },
  ]);
  t.deepEqual(paths(error), [
    '[0].metadata',
    '[1].metadata',
    '[2].metadata',
    '[3].metadata.arr[1]',
    '[3].metadata.b',
    '[3].metadata.d',
    '[3].metadata.f',
    '[3].metadata.i',
    '[3].metadata.n',
    '[3].metadata.u',
  ]);
  t.is(error.details[0]!.message, 'metadata must be a plain JSON object');
  t.is(error.details[4]!.value, '1n');
  t.is(error.details[7]!.value, '-Infinity');
});

test('metadata: null-prototype objects are plain objects', (t) => {
  const meta = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
  t.deepEqual(validateEntries([{ ...base, metadata: meta }], OPTS)[0]!.metadata, { a: 1 });
});

test('metadata depth: metadata object is depth 1; depth 5 accepted, depth 6 rejected (arrays count)', (t) => {
  const depth5 = { a: { b: { c: { d: { leaf: 1 } } } } };
  const depth5Array = { a: [[[{ leaf: 1 }]]] };
  t.is(validateEntries([{ ...base, metadata: depth5 }, { ...base, metadata: depth5Array }], OPTS).length, 2);
  const error = reject(t, [{ ...base, metadata: { a: { b: { c: { d: { e: {} } } } } } }, { ...base, metadata: { a: [[[[[1]]]]] } }]);
  t.deepEqual(paths(error), ['[0].metadata.a.b.c.d.e', '[1].metadata.a[0][0][0][0]']);
  t.is(error.details[0]!.message, 'metadata is nested deeper than 5 levels (the metadata object is level 1)');
});

test('metadata size: 16384 UTF-8 bytes accepted, 16385 rejected (multi-byte characters count as bytes)', (t) => {
  // {"x":"…"} is 8 bytes of overhead
  const exact = { x: 'a'.repeat(METADATA_MAX_BYTES - 8) };
  t.is(Buffer.byteLength(JSON.stringify(exact)), 16_384);
  t.is(validateEntries([{ ...base, metadata: exact }], OPTS).length, 1);
  const over = { x: 'a'.repeat(METADATA_MAX_BYTES - 7) };
  const multi = { x: 'é'.repeat((METADATA_MAX_BYTES - 8) / 2), y: 1 }; // 2 bytes each, + ,"y":1
  const error = reject(t, [{ ...base, metadata: over }, { ...base, metadata: multi }]);
  t.deepEqual(error.details, [
    { path: '[0].metadata', message: 'metadata is 16385 bytes serialized; at most 16384 bytes (16 KiB) are allowed', value: 16_385 },
    { path: '[1].metadata', message: 'metadata is 16390 bytes serialized; at most 16384 bytes (16 KiB) are allowed', value: 16_390 },
  ]);
});

test('redaction: keys matched ignoring case and separators, contained, at any depth, input not mutated', (t) => {
  const meta = {
    Token: 'abc',
    nested: { PASSWORD: 'p', list: [{ apikey: { deep: 1 } }, { keep: 'me' }] },
    authorization: undefined,
    cookingTime: 'not a match',
    cookieJar: 'jar',
    x_api_key: 'k',
    accessToken: 'a',
  };
  const snapshot = structuredClone(meta);
  const [e] = validateEntries([{ ...base, metadata: meta }], OPTS);
  t.deepEqual(e!.metadata, {
    Token: '[REDACTED]',
    accessToken: '[REDACTED]',
    authorization: '[REDACTED]',
    cookieJar: '[REDACTED]',
    cookingTime: 'not a match',
    x_api_key: '[REDACTED]',
    nested: { PASSWORD: '[REDACTED]', list: [{ apikey: '[REDACTED]' }, { keep: 'me' }] },
  });
  t.deepEqual(meta, snapshot);
  t.not(e!.metadata, meta);
});

test('redaction uses the configured list only', (t) => {
  const [e] = validateEntries([{ ...base, metadata: { token: 't', custom: 'c' } }], { ...OPTS, redactKeys: ['CUSTOM'] });
  t.deepEqual(e!.metadata, { custom: '[REDACTED]', token: 't' });
});

// ---- parseEntryText ---------------------------------------------------------------------------

test('parseEntryText: JSON array, with BOM', (t) => {
  t.deepEqual(parseEntryText('\ufeff[{"a":1},{"b":2}]', '--input=x.json'), { items: [{ a: 1 }, { b: 2 }], problems: [] });
  t.deepEqual(parseEntryText('  \n', '--input=x'), { items: [], problems: [] });
});

test('parseEntryText: NDJSON with blank lines and CRLF, each item with its line; a single multi-line object is one entry', (t) => {
  t.deepEqual(parseEntryText('{"a":1}\r\n\r\n{"b":2}\n', '--input=x'), { items: [{ a: 1 }, { b: 2 }], lines: [1, 3], problems: [] });
  t.deepEqual(parseEntryText('{\n  "a": 1\n}\n', '--entry[0]'), { items: [{ a: 1 }], problems: [] });
});

test('parseEntryText: every bad NDJSON line listed with origin:line N; the other lines are still read', (t) => {
  const parsed = parseEntryText('{"a":1}\nnope\n\n{"b":2}\n{x\n', '--input=foo.ndjson');
  t.deepEqual(parsed.items, [{ a: 1 }, { b: 2 }]);
  t.deepEqual(parsed.lines, [1, 4]);
  t.deepEqual(parsed.problems.map((p) => p.path), ['--input=foo.ndjson:line 2', '--input=foo.ndjson:line 5']);
  t.regex(parsed.problems[0]!.message, /^not valid JSON: /);
  const error = inputError([{ origin: '--input=foo.ndjson', problems: parsed.problems }], undefined, () => undefined)!;
  t.is(error.message, '--input=foo.ndjson: 2 lines are not valid JSON: nothing was accepted');
  // The piece of input V8 quotes in its message (possibly a secret) is not repeated.
  t.deepEqual(parseEntryText('{"ok":1}\nnot json hunter2\n', 'stdin').problems, [{ path: 'stdin:line 2', message: "not valid JSON: Unexpected token 'o'" }]);
});

test('inputError: bad lines and invalid entries in one error, in line order, each entry problem with its source line', (t) => {
  const text = '{"userId":"a","action":"x","timestamp":"2024-01-01T00:00:00Z"}\n\n{"userId":"","action":"x","timestamp":"2024-01-01T00:00:00Z"}\n{bad\n{"userId":"a","action":"x y","timestamp":"2024-01-01T00:00:00Z"}\n';
  const parsed = parseEntryText(text, '--input=f.ndjson');
  const invalid = t.throws(() => validateEntries(parsed.items, { now: Date.UTC(2026, 0, 1), maxClockSkew: 0, redactKeys: [] }), { instanceOf: InputError }) as InputError;
  const error = inputError([{ origin: '--input=f.ndjson', problems: parsed.problems }], invalid, (i) => ({ origin: '--input=f.ndjson', line: parsed.lines![i]! }))!;
  t.is(error.message, '--input=f.ndjson: 1 line is not valid JSON and 2 entries are invalid: nothing was accepted');
  t.deepEqual(
    error.details.map((d) => [d.path, d.source]),
    [
      ['[1].userId', '--input=f.ndjson:line 3'],
      ['--input=f.ndjson:line 4', undefined],
      ['[2].action', '--input=f.ndjson:line 5'],
    ],
  );
  // Only invalid entries: the validation message, with sources; nothing at all: undefined.
  t.is(inputError([], invalid, () => undefined)!.message, '2 invalid entries: nothing was accepted');
  t.is(inputError([{ origin: 'stdin', problems: [] }], undefined, () => undefined), undefined);
});

test('parseEntryText: a broken JSON array names the origin', (t) => {
  const error = t.throws(() => parseEntryText('[{"a":1},', '--entry[2]'), { instanceOf: InputError }) as InputError;
  t.is(error.message, '--entry[2]: not a valid JSON array: nothing was accepted');
  t.deepEqual(paths(error), ['--entry[2]']);
});

test('parsed text flows into validation: __proto__ from JSON text is caught', (t) => {
  const raw = parseEntryText('{"userId":"u","action":"a","timestamp":"2024-01-01T00:00:00Z","metadata":{"x":{"__proto__":{"admin":true}}}}', '--entry[0]').items;
  const error = reject(t, raw);
  t.deepEqual(paths(error), ['[0].metadata.x.__proto__']);
});
