import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptError, type ErrorDetail } from '../../src/core/errors.js';
import { makeBatch } from '../../plugins/aggregation/batch-store.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateValidate } from '../../plugins/aggregation/handlers/aggregate-validate.js';
import type { Entry } from '../../plugins/aggregation/types.js';
import { runCli } from '../helpers/cli.js';
import { rawEntry, withTempStore, type TempStore } from '../helpers/store.js';

/** A store with two batch files of 2 entries each (ids id-1…id-4), nothing pending. Returns the batch file names, sorted. */
async function storeWithTwoBatches(s: TempStore): Promise<string[]> {
  const now = s.clock.now();
  await aggregate.run({ entry: [JSON.stringify([1, 2, 3, 4].map((i) => rawEntry(i, now - 1000)))], source: [] }, s.ctx);
  await aggregateForce.run({}, s.ctx);
  const names = fs.readdirSync(path.join(s.dataRoot, 'aggregated')).filter((n) => /^batch_.*\.json$/.test(n)).sort();
  return names;
}

const agg = (s: TempStore, name: string) => path.join(s.dataRoot, 'aggregated', name);
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Runs validate, expects a CorruptError (exit 1) and returns its details. */
async function problems(t: import('ava').ExecutionContext, s: TempStore): Promise<ErrorDetail[]> {
  const error = await t.throwsAsync(aggregateValidate.run({ repair: false }, s.ctx), { instanceOf: CorruptError });
  t.is(error!.code, 'E_CORRUPT');
  t.is(error!.exitCode, 1);
  return error!.details;
}

test('a clean store validates ok with its exact counts', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const names = await storeWithTwoBatches(s);
  t.is(names.length, 2);
  await aggregate.run({ entry: [JSON.stringify([rawEntry(5, s.clock.now() - 1000)])], source: [] }, s.ctx);
  const r = await aggregateValidate.run({ repair: false }, s.ctx);
  t.deepEqual(r, { ok: true, batches: 2, entries: 4, failed: 0, abandoned: 0, pending: 1, problems: [], notes: [], missing: [], rebuiltIndex: null });
});

test('an empty store validates ok', async (t) => {
  const s = withTempStore(t);
  t.deepEqual(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 0, entries: 0, failed: 0, abandoned: 0, pending: 0, problems: [], notes: [], missing: [], rebuiltIndex: null });
});

test('a corrupted checksum is reported with the batch file path', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const doc = readJson(agg(s, first!));
  doc.checksum = 'sha256:' + '0'.repeat(64);
  fs.writeFileSync(agg(s, first!), JSON.stringify(doc));
  t.deepEqual(await problems(t, s), [{ path: `aggregated/${first}`, message: 'checksum does not match its entries' }]);
});

test('a changed entry (same checksum field) is reported as a checksum mismatch', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [, second] = await storeWithTwoBatches(s);
  const doc = readJson(agg(s, second!));
  doc.entries[0].userId = 'mallory';
  fs.writeFileSync(agg(s, second!), JSON.stringify(doc));
  t.deepEqual(await problems(t, s), [{ path: `aggregated/${second}`, message: 'checksum does not match its entries' }]);
});

test('a wrong entryCount is reported with the batch file path', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const doc = readJson(agg(s, first!));
  doc.entryCount = 3;
  fs.writeFileSync(agg(s, first!), JSON.stringify(doc));
  t.deepEqual(await problems(t, s), [{ path: `aggregated/${first}`, message: 'entryCount does not match the number of entries' }]);
});

test('an entry id in two batches is reported on the second file, naming the first', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const entries = readJson(agg(s, first!)).entries as Entry[];
  const copyId = 'batch_9999999999999_0000abcd';
  fs.writeFileSync(agg(s, `${copyId}.json`), JSON.stringify(makeBatch(copyId, s.clock.now(), entries)));
  t.deepEqual(await problems(t, s), [
    { path: `aggregated/${copyId}.json`, message: `entry ${entries[0]!.entryId} is also in aggregated/${first}` },
    { path: `aggregated/${copyId}.json`, message: `entry ${entries[1]!.entryId} is also in aggregated/${first}` },
  ]);
});

test('an entry id in a batch and in an abandoned batch is reported', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const entries = (readJson(agg(s, first!)).entries as Entry[]).slice(0, 1);
  const id = 'batch_1700000000000_0badf00d';
  fs.mkdirSync(path.join(s.dataRoot, 'aggregated/recovery/abandoned'), { recursive: true });
  const file = `aggregated/recovery/abandoned/${id}.abandoned.json`;
  fs.writeFileSync(path.join(s.dataRoot, file), JSON.stringify({ ...makeBatch(id, 1, entries), retryCount: 5 }));
  t.deepEqual(await problems(t, s), [{ path: file, message: `entry ${entries[0]!.entryId} is also in aggregated/${first}` }]);
});

test('a zero-byte batch file is reported as empty', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  await storeWithTwoBatches(s);
  fs.writeFileSync(agg(s, 'batch_1700000000000_deadbeef.json'), '');
  t.deepEqual(await problems(t, s), [{ path: 'aggregated/batch_1700000000000_deadbeef.json', message: 'empty file (0 bytes)' }]);
});

test('a batch file whose name does not match its batchId is reported', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const renamed = 'batch_1700000000000_00000001.json';
  fs.renameSync(agg(s, first!), agg(s, renamed));
  t.deepEqual(await problems(t, s), [{ path: `aggregated/${renamed}`, message: `file name does not match its batchId ${first!.replace(/\.json$/, '')}` }]);
});

test('leftover write-file-atomic temp files are noted with their paths, without failing validation', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  fs.writeFileSync(agg(s, `${first}.3141592653`), '{"partial":');
  fs.writeFileSync(agg(s, 'metrics.json.42'), '{}');
  const r = await aggregateValidate.run({ repair: false }, s.ctx);
  t.true(r.ok);
  t.deepEqual(r.notes, [
    { path: `aggregated/${first}.3141592653`, message: 'temp file left by an interrupted atomic write (harmless; aggregate-cleanup removes it)' },
    { path: 'aggregated/metrics.json.42', message: 'temp file left by an interrupted atomic write (harmless; aggregate-cleanup removes it)' },
  ]);
});

test('a bad journal record is quarantined by the check and reported; the next check reports the quarantined file', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1000)])], source: [] }, s.ctx);
  const journal = path.join(s.dataRoot, 'aggregated/journal/journal.log');
  const garbage = '0badc0de {"t":"e","s":2}\n';
  fs.appendFileSync(journal, garbage);
  const quarantined = `aggregated/recovery/errors/journal-${s.clock.now()}-${process.pid}.bad`;
  t.deepEqual(await problems(t, s), [{ path: quarantined, message: `1 bad journal record(s) (${Buffer.byteLength(garbage)} bytes) were quarantined now` }]);
  t.deepEqual(await problems(t, s), [{ path: quarantined, message: 'quarantined file: inspect it, then move it out of the store' }]);
  // The valid record was kept.
  t.like(await aggregateForce.run({}, s.ctx), { pending: 0 });
  t.deepEqual(s.batches().flatMap((b) => b.entries.map((e) => e.entryId)), ['id-1']);
});

test('several problems at once are all listed, exit 1 through the real CLI', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first, second] = await storeWithTwoBatches(s);
  const doc = readJson(agg(s, first!));
  doc.entryCount = 9;
  fs.writeFileSync(agg(s, first!), JSON.stringify(doc));
  fs.writeFileSync(agg(s, second!), '');
  const run = runCli(['aggregate-validate', `--data-path=${s.dataRoot}`], { cwd: path.dirname(s.dataRoot) });
  t.is(run.code, 1);
  t.like(run.json, { ok: false, action: 'aggregate-validate', error: { code: 'E_CORRUPT' } });
  t.deepEqual(run.json.error.details, [
    { path: `aggregated/${first}`, message: 'entryCount does not match the number of entries' },
    { path: `aggregated/${second}`, message: 'empty file (0 bytes)' },
  ]);
  t.regex(run.stderr, new RegExp(`- aggregated/${second!.replace(/\./g, '\\.')}: empty file`));
});

test('a deleted batch file is reported as missing, with the number of entries recorded in it', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const ids = (readJson(agg(s, first!)).entries as Entry[]).map((e) => e.entryId).sort();
  fs.rmSync(agg(s, first!));
  const id = first!.replace(/\.json$/, '');
  t.deepEqual(await problems(t, s), [
    {
      path: `aggregated/${first}`,
      message: `batch ${id} is missing: 2 entries recorded in it are in no batch, failed or abandoned file (${ids.join(', ')}); aggregate-validate --repair releases them so that re-importing them from your source stores them again`,
    },
  ]);
});

test('an index line torn by a full disk (batch name cut short) is a note when its entry is stored elsewhere, a problem when it is not', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const [first] = await storeWithTwoBatches(s);
  const stored = readJson(agg(s, first!)).entries[0].entryId as string;
  const shards = path.join(s.dataRoot, 'aggregated/index');
  fs.mkdirSync(shards, { recursive: true });
  // What an append cut by ENOSPC leaves: the id whole, the batch id cut after 11 characters.
  fs.appendFileSync(path.join(shards, 'ids-00.tsv'), `\n${stored}\tbatch_17960`);
  const r = await aggregateValidate.run({ repair: false }, s.ctx);
  t.true(r.ok);
  t.deepEqual(r.notes, [{ path: 'aggregated/index', message: 'the id index names batch batch_17960, which has no file, for 1 entry stored in other files (a torn index line, e.g. after a full disk; harmless)' }]);
  fs.appendFileSync(path.join(shards, 'ids-00.tsv'), `\nnever-stored\tbatch_17961`);
  t.deepEqual(await problems(t, s), [
    {
      path: 'aggregated/batch_17961.json',
      message: 'batch batch_17961 is missing: 1 entry recorded in it are in no batch, failed or abandoned file (never-stored); aggregate-validate --repair releases them so that re-importing them from your source stores them again',
    },
  ]);
});
