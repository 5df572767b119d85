import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resetStoreTuning, storeTuning } from '../../plugins/aggregation/aggregator.js';
import { entriesChecksum, makeBatch } from '../../plugins/aggregation/batch-store.js';
import { deriveEntryId } from '../../plugins/aggregation/entry.js';
import { openJournal } from '../../plugins/aggregation/journal.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateMigrate } from '../../plugins/aggregation/handlers/aggregate-migrate.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { aggregateStatus } from '../../plugins/aggregation/handlers/aggregate-status.js';
import { aggregateValidate } from '../../plugins/aggregation/handlers/aggregate-validate.js';
import { CorruptError, UsageError, type ErrorDetail } from '../../src/core/errors.js';
import { rawEntry, withTempStore, type TempStore } from '../helpers/store.js';

// Seed-style names: `batch_<ms>_<base-36 random>` (not this product's 8-hex suffix).
const A = 'batch_1700000000000_k3j4h5g6f';
const B = 'batch_1700000500000_a1b2c3d4e';

const file = (s: TempStore, rel: string) => path.join(s.dataRoot, rel);
const readJson = (s: TempStore, rel: string) => JSON.parse(fs.readFileSync(file(s, rel), 'utf8'));
function put(s: TempStore, rel: string, doc: unknown): Buffer {
  const bytes = Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2));
  fs.mkdirSync(path.dirname(file(s, rel)), { recursive: true });
  fs.writeFileSync(file(s, rel), bytes);
  return bytes;
}

/** Every directory and file under the data root, files with their bytes (base64). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const rel = path.relative(root, full);
      if (fs.statSync(full).isDirectory()) {
        out[`${rel}/`] = 'dir';
        walk(full);
      } else out[rel] = fs.readFileSync(full).toString('base64');
    }
  };
  walk(root);
  return out;
}

/** Legacy file A: no version, no checksum, no entryIds (but one), seconds and ISO timestamps, a secret in metadata. */
const legacyA = () => ({
  batchId: A,
  timestamp: 1700000050,
  entries: [
    { userId: 'ana', action: 'work', timestamp: 1700000000 },
    { userId: 'bo', action: 'review', timestamp: '2023-11-14T22:13:20Z', metadata: { taskId: 42, token: 's3cret' } },
    { entryId: 'legacy-1', userId: 'ana', action: 'work', timestamp: 1700000100000 },
  ],
});

/** Legacy file B (version 1.0.0): a duplicate of an indexed entry, of a pending one, of an entry of A, and one new entry. */
const legacyB = (s: TempStore) => ({
  batchId: B,
  timestamp: '2023-11-14T22:21:40Z',
  version: '1.0.0',
  entryCount: 4,
  entries: [
    rawEntry(1, s.clock.now() - 60_000),
    rawEntry(9, s.clock.now() - 1_000),
    { userId: 'ana', action: 'work', timestamp: '2023-11-14T22:13:20Z' },
    { userId: 'cy', action: 'call', timestamp: 1700000600, metadata: { duration: 60000 } },
  ],
});

const a0 = { entryId: deriveEntryId({ userId: 'ana', action: 'work', timestamp: 1700000000000 }), userId: 'ana', action: 'work', timestamp: 1700000000000 };
const a1Meta = { taskId: '42', token: '[REDACTED]' };
const a1 = { entryId: deriveEntryId({ userId: 'bo', action: 'review', timestamp: 1700000000000, metadata: a1Meta }), userId: 'bo', action: 'review', timestamp: 1700000000000, metadata: a1Meta };
const a2 = { entryId: 'legacy-1', userId: 'ana', action: 'work', timestamp: 1700000100000 };
const b3 = { entryId: deriveEntryId({ userId: 'cy', action: 'call', timestamp: 1700000600000, metadata: { duration: 60000 } }), userId: 'cy', action: 'call', timestamp: 1700000600000, metadata: { duration: 60000 } };

/**
 * A store this product already used: id-1 and id-2 in batch file X (compacted into the index),
 * id-9 pending in the journal; then the two legacy files. Returns X's batch id.
 */
async function storeWithLegacyFiles(t: import('ava').ExecutionContext, s: TempStore): Promise<{ x: string; bytesA: Buffer; bytesB: Buffer }> {
  storeTuning.compactAfterEntries = 1;
  t.teardown(resetStoreTuning);
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 60_000), rawEntry(2, s.clock.now() - 60_000)])], source: [] }, s.ctx);
  const forced = await aggregateForce.run({}, s.ctx);
  await aggregate.run({ entry: [JSON.stringify([rawEntry(9, s.clock.now() - 1_000)])], source: [] }, s.ctx);
  const bytesA = put(s, `aggregated/${A}.json`, legacyA());
  const bytesB = put(s, `aggregated/${B}.json`, legacyB(s));
  return { x: forced.flushed[0]!.batchId, bytesA, bytesB };
}

const summaryA = {
  file: `aggregated/${A}.json`,
  kind: 'batch',
  batchId: A,
  from: null,
  to: '2.0.0',
  entries: 3,
  derivedIds: 2,
  convertedTimestamps: 2,
  addedChecksum: true,
  duplicatesDropped: 0,
  original: `aggregated/recovery/migrated/${A}.json.orig`,
};
const summaryB = {
  file: `aggregated/${B}.json`,
  kind: 'batch',
  batchId: B,
  from: '1.0.0',
  to: '2.0.0',
  entries: 1,
  derivedIds: 1,
  convertedTimestamps: 1,
  addedChecksum: true,
  duplicatesDropped: 3,
  original: `aggregated/recovery/migrated/${B}.json.orig`,
};
const dropped = (x: string) => [
  { file: `aggregated/${B}.json`, index: 0, entryId: 'id-1', duplicateOf: x },
  { file: `aggregated/${B}.json`, index: 1, entryId: 'id-9', duplicateOf: 'journal' },
  { file: `aggregated/${B}.json`, index: 2, entryId: a0.entryId, duplicateOf: `aggregated/${A}.json` },
];

test('the dry run lists every change and leaves the data root byte for byte as it was', async (t) => {
  const s = withTempStore(t);
  const { x } = await storeWithLegacyFiles(t, s);
  const before = snapshot(s.dataRoot);
  const r = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.deepEqual(r, { dryRun: true, ok: true, migrated: [summaryA, summaryB], current: 1, refused: [], invalid: [], duplicatesDropped: dropped(x), skipped: [], notes: [] });
  t.deepEqual(snapshot(s.dataRoot), before);
});

test('the dry run of a data root only the older product wrote takes no lock and creates nothing', async (t) => {
  const s = withTempStore(t);
  put(s, `aggregated/${A}.json`, legacyA());
  const before = snapshot(s.dataRoot);
  const r = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.deepEqual(r.migrated, [summaryA]);
  t.deepEqual(snapshot(s.dataRoot), before);
});

test('--apply upgrades each file in place: version 2.0.0, ms timestamps, derived ids, redaction, entryCount and checksum; originals kept', async (t) => {
  const s = withTempStore(t);
  const { x, bytesA, bytesB } = await storeWithLegacyFiles(t, s);
  const r = await aggregateMigrate.run({ apply: true }, s.ctx);
  t.deepEqual(r, { dryRun: false, ok: true, migrated: [summaryA, summaryB], current: 1, refused: [], invalid: [], duplicatesDropped: dropped(x), skipped: [], notes: [] });

  const now = s.clock.now();
  t.deepEqual(readJson(s, `aggregated/${A}.json`), {
    ...makeBatch(A, 1700000050000, [a0, a1, a2]),
    migrated: { from: null, at: now, original: `aggregated/recovery/migrated/${A}.json.orig` },
  });
  const upgradedB = readJson(s, `aggregated/${B}.json`);
  t.deepEqual(upgradedB, {
    batchId: B,
    timestamp: Date.UTC(2023, 10, 14, 22, 21, 40),
    version: '2.0.0',
    entries: [b3],
    entryCount: 1,
    recovered: false,
    checksum: entriesChecksum([b3]),
    migrated: { from: '1.0.0', at: now, original: `aggregated/recovery/migrated/${B}.json.orig` },
  });
  t.deepEqual(fs.readFileSync(file(s, `aggregated/recovery/migrated/${A}.json.orig`)), bytesA);
  t.deepEqual(fs.readFileSync(file(s, `aggregated/recovery/migrated/${B}.json.orig`)), bytesB);
  t.is(fs.statSync(file(s, `aggregated/${A}.json`)).mode & 0o777, 0o600);
  t.is(fs.statSync(file(s, 'aggregated/recovery/migrated')).mode & 0o777, 0o700);

  // Status counts the upgraded batches; validate finds nothing wrong.
  const status = await aggregateStatus.run({}, s.ctx);
  t.deepEqual(status.batches, { count: 3, entries: 6 });
  t.is(status.pending, 1);
  t.deepEqual(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 3, entries: 6, failed: 0, abandoned: 0, pending: 1, problems: [], notes: [], missing: [], rebuiltIndex: null });

  // The same activity sent again — any timestamp form — is a duplicate now.
  const again = await aggregate.run(
    { entry: [JSON.stringify([{ userId: 'cy', action: 'call', timestamp: 1700000600000, metadata: { duration: 60000 } }, { userId: 'ana', action: 'work', timestamp: '2023-11-14T22:13:20Z' }, a2])], source: [] },
    s.ctx,
  );
  t.like(again, { accepted: 0, duplicates: 3 });

  // Idempotent: a second run finds nothing to do and writes nothing.
  const before = snapshot(s.dataRoot);
  const second = await aggregateMigrate.run({ apply: true }, s.ctx);
  t.deepEqual(second, { dryRun: false, ok: true, migrated: [], current: 3, refused: [], invalid: [], duplicatesDropped: [], skipped: [], notes: [] });
  t.deepEqual(snapshot(s.dataRoot), before);
  t.deepEqual((await aggregateStatus.run({}, s.ctx)).batches, { count: 3, entries: 6 });
});

test('an entry that cannot be upgraded blocks the run: every problem listed with its path, nothing changed', async (t) => {
  const s = withTempStore(t);
  put(s, `aggregated/${A}.json`, legacyA());
  const bad = 'batch_1700000900000_zzz';
  put(s, `aggregated/${bad}.json`, {
    batchId: bad,
    timestamp: 1700000900,
    entryCount: 3,
    entries: [
      { userId: 'ana', action: 'work', timestamp: 1700000000 },
      { userId: 'ana', action: 'deep work', timestamp: 'yesterday' },
    ],
  });
  const invalid: ErrorDetail[] = [
    { path: `aggregated/${bad}.json:entryCount`, message: 'entryCount is 3 but the file holds 2 entries (a truncated file?)' },
    { path: `aggregated/${bad}.json:entries[1].action`, message: 'action must be 1–64 characters of A–Z a–z 0–9 _ . : -', value: 'deep work' },
    {
      path: `aggregated/${bad}.json:entries[1].timestamp`,
      message: 'timestamp string must be an ISO-8601 date-time with an offset (Z or ±hh:mm), e.g. 2024-05-01T09:30:00+02:00',
      value: 'yesterday',
    },
  ];
  const dry = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.false(dry.ok);
  t.deepEqual(dry.invalid, invalid);
  t.deepEqual(dry.migrated.map((m) => m.file), [`aggregated/${A}.json`]);

  await aggregateStatus.run({}, s.ctx); // the store exists, as it would in use
  const before = snapshot(s.dataRoot);
  const error = await t.throwsAsync(aggregateMigrate.run({ apply: true }, s.ctx), { instanceOf: CorruptError });
  t.is(error!.exitCode, 1);
  t.is(error!.message, `Nothing was migrated: 1 file(s) in ${path.join(s.dataRoot, 'aggregated')} cannot be upgraded by this version (1 other file(s) could be). Each problem below names its file; fix or move those files, then run aggregate-migrate --apply again.`);
  t.deepEqual(error!.details, invalid);
  t.deepEqual(snapshot(s.dataRoot), before);
});

test('batch ids: a missing one is taken from the file name; one that does not match the name, or is used twice, blocks the run', async (t) => {
  const s = withTempStore(t);
  put(s, `aggregated/${A}.json`, { entries: [{ userId: 'ana', action: 'work', timestamp: 1700000000 }] });
  put(s, 'aggregated/batch_2.json', { batchId: 'batch_3', entries: [] });
  put(s, `aggregated/recovery/${B}.failed.json`, { batchId: B, entries: [] });
  fs.writeFileSync(file(s, `aggregated/${B}.json`), JSON.stringify(makeBatch(B, 1, [])));
  const r = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.deepEqual(r.migrated.map((m) => [m.file, m.batchId]), [[`aggregated/${A}.json`, A]]);
  t.deepEqual(r.invalid, [
    { path: 'aggregated/batch_2.json:batchId', message: 'the file name does not match its batchId batch_3: rename the file to batch_3.json, then run the migration again', value: 'batch_3' },
    {
      path: `aggregated/recovery/${B}.failed.json:batchId`,
      message: `batch id ${B} is also used by aggregated/${B}.json: compare the two files and move the one that is not needed out of the store (the recovery pass would write one over the other)`,
      value: B,
    },
  ]);
  t.is(r.current, 1);
});

test('a failed batch of the older format is upgraded in place and the recovery pass then writes it with its legacy id', async (t) => {
  const s = withTempStore(t);
  const F = 'batch_1700000700000_q9w8e7r6t';
  const rel = `aggregated/recovery/${F}.failed.json`;
  put(s, rel, { batchId: F, timestamp: 1700000700, failedAt: '2023-11-14T22:25:00Z', retryCount: 2, lastError: 'EIO', entries: [{ userId: 'dee', action: 'work', timestamp: 1700000650 }] });
  // Before the upgrade, the recovery pass leaves it alone (never quarantined), and --batch-id
  // says to migrate first (it was a silent no-op).
  t.like(await aggregateRecover.run({}, s.ctx), { processed: 0, quarantined: 0 });
  t.true(fs.existsSync(file(s, rel)));
  const older = await t.throwsAsync(aggregateRecover.run({ 'batch-id': F }, s.ctx), { instanceOf: UsageError });
  t.is(older!.message, `${F} is a failed batch of the older format: run aggregate-migrate --apply first, then aggregate-recover`);

  const r = await aggregateMigrate.run({ apply: true }, s.ctx);
  const d = { entryId: deriveEntryId({ userId: 'dee', action: 'work', timestamp: 1700000650000 }), userId: 'dee', action: 'work', timestamp: 1700000650000 };
  t.deepEqual(r.migrated, [
    { file: rel, kind: 'failed', batchId: F, from: null, to: '2.0.0', entries: 1, derivedIds: 1, convertedTimestamps: 1, addedChecksum: true, duplicatesDropped: 0, original: `aggregated/recovery/migrated/${F}.failed.json.orig` },
  ]);
  const migrated = { from: null, at: s.clock.now(), original: `aggregated/recovery/migrated/${F}.failed.json.orig` };
  t.deepEqual(readJson(s, rel), {
    ...makeBatch(F, 1700000700000, [d]),
    failedAt: Date.UTC(2023, 10, 14, 22, 25),
    retryCount: 2,
    lastRetryAt: null,
    lastError: 'EIO',
    nextRetryAt: s.clock.now(),
    migrated,
  });
  // A failed batch is not a batch file yet: status counts it once the recovery pass wrote it.
  t.deepEqual((await aggregateStatus.run({}, s.ctx)).batches, { count: 0, entries: 0 });
  // The report reads a failed batch under its legacy id too (it used to list only 8-hex ids).
  const { readReportEntries } = await import('../../plugins/aggregation/report/read.js');
  const seen: string[] = [];
  t.like(readReportEntries(s.ctx, 'local', (e) => seen.push(e.entryId)).sources, { failedBatches: 1, batchFiles: 0 });
  t.deepEqual(seen, [d.entryId]);
  // --batch-id takes the legacy id (it was refused as "not a batch id").
  t.like(await aggregateRecover.run({ 'batch-id': F }, s.ctx), { processed: 1, succeeded: 1, quarantined: 0 });
  t.deepEqual(readJson(s, `aggregated/${F}.json`), { ...makeBatch(F, s.clock.now(), [d], true), migrated });
  t.false(fs.existsSync(file(s, rel)));
  seen.length = 0;
  t.like(readReportEntries(s.ctx, 'local', (e) => seen.push(e.entryId)).sources, { failedBatches: 0, batchFiles: 1 });
  t.deepEqual(seen, [d.entryId]);
  // Once stored, --batch-id names where the batch is instead of doing nothing.
  const stored = await t.throwsAsync(aggregateRecover.run({ 'batch-id': F }, s.ctx), { instanceOf: UsageError });
  t.is(stored!.message, `${F} is not a failed batch: it is stored, aggregated/${F}.json`);
  t.deepEqual((await aggregateStatus.run({}, s.ctx)).batches, { count: 1, entries: 1 });
  t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 1, entries: 1 });
  t.like(await aggregate.run({ entry: [JSON.stringify({ userId: 'dee', action: 'work', timestamp: 1700000650 })], source: [] }, s.ctx), { accepted: 0, duplicates: 1 });
});

test('a failed batch of the older format whose every entry is already stored is removed; its original is kept', async (t) => {
  const s = withTempStore(t);
  put(s, `aggregated/${A}.json`, legacyA());
  const F = 'batch_1700000700000_q9w8e7r6t';
  const rel = `aggregated/recovery/${F}.failed.json`;
  const bytes = put(s, rel, { batchId: F, timestamp: 1700000700, entries: [legacyA().entries[0]] });
  const r = await aggregateMigrate.run({ apply: true }, s.ctx);
  t.deepEqual(r.migrated.map((m) => [m.file, m.to, m.entries, m.duplicatesDropped]), [
    [`aggregated/${A}.json`, '2.0.0', 3, 0],
    [rel, null, 0, 1],
  ]);
  t.deepEqual(r.duplicatesDropped, [{ file: rel, index: 0, entryId: a0.entryId, duplicateOf: `aggregated/${A}.json` }]);
  t.false(fs.existsSync(file(s, rel)));
  t.deepEqual(fs.readFileSync(file(s, `aggregated/recovery/migrated/${F}.failed.json.orig`)), bytes);
  t.deepEqual((await aggregateStatus.run({}, s.ctx)).recovery, { failed: 0, abandoned: 0, errors: 0 });
});

test('redaction and anonymizeUsers apply to upgraded entries as to aggregate input', async (t) => {
  const s = withTempStore(t, { privacy: { anonymizeUsers: true, redactKeys: ['ticket'] } });
  put(s, `aggregated/${A}.json`, { batchId: A, timestamp: 1700000050, entries: [{ userId: 'ana', action: 'work', timestamp: 1700000000, metadata: { supportTicket: 'T-9', token: 'kept' } }] });
  const dry = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.deepEqual(dry.notes, [
    'privacy.anonymizeUsers is on and this data root has no secret.key yet: derived ids in this dry run use a provisional secret and will differ under --apply (the counts will not)',
  ]);
  t.false(fs.existsSync(file(s, 'secret.key')));
  await aggregateMigrate.run({ apply: true }, s.ctx);
  const [entry] = readJson(s, `aggregated/${A}.json`).entries;
  t.regex(entry.userId, /^u_[0-9a-f]{24}$/);
  t.deepEqual(entry.metadata, { supportTicket: '[REDACTED]', token: 'kept' });
  t.is(entry.entryId, deriveEntryId({ userId: entry.userId, action: 'work', timestamp: 1700000000000, metadata: entry.metadata }));
  // The clear user id sent again maps to the same pseudonym and id: a duplicate.
  t.like(await aggregate.run({ entry: [JSON.stringify({ userId: 'ana', action: 'work', timestamp: 1700000000, metadata: { supportTicket: 'other', token: 'kept' } })], source: [] }, s.ctx), { duplicates: 1 });
});

const NEWER = 'batch_1800000000000_0000abcd';
const newerMessage = `aggregated/${NEWER}.json has version 3.0.0; this FlowForge Aggregation reads batch format 2.x — upgrade the product`;
const newerFailedMessage = `aggregated/recovery/${NEWER}.failed.json has version 3.1.0; this FlowForge Aggregation reads batch format 2.x — upgrade the product`;

test('a batch of a newer major version is refused everywhere with the same message and its bytes never change', async (t) => {
  const s = withTempStore(t);
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1)])], source: [] }, s.ctx);
  await aggregateForce.run({}, s.ctx);
  put(s, `aggregated/${A}.json`, legacyA());
  // A future format may change the shape too: the version alone decides.
  const batchBytes = put(s, `aggregated/${NEWER}.json`, { batchId: NEWER, version: '3.0.0', records: [{ id: 1 }] });
  const failedBytes = put(s, `aggregated/recovery/${NEWER}.failed.json`, { ...makeBatch(NEWER, 1, []), version: '3.1.0', retryCount: 0, nextRetryAt: 0 });
  const unchanged = () => {
    t.deepEqual(fs.readFileSync(file(s, `aggregated/${NEWER}.json`)), batchBytes);
    t.deepEqual(fs.readFileSync(file(s, `aggregated/recovery/${NEWER}.failed.json`)), failedBytes);
  };

  const dry = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.false(dry.ok);
  t.deepEqual(dry.refused, [
    { file: `aggregated/${NEWER}.json`, version: '3.0.0', message: newerMessage },
    { file: `aggregated/recovery/${NEWER}.failed.json`, version: '3.1.0', message: newerFailedMessage },
  ]);
  const apply = await t.throwsAsync(aggregateMigrate.run({ apply: true }, s.ctx), { instanceOf: CorruptError });
  t.deepEqual(apply!.details, [
    { path: `aggregated/${NEWER}.json`, message: newerMessage, value: '3.0.0' },
    { path: `aggregated/recovery/${NEWER}.failed.json`, message: newerFailedMessage, value: '3.1.0' },
  ]);
  t.true(fs.existsSync(file(s, `aggregated/${A}.json`)));
  t.is(readJson(s, `aggregated/${A}.json`).version, undefined, 'the older file was not upgraded either');
  unchanged();

  const validate = await t.throwsAsync(aggregateValidate.run({ repair: true }, s.ctx), { instanceOf: CorruptError });
  t.deepEqual(
    validate!.details.filter((d) => d.path.includes(NEWER)),
    [
      { path: `aggregated/${NEWER}.json`, message: newerMessage },
      { path: `aggregated/recovery/${NEWER}.failed.json`, message: newerFailedMessage },
    ],
  );
  t.deepEqual(
    validate!.details.filter((d) => d.path.includes(A)),
    [{ path: `aggregated/${A}.json`, message: `aggregated/${A}.json is in the older batch format (no version): run provider-bridge aggregate-migrate to upgrade it` }],
  );
  t.deepEqual(fs.readdirSync(file(s, 'aggregated/recovery')).sort(), [`${NEWER}.failed.json`], '--repair moved nothing to errors/');
  unchanged();

  s.clock.advance(24 * 3_600_000);
  t.like(await aggregateRecover.run({}, s.ctx), { processed: 0, quarantined: 0 });
  t.like(await aggregateRecover.run({ 'batch-id': NEWER }, s.ctx), { processed: 0, quarantined: 0 });
  unchanged();
  const status = await aggregateStatus.run({}, s.ctx);
  t.deepEqual(status.recovery, { failed: 1, abandoned: 0, errors: 0 });
  unchanged();
});

test('the recovery pass never writes a failed batch over a batch file of a newer format', async (t) => {
  const s = withTempStore(t);
  const id = 'batch_1700000000000_0000beef';
  const failed = { ...makeBatch(id, 1, [{ entryId: 'id-1', userId: 'u', action: 'work', timestamp: 1700000000000 }]), failedAt: 1, retryCount: 0, lastRetryAt: null, lastError: 'EIO', nextRetryAt: 0 };
  put(s, `aggregated/recovery/${id}.failed.json`, failed);
  const newer = put(s, `aggregated/${id}.json`, { batchId: id, version: '4.0.0', entries: [] });
  t.like(await aggregateRecover.run({}, s.ctx), { processed: 1, succeeded: 0, failed: 1 });
  t.deepEqual(fs.readFileSync(file(s, `aggregated/${id}.json`)), newer);
  t.is(readJson(s, `aggregated/recovery/${id}.failed.json`).lastError, `aggregated/${id}.json has version 4.0.0; this FlowForge Aggregation reads batch format 2.x — upgrade the product`);
});

test('versions: 1.x, a number and a missing version are the older format; 2.x with a checksum is current', async (t) => {
  const s = withTempStore(t);
  const entries = [{ userId: 'ana', action: 'work', timestamp: 1700000000 }];
  put(s, 'aggregated/batch_1.json', { batchId: 'batch_1', version: '1.x', entries });
  put(s, 'aggregated/batch_2.json', { batchId: 'batch_2', version: 1, entries: [{ ...entries[0], action: 'a2' }] });
  put(s, 'aggregated/batch_3.json', { batchId: 'batch_3', version: '2.0.0', entries: [{ ...entries[0], action: 'a3' }] });
  const current = makeBatch('batch_1700000000000_00000001', 1, []);
  put(s, 'aggregated/batch_1700000000000_00000001.json', current);
  const r = await aggregateMigrate.run({ apply: false }, s.ctx);
  t.deepEqual(r.migrated.map((m) => [m.batchId, m.from, m.addedChecksum]), [
    ['batch_1', '1.x', true],
    ['batch_2', '1', true],
    ['batch_3', '2.0.0', true],
  ]);
  t.is(r.current, 1);
});

test('an interrupted flush whose named batch file has a newer version: the store refuses to resume it and leaves the file alone', async (t) => {
  const s = withTempStore(t);
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1)])], source: [] }, s.ctx);
  const { journal } = openJournal(file(s, 'aggregated/journal'), file(s, 'aggregated/recovery/errors'), s.ctx.fs, s.clock.now);
  journal.intent([{ b: NEWER, from: 1, to: 1 }], s.clock.now());
  journal.close();
  const bytes = put(s, `aggregated/${NEWER}.json`, { batchId: NEWER, version: '3.0.0', entries: [] });
  for (let i = 0; i < 2; i++) {
    const error = await t.throwsAsync(aggregateStatus.run({}, s.ctx), { instanceOf: CorruptError });
    t.is(error!.message, newerMessage);
  }
  t.deepEqual(fs.readFileSync(file(s, `aggregated/${NEWER}.json`)), bytes);
  t.deepEqual(fs.readdirSync(file(s, 'aggregated')).filter((n) => n.startsWith('batch_')), [`${NEWER}.json`]);
});
