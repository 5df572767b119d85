import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptError, UsageError } from '../../src/core/errors.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateCleanup, parseAge } from '../../plugins/aggregation/handlers/aggregate-cleanup.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateValidate } from '../../plugins/aggregation/handlers/aggregate-validate.js';
import { rawEntry, withTempStore, type TempStore } from '../helpers/store.js';

const DAY = 86_400_000;

test('parseAge accepts d, h, m, s, ms and plain milliseconds', (t) => {
  t.is(parseAge('7d'), 7 * DAY);
  t.is(parseAge('12h'), 12 * 3_600_000);
  t.is(parseAge('30m'), 30 * 60_000);
  t.is(parseAge('45s'), 45_000);
  t.is(parseAge('500ms'), 500);
  t.is(parseAge('1500'), 1500);
  t.is(parseAge('0'), 0);
});

test('parseAge rejects anything else with a usage error (exit 2)', (t) => {
  for (const bad of ['', '-1d', '1.5h', '7w', 'abc', '7 d', 'd', '1e3', '99999999999999999999d']) {
    const error = t.throws(() => parseAge(bad), { instanceOf: UsageError }, bad);
    t.is(error!.exitCode, 2);
    t.deepEqual(error!.details, [{ path: '--age', message: 'expected e.g. 7d, 12h, 30m, 45s, 500ms or a number of ms', value: bad }]);
  }
});

test('a bad --age is rejected before the store is touched', async (t) => {
  const s = withTempStore(t);
  await t.throwsAsync(aggregateCleanup.run({ age: '2weeks', 'dry-run': false }, s.ctx), { instanceOf: UsageError, message: /--age must be/ });
  t.false(fs.existsSync(s.dataRoot));
});

/** Writes `rel` under the data root with `content`, its mtime `ageMs` before the fake clock. */
function put(s: TempStore, rel: string, ageMs: number, content = 'x'): void {
  const file = path.join(s.dataRoot, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  age(s, rel, ageMs);
}
function age(s: TempStore, rel: string, ageMs: number): void {
  const at = (s.clock.now() - ageMs) / 1000;
  fs.utimesSync(path.join(s.dataRoot, rel), at, at);
}
const exists = (s: TempStore, rel: string) => fs.existsSync(path.join(s.dataRoot, rel));

/** Every kind of file cleanup must never delete, written through the real handlers where possible, then made a year old. */
async function protectedFiles(s: TempStore): Promise<string[]> {
  const now = s.clock.now();
  await aggregate.run({ entry: [JSON.stringify([1, 2, 3].map((i) => rawEntry(i, now - 1000)))], source: [] }, s.ctx);
  await aggregateForce.run({}, s.ctx);
  await aggregate.run({ entry: [JSON.stringify([rawEntry(9, now - 1000)])], source: [] }, s.ctx); // keeps the journal non-empty
  const batch = fs.readdirSync(path.join(s.dataRoot, 'aggregated')).find((n) => /^batch_.*\.json$/.test(n))!;
  const files = [
    `aggregated/${batch}`,
    'aggregated/metrics.json',
    'aggregated/journal/journal.log',
    'aggregated/index/ids-00.tsv',
    'aggregated/recovery/batch_1700000000000_0000000a.failed.json',
    'aggregated/recovery/abandoned/batch_1700000000000_0000000b.abandoned.json',
    'aggregated/recovery/errors/journal-1700000000000-42.bad',
    'aggregated/recovery/errors/batch_1700000000000_0000000c.json.1700000000000.corrupt',
    // A temp-looking name inside errors/ is still quarantined data.
    'aggregated/recovery/errors/batch_1700000000000_0000000d.json.123456',
    'logs/aggregation.log',
    'logs/recovery.log',
    'user/ana/time.json',
  ];
  for (const rel of files) {
    if (!exists(s, rel)) put(s, rel, 0, '{}');
    age(s, rel, 365 * DAY);
  }
  return files;
}

/** Removable files: old ones (10 days) and young ones (1 day). Returns [old, young]. */
function removableFiles(s: TempStore): { old: string[]; young: string[] } {
  const old = [
    'aggregated/batch_1700000000000_0000000e.json.2718281828',
    'aggregated/journal/journal.log.99',
    'aggregated/metrics.json.12345',
    'aggregated/recovery/abandoned/batch_1700000000000_0000000b.abandoned.json.77',
    'aggregated/recovery/batch_1700000000000_0000000a.failed.json.4242',
    'cache/config-00000000000000000000000000000001.mjs',
    'health/health-1700000000000.json',
    'logs/aggregation.log.1',
    'logs/aggregation.log.3',
    'logs/recovery.log.2',
  ];
  for (const rel of old) put(s, rel, 10 * DAY, 'old-bytes');
  // The newest config cache is kept even when old.
  put(s, 'cache/config-00000000000000000000000000000002.mjs', 9 * DAY, 'current');
  const young = ['health/health-1800000000000.json', 'logs/aggregation.log.2', 'aggregated/metrics.json.777'];
  for (const rel of young) put(s, rel, 1 * DAY, 'young');
  return { old, young };
}

test('a dry run lists exactly the old removable files and removes nothing', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const kept = await protectedFiles(s);
  const { old, young } = removableFiles(s);
  const r = await aggregateCleanup.run({ 'dry-run': true }, s.ctx);
  t.deepEqual(r, { removed: [...old].sort(), kept: 4, dryRun: true, bytesFreed: old.length * 'old-bytes'.length, ageMs: 7 * DAY, failed: [] });
  for (const rel of [...old, ...young, ...kept, 'cache/config-00000000000000000000000000000002.mjs']) t.true(exists(s, rel), rel);
});

test('a real run removes exactly the files older than the default cleanupAge (7 days); the rest survive', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const kept = await protectedFiles(s);
  const { old, young } = removableFiles(s);
  const r = await aggregateCleanup.run({ 'dry-run': false }, s.ctx);
  t.deepEqual(r, { removed: [...old].sort(), kept: 4, dryRun: false, bytesFreed: old.length * 'old-bytes'.length, ageMs: 7 * DAY, failed: [] });
  for (const rel of old) t.false(exists(s, rel), rel);
  for (const rel of [...young, ...kept, 'cache/config-00000000000000000000000000000002.mjs']) t.true(exists(s, rel), rel);
  t.is(s.logs.lines.filter((l) => l.msg === 'cleanup removed files').length, 1);
});

test('--age=0 still never deletes a batch, a failed or abandoned batch, a quarantined file, the journal, the index or metrics', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const kept = await protectedFiles(s);
  put(s, 'aggregated/metrics.json.555', 30_000); // a temp file 30 s old may still be in flight
  put(s, 'health/health-1900000000000.json', 1);
  const r = await aggregateCleanup.run({ age: '0', 'dry-run': false }, s.ctx);
  t.deepEqual(r.removed, ['health/health-1900000000000.json']);
  t.is(r.kept, 1);
  for (const rel of kept) t.true(exists(s, rel), rel);
  t.true(exists(s, 'aggregated/metrics.json.555'));
  // The store is still whole: every entry accounted for.
  await aggregateForce.run({}, s.ctx);
  t.deepEqual(s.batches().flatMap((b) => b.entries.map((e) => e.entryId)).sort(), ['id-1', 'id-2', 'id-3', 'id-9']);
});

test('--age with a unit applies to the fake clock: 12h removes what is older than 12 hours', async (t) => {
  const s = withTempStore(t);
  put(s, 'health/health-1.json', 13 * 3_600_000);
  put(s, 'health/health-2.json', 11 * 3_600_000);
  const r = await aggregateCleanup.run({ age: '12h', 'dry-run': false }, s.ctx);
  t.deepEqual(r, { removed: ['health/health-1.json'], kept: 1, dryRun: false, bytesFreed: 1, ageMs: 12 * 3_600_000, failed: [] });
});

test('after cleanup, validate no longer notes the removed temp files', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1000), rawEntry(2, s.clock.now() - 1000)])], source: [] }, s.ctx);
  put(s, 'aggregated/metrics.json.31337', 8 * DAY);
  t.deepEqual((await aggregateValidate.run({ repair: false }, s.ctx)).notes.map((n) => n.path), ['aggregated/metrics.json.31337']);
  t.deepEqual((await aggregateCleanup.run({ 'dry-run': false }, s.ctx)).removed, ['aggregated/metrics.json.31337']);
  t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 1, entries: 2, notes: [] });
});
