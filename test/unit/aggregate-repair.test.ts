/**
 * Entries of damaged files set aside, and a lost or damaged id index (aggregate-validate
 * --repair, the recovery pass): after the repair, re-importing the source stores every missing
 * entry again exactly once, the repair lists the ids to re-import, and validation passes.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptError, type ErrorDetail } from '../../src/core/errors.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { aggregateStatus } from '../../plugins/aggregation/handlers/aggregate-status.js';
import { aggregateValidate } from '../../plugins/aggregation/handlers/aggregate-validate.js';
import { createFaultyFsPort, rawEntry, withTempStore, type TempStore } from '../helpers/store.js';

type T = import('ava').ExecutionContext;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
const ids = (nums: number[]) => nums.map((i) => `id-${i}`);
const agg = (s: TempStore, ...parts: string[]) => path.join(s.dataRoot, 'aggregated', ...parts);

/** The source: the same entries (same timestamps) every time it is imported. */
function importSource(s: TempStore, nums: number[]) {
  const at = Date.UTC(2026, 10, 1, 11, 0, 0);
  return aggregate.run({ entry: [JSON.stringify(nums.map((i) => rawEntry(i, at + i)))], source: [] }, s.ctx);
}

/** Entry id → in how many batch, failed and abandoned files it is. */
function storedCounts(s: TempStore): Map<string, number> {
  const counts = new Map<string, number>();
  for (const dir of [agg(s), agg(s, 'recovery'), agg(s, 'recovery/abandoned')]) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).filter((n) => /^batch_.*\.json$/.test(n))) {
      for (const e of JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')).entries as Array<{ entryId: string }>) counts.set(e.entryId, (counts.get(e.entryId) ?? 0) + 1);
    }
  }
  return counts;
}

function assertExactlyOnce(t: T, s: TempStore, expected: string[]): void {
  const counts = storedCounts(s);
  t.deepEqual([...counts.keys()].sort(), [...expected].sort());
  t.deepEqual([...counts].filter(([, n]) => n !== 1), [], 'no entry in two files');
}

async function repairProblems(t: T, s: TempStore): Promise<ErrorDetail[]> {
  const error = await t.throwsAsync(aggregateValidate.run({ repair: true }, s.ctx), { instanceOf: CorruptError });
  return error!.details;
}

const batchNames = (s: TempStore) => fs.readdirSync(agg(s)).filter((n) => /^batch_.*\.json$/.test(n)).sort();

test('bug A: a truncated batch file set aside by --repair: its 50 ids are listed, a re-import stores exactly them, validate passes again', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const all = range(0, 619);
  t.like(await importSource(s, all), { accepted: 620, duplicates: 0, pending: 20 });
  const [victim] = batchNames(s);
  const lostIds = (JSON.parse(fs.readFileSync(agg(s, victim!), 'utf8')).entries as Array<{ entryId: string }>).map((e) => e.entryId).sort();
  t.is(lostIds.length, 50);
  fs.truncateSync(agg(s, victim!), 3000);
  const batchId = victim!.replace(/\.json$/, '');

  const details = await repairProblems(t, s);
  t.deepEqual(details, [
    { path: `aggregated/${victim}`, message: `is not valid JSON; moved to aggregated/recovery/errors/${victim}.${s.clock.now()}.corrupt` },
    { path: `aggregated/${victim}`, message: `batch ${batchId} was set aside: its 50 entries are in no batch file and no longer counted as stored — re-import them from your source: ${lostIds.join(', ')}` },
  ]);
  t.like((await aggregateStatus.run({}, s.ctx)).batches, { count: 11, entries: 550 }, 'status no longer counts the batch set aside');

  t.like(await importSource(s, all), { accepted: 50, duplicates: 570 });
  t.like(await importSource(s, all), { accepted: 0, duplicates: 620 }, 'exactly once: a second re-import adds nothing');
  await aggregateForce.run({}, s.ctx);
  assertExactlyOnce(t, s, ids(all));
  t.like((await aggregateStatus.run({}, s.ctx)).batches, { count: 13, entries: 620 });
  const r = await aggregateValidate.run({ repair: false }, s.ctx);
  t.like(r, { ok: true, batches: 13, entries: 620, problems: [], missing: [] });
  t.deepEqual(r.notes, [{ path: `aggregated/recovery/errors/${victim}.${s.clock.now()}.corrupt`, message: `damaged copy of batch ${batchId}, whose entries were all re-imported: keep it for reference or delete it` }]);
});

test('bug A, journal path: a damaged batch whose ids the journal still lists (not yet compacted into the index) is released too', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  await importSource(s, [1, 2, 3, 4]);
  await aggregateForce.run({}, s.ctx);
  const names = batchNames(s);
  t.is(names.length, 2);
  const victim = names.find((n) => fs.readFileSync(agg(s, n), 'utf8').includes('"id-1"'))!;
  fs.writeFileSync(agg(s, victim), '');
  const details = await repairProblems(t, s);
  t.is(details[1]!.message, `batch ${victim.replace(/\.json$/, '')} was set aside: its 2 entries are in no batch file and no longer counted as stored — re-import them from your source: id-1, id-2`);
  t.like(await importSource(s, [1, 2, 3, 4]), { accepted: 2, duplicates: 2 });
  await aggregateForce.run({}, s.ctx);
  assertExactlyOnce(t, s, ids([1, 2, 3, 4]));
  t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 2, entries: 4 });
});

test('bug A, recovery pass: a truncated failed batch is quarantined and released; its ids are listed and a re-import stores them once', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  s.setFs(createFaultyFsPort((op, args) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'ENOSPC' : undefined)));
  const parked = (await importSource(s, [1, 2])).failed[0]!;
  s.setFs(createFaultyFsPort(() => undefined));
  await importSource(s, [3, 4]);
  const failedPath = path.join(s.dataRoot, parked.file);
  const intact = fs.readFileSync(failedPath);
  fs.truncateSync(failedPath, 40);
  t.like((await aggregateStatus.run({}, s.ctx)).recovery, { failed: 1 });
  const r = await aggregateRecover.run({}, s.ctx);
  t.like(r, { processed: 0, quarantined: 1 });
  t.deepEqual(r.released, [{ batchId: parked.batchId, kind: 'failed', entryIds: ['id-1', 'id-2'] }]);
  t.like(await importSource(s, [1, 2, 3, 4]), { accepted: 2, duplicates: 2 });
  await aggregateForce.run({}, s.ctx);
  assertExactlyOnce(t, s, ids([1, 2, 3, 4]));
  t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 2, entries: 4, failed: 0 });
  // The intact copy put back by hand: the recovery pass sets it aside again instead of writing
  // it (it wrote it, and every re-imported entry was then stored twice).
  fs.writeFileSync(failedPath, intact);
  t.like(await aggregateRecover.run({}, s.ctx), { processed: 0, succeeded: 0, quarantined: 1 });
  t.false(fs.existsSync(failedPath));
  assertExactlyOnce(t, s, ids([1, 2, 3, 4]));
});

test('bug A: a batch moved aside whose release was never recorded (killed in between) is reported missing, and --repair releases it', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  await importSource(s, [1, 2, 3, 4]);
  await aggregateForce.run({}, s.ctx);
  const victim = batchNames(s).find((n) => fs.readFileSync(agg(s, n), 'utf8').includes('"id-3"'))!;
  const batchId = victim.replace(/\.json$/, '');
  fs.mkdirSync(agg(s, 'recovery/errors'), { recursive: true });
  fs.renameSync(agg(s, victim), agg(s, 'recovery/errors', `${victim}.1.corrupt`));
  t.like(await importSource(s, [3, 4]), { accepted: 0, duplicates: 2 }, 'still counted as stored: never importable twice');
  const check = await t.throwsAsync(aggregateValidate.run({ repair: false }, s.ctx), { instanceOf: CorruptError });
  t.regex(check!.message, /2 entries are in no batch file: re-import them from your source/);
  t.deepEqual(check!.details[0], {
    path: `aggregated/${victim}`,
    message: `batch ${batchId} is missing: 2 entries recorded in it are in no batch, failed or abandoned file (id-3, id-4); aggregate-validate --repair releases them so that re-importing them from your source stores them again`,
  });
  const details = await repairProblems(t, s);
  t.deepEqual(details[0], { path: `aggregated/${victim}`, message: `batch ${batchId} was set aside: its 2 entries are in no batch file and no longer counted as stored — re-import them from your source: id-3, id-4` });
  t.like(await importSource(s, [1, 2, 3, 4]), { accepted: 2, duplicates: 2 });
  await aggregateForce.run({}, s.ctx);
  assertExactlyOnce(t, s, ids([1, 2, 3, 4]));
  t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true });
});

test('bug A: a file of a released batch that comes back is reported (its entries could be stored twice)', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  await importSource(s, [1, 2]);
  await aggregateForce.run({}, s.ctx);
  const [name] = batchNames(s);
  const copy = fs.readFileSync(agg(s, name!));
  fs.writeFileSync(agg(s, name!), '{"batchId":');
  await repairProblems(t, s);
  await importSource(s, [1, 2]);
  await aggregateForce.run({}, s.ctx);
  fs.writeFileSync(agg(s, name!), copy);
  const error = await t.throwsAsync(aggregateValidate.run({ repair: false }, s.ctx), { instanceOf: CorruptError });
  t.true(error!.details.some((d) => d.message === `batch ${name!.replace(/\.json$/, '')} was set aside as damaged and its entries released for re-import, but a file of it is back in the store: move it out again (entries re-imported since would be stored twice)`));
});

for (const damage of ['deleted', 'zero-filled', 'truncated', 'garbled'] as const) {
  test(`bug B: index shards ${damage}: validate reports it, --repair rebuilds it from the batch files, and a re-import stores nothing twice`, async (t) => {
    const s = withTempStore(t, { batchSize: 50 });
    const all = range(0, 619);
    await importSource(s, all);
    const dir = agg(s, 'index');
    const shards = fs.readdirSync(dir).sort();
    t.is(shards.length, 256);
    for (const name of damage === 'deleted' ? shards : shards.slice(0, 8)) {
      const file = path.join(dir, name);
      if (damage === 'deleted') fs.rmSync(file);
      else if (damage === 'zero-filled') fs.writeFileSync(file, Buffer.alloc(fs.statSync(file).size));
      else if (damage === 'truncated') fs.truncateSync(file, 5);
      else fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/\t/g, '\u0000').replace(/id-/g, 'i\ufffd'));
    }
    const check = await t.throwsAsync(aggregateValidate.run({ repair: false }, s.ctx), { instanceOf: CorruptError });
    const unindexed = check!.details.filter((d) => / is in neither the id index nor the journal/.test(d.message)).length;
    t.true(unindexed > 0);
    if (damage === 'zero-filled' || damage === 'garbled') t.true(check!.details.some((d) => /^index shard is damaged: \d+ malformed line/.test(d.message)));
    const details = await repairProblems(t, s);
    t.deepEqual(details.at(-1), { path: 'aggregated/index', message: 'the id index was damaged and has been rebuilt from the batch, failed and abandoned files (600 lines)' });
    t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: 12, entries: 600, pending: 20, problems: [], notes: [] });
    t.like(await importSource(s, all), { accepted: 0, duplicates: 620 });
    await aggregateForce.run({}, s.ctx);
    assertExactlyOnce(t, s, ids(all));
  });
}

/** 200 entries in 4 batches; the first batch file truncated and the index shards `lose` matches removed. Returns the truncated batch's id. */
async function truncatedWithLostShards(s: TempStore, lose: RegExp): Promise<string> {
  await importSource(s, range(0, 199));
  await aggregateForce.run({}, s.ctx);
  const [victim] = batchNames(s);
  fs.truncateSync(agg(s, victim!), 100);
  for (const name of fs.readdirSync(agg(s, 'index')).filter((n) => lose.test(n))) fs.rmSync(agg(s, 'index', name));
  return victim!.slice(0, -'.json'.length);
}

test('bug B and A together: index shards deleted and a batch file truncated: one --repair releases nothing it cannot name, rebuilds, and a re-import restores the batch once', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const all = range(0, 199);
  await truncatedWithLostShards(s, /^ids-/);
  const details = await repairProblems(t, s);
  t.deepEqual(details.at(-1), { path: 'aggregated/index', message: 'the id index was damaged and has been rebuilt from the batch, failed and abandoned files (150 lines)' });
  t.like(await importSource(s, all), { accepted: 50, duplicates: 150 });
  await aggregateForce.run({}, s.ctx);
  assertExactlyOnce(t, s, ids(all));
});

test('a batch set aside while some index shards were lost too: its list says it may be incomplete, and a re-import of the whole source restores every entry once', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const all = range(0, 199);
  const victim = await truncatedWithLostShards(s, /^ids-a/);
  const details = await repairProblems(t, s);
  const setAside = details.find((d) => d.message.startsWith(`batch ${victim} was set aside:`));
  t.truthy(setAside, JSON.stringify(details.map((d) => d.message.slice(0, 80))));
  t.true(setAside!.message.endsWith('. The id index was damaged too, so ids it lost are not in this list: re-import your whole source to be sure (entries already stored are counted as duplicates, not stored again)'));
  t.like(await importSource(s, all), { accepted: 50, duplicates: 150 });
  await aggregateForce.run({}, s.ctx);
  assertExactlyOnce(t, s, ids(all));
});
