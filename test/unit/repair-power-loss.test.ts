/**
 * The repairs cut at every durable step (power loss, and a process crash that keeps the page
 * cache), then run again: `aggregate-validate --repair` (damaged batch files set aside and
 * released, the id index rebuilt) and the recovery pass (a damaged failed batch quarantined
 * and released). After the re-run, re-importing the source stores exactly the entries that
 * were in the damaged files, every entry of the source is in exactly one file, a second
 * re-import adds nothing, and validation passes.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptError } from '../../src/core/errors.js';
import { withStore } from '../../plugins/aggregation/aggregator.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { aggregateValidate } from '../../plugins/aggregation/handlers/aggregate-validate.js';
import type { FsPort } from '../../src/core/fs-port.js';
import { finishedBeforeStop, SimulatedDisk, storedEntryCounts } from '../helpers/power-loss-fs.js';
import { rawEntry, withTempStore } from '../helpers/store.js';

type Store = ReturnType<typeof withTempStore>;
const SOURCE = Array.from({ length: 26 }, (_, k) => k + 1);
const AT = Date.UTC(2026, 10, 1, 11, 0, 0);
const importSource = (s: Store) => aggregate.run({ entry: [JSON.stringify(SOURCE.map((i) => rawEntry(i, AT + i)))], source: [] }, s.ctx);
/** Runs validate --repair to its end: a CorruptError is its normal report. */
const repair = (s: Store) => aggregateValidate.run({ repair: true }, s.ctx).catch((error: unknown) => (error instanceof CorruptError ? undefined : Promise.reject(error)));

/** Ids in the batch, failed and abandoned files on the disk that parse (damaged ones skipped). */
function readableIds(disk: SimulatedDisk, dataRoot: string): Set<string> {
  const ids = new Set<string>();
  for (const { file, data } of disk.filesUnder(path.join(dataRoot, 'aggregated'))) {
    if (!/\/aggregated\/(recovery\/(abandoned\/)?)?batch_[^/]+\.(json|failed\.json|abandoned\.json)$/.test(file)) continue;
    try {
      for (const e of JSON.parse(data.toString('utf8')).entries as Array<{ entryId: string }>) ids.add(e.entryId);
    } catch {
      /* a damaged file: its entries are not stored */
    }
  }
  return ids;
}

const idsIn = (port: FsPort, file: string) => (JSON.parse(port.readFile(file).toString('utf8')).entries as Array<{ entryId: string }>).map((e) => e.entryId);

/**
 * Ids 1–20 imported in bulk (5 batch files straight from the import, their ids in the index),
 * 21–24 flushed through the journal (2 batch files whose ids only the journal lists yet), 25–26
 * parked as a failed batch. Then, durably: the batch files holding id-1 and id-21 truncated,
 * the failed batch truncated (`damageFailed`), and three index shards deleted and one
 * zero-filled. Returns the ids of the damaged files.
 */
async function damagedStore(s: Store, disk: SimulatedDisk, damageFailed: boolean): Promise<string[]> {
  const port = disk.port();
  s.setFs(port);
  await aggregate.run({ entry: [JSON.stringify(SOURCE.slice(0, 20).map((i) => rawEntry(i, AT + i)))], source: [] }, s.ctx);
  await aggregate.run({ entry: [JSON.stringify(SOURCE.slice(20, 24).map((i) => rawEntry(i, AT + i)))], source: [] }, s.ctx);
  await aggregateForce.run({}, s.ctx);
  disk.failReplace = (file) => /aggregated\/batch_[^/]+\.json$/.test(file);
  await aggregate.run({ entry: [JSON.stringify(SOURCE.slice(24).map((i) => rawEntry(i, AT + i)))], source: [] }, s.ctx);
  await aggregateForce.run({}, s.ctx).catch(() => undefined); // exit 1: the batch is parked in recovery/
  disk.failReplace = () => false;
  const agg = path.join(s.dataRoot, 'aggregated');
  const lost: string[] = [];
  for (const name of port.readdir(agg).filter((n) => /^batch_.*\.json$/.test(n))) {
    const ids = idsIn(port, path.join(agg, name));
    if (!ids.includes('id-1') && !ids.includes('id-21')) continue;
    lost.push(...ids);
    port.writeFileDurable(path.join(agg, name), port.readFile(path.join(agg, name)).subarray(0, 30));
  }
  const failed = port.readdir(path.join(agg, 'recovery')).filter((n) => n.endsWith('.failed.json'));
  if (failed.length !== 1) throw new Error(`expected one failed batch, found ${failed.length}`);
  if (damageFailed) {
    const file = path.join(agg, 'recovery', failed[0]!);
    lost.push(...idsIn(port, file));
    port.writeFileDurable(file, port.readFile(file).subarray(0, 30));
  }
  const shards = port.readdir(path.join(agg, 'index')).sort();
  for (const name of shards.slice(0, 3)) port.removeDurable(path.join(agg, 'index', name));
  port.writeFileDurable(path.join(agg, 'index', shards[3]!), Buffer.alloc(port.readFile(path.join(agg, 'index', shards[3]!)).length));
  return lost.sort();
}

async function cutAtEveryStep(t: import('ava').ExecutionContext, mode: 'power' | 'process', what: 'repair' | 'recover'): Promise<number> {
  let steps = 0;
  for (let n = 1; ; n++) {
    const s = withTempStore(t, { batchSize: 4, flushThreshold: 1 });
    const disk = new SimulatedDisk(path.dirname(s.dataRoot));
    fs.mkdirSync(path.join(s.dataRoot, 'aggregated/journal'), { recursive: true }); // the lock lives on the real disk
    const lost = await damagedStore(s, disk, what === 'recover');
    s.clock.advance(3_600_000);
    // Entries in readable files that count as stored before the repair (the damaged index
    // lost some): the repair must never make one of them importable again, at any step.
    const storedBefore = await withStore(s.ctx, async (store) => {
      const ids = [...readableIds(disk, s.dataRoot)];
      const indexed = store.index.lookup(ids);
      return ids.filter((id) => store.journal.hasId(id) || indexed.has(id));
    });
    t.true(storedBefore.length >= 10);
    disk.crashAt = disk.calls + n;
    // The run that is not cut is checked too: the power goes right after it returned.
    const finished = await finishedBeforeStop(() => (what === 'repair' ? repair(s) : aggregateRecover.run({}, s.ctx)));
    if (!finished) steps++;
    if (mode === 'power') disk.powerLoss();
    disk.reboot();
    s.setFs(disk.port()); // a new process
    s.clock.advance(1_000);
    // Before any re-run, whatever the cut left: every entry that counted as stored before the
    // repair and is still in a readable file is a duplicate when sent again, so nothing can be
    // stored twice in between.
    const now = readableIds(disk, s.dataRoot);
    const readable = storedBefore.filter((id) => now.has(id)).map((id) => Number(id.slice(3)));
    const probe = await aggregate.run({ entry: [JSON.stringify(readable.map((i) => rawEntry(i, AT + i)))], source: [] }, s.ctx);
    t.is(probe.accepted, 0, `n=${n}: an entry in a readable file was importable again after the cut`);
    if (what === 'recover') await aggregateRecover.run({}, s.ctx);
    await repair(s);

    const again = await importSource(s);
    t.is(again.accepted, lost.length, `n=${n}: the re-import stores exactly the entries of the damaged files`);
    await aggregateForce.run({}, s.ctx);
    const counts = storedEntryCounts(disk, s.dataRoot);
    for (const i of SOURCE) t.is(counts.get(`id-${i}`), 1, `n=${n}: id-${i} stored exactly once`);
    t.is(counts.size, SOURCE.length, `n=${n}: nothing else stored`);
    t.like(await importSource(s), { accepted: 0, duplicates: SOURCE.length }, `n=${n}: a second re-import adds nothing`);
    t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, missing: [] }, `n=${n}: validation passes`);
    if (finished) break;
  }
  return steps;
}

test('validate --repair (set aside, release, index rebuild): power loss at every durable step, then a re-run: every entry exactly once after a re-import', async (t) => {
  const steps = await cutAtEveryStep(t, 'power', 'repair');
  t.log(`cut at ${steps} steps`);
  t.true(steps >= 15);
});

test('validate --repair: process crash at every durable step, then a re-run: every entry exactly once after a re-import', async (t) => {
  t.true((await cutAtEveryStep(t, 'process', 'repair')) >= 15);
});

test('recovery pass quarantining a damaged failed batch, then validate --repair: power loss at every durable step: every entry exactly once after a re-import', async (t) => {
  const steps = await cutAtEveryStep(t, 'power', 'recover');
  t.log(`cut at ${steps} steps`);
  t.true(steps >= 5);
});

test('recovery pass quarantining a damaged failed batch: process crash at every durable step: every entry exactly once after a re-import', async (t) => {
  t.true((await cutAtEveryStep(t, 'process', 'recover')) >= 5);
});
