/**
 * `aggregate-migrate --apply` cut at every durable step (power loss, and a process crash that
 * keeps the page cache), then run again: every entry of the older files ends in exactly one
 * place, status counts each upgraded batch once, and each entry sent again is a duplicate.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resetStoreTuning, storeTuning } from '../../plugins/aggregation/aggregator.js';
import { deriveEntryId } from '../../plugins/aggregation/entry.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateMigrate } from '../../plugins/aggregation/handlers/aggregate-migrate.js';
import { aggregateStatus } from '../../plugins/aggregation/handlers/aggregate-status.js';
import { aggregateValidate } from '../../plugins/aggregation/handlers/aggregate-validate.js';
import { finishedBeforeStop, SimulatedDisk, storedEntryCounts } from '../helpers/power-loss-fs.js';
import { rawEntry, withTempStore } from '../helpers/store.js';

const A = 'batch_1700000000000_k3j4h5g6f';
const B = 'batch_1700000500000_a1b2c3d4e';
const F = 'batch_1700000700000_q9w8e7r6t';

/** Older-format entries (timestamps in seconds, no ids); one of B's repeats one of A's. */
const entriesA = [
  { userId: 'ana', action: 'work', timestamp: 1700000000 },
  { userId: 'bo', action: 'review', timestamp: 1700000010, metadata: { taskId: 7 } },
  { entryId: 'legacy-1', userId: 'ana', action: 'work', timestamp: 1700000100 },
];
const entriesB = [{ userId: 'ana', action: 'work', timestamp: '2023-11-14T22:13:20Z' }, { userId: 'cy', action: 'call', timestamp: 1700000600 }];
const entriesF = [{ userId: 'dee', action: 'work', timestamp: 1700000650 }];
const ms = (s: number) => s * 1000;
const legacyIds = [
  deriveEntryId({ userId: 'ana', action: 'work', timestamp: ms(1700000000) }),
  deriveEntryId({ userId: 'bo', action: 'review', timestamp: ms(1700000010), metadata: { taskId: '7' } }),
  'legacy-1',
  deriveEntryId({ userId: 'cy', action: 'call', timestamp: ms(1700000600) }),
  deriveEntryId({ userId: 'dee', action: 'work', timestamp: ms(1700000650) }),
];

/**
 * `history`: the store was used by this product before (batch X with id-1, id-2 in the index,
 * id-9 pending); without it, only the older product wrote the data root (the migration creates
 * the journal).
 */
async function cutAtEveryStep(t: import('ava').ExecutionContext, mode: 'power' | 'process', history = true): Promise<number> {
  storeTuning.compactAfterEntries = 2;
  t.teardown(resetStoreTuning);
  let steps = 0;
  for (let n = 1; ; n++) {
    const s = withTempStore(t);
    const disk = new SimulatedDisk(path.dirname(s.dataRoot));
    const port = disk.port();
    s.setFs(port);
    fs.mkdirSync(path.join(s.dataRoot, 'aggregated/journal'), { recursive: true }); // the lock lives on the real disk
    if (history) {
      await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)])], source: [] }, s.ctx);
      await aggregateForce.run({}, s.ctx);
      await aggregate.run({ entry: [JSON.stringify([rawEntry(9, s.clock.now() - 1)])], source: [] }, s.ctx);
    }
    const agg = path.join(s.dataRoot, 'aggregated');
    port.mkdirp(path.join(agg, 'recovery'));
    port.writeFileDurable(path.join(agg, `${A}.json`), JSON.stringify({ batchId: A, timestamp: 1700000050, entries: entriesA }));
    port.writeFileDurable(path.join(agg, `${B}.json`), JSON.stringify({ batchId: B, version: '1.0.0', timestamp: 1700000650, entries: entriesB }));
    port.writeFileDurable(path.join(agg, `recovery/${F}.failed.json`), JSON.stringify({ batchId: F, timestamp: 1700000700, entries: entriesF }));

    disk.crashAt = disk.calls + n;
    if (await finishedBeforeStop(() => aggregateMigrate.run({ apply: true }, s.ctx))) break;
    steps++;
    if (mode === 'power') disk.powerLoss();
    disk.reboot();

    const again = await aggregateMigrate.run({ apply: true }, s.ctx);
    t.deepEqual(again.invalid, [], `n=${n}`);
    const counts = storedEntryCounts(disk, s.dataRoot);
    const ids = history ? ['id-1', 'id-2', ...legacyIds] : legacyIds;
    for (const id of ids) t.is(counts.get(id), 1, `n=${n}: ${id} stored exactly once`);
    t.is(counts.size, ids.length, `n=${n}: nothing else stored`);
    const status = await aggregateStatus.run({}, s.ctx);
    const batches = history ? { count: 3, entries: 6 } : { count: 2, entries: 4 };
    t.deepEqual(status.batches, batches, `n=${n}: (X (2) +) A (3) + B (1) counted once`);
    t.is(status.pending, history ? 1 : 0, `n=${n}`);
    const resent = [...entriesA, ...entriesB, ...entriesF, ...(history ? [rawEntry(9, s.clock.now() - 1)] : [])];
    t.like(await aggregate.run({ entry: [JSON.stringify(resent)], source: [] }, s.ctx), { accepted: 0, duplicates: resent.length }, `n=${n}`);
    t.like(await aggregateValidate.run({ repair: false }, s.ctx), { ok: true, batches: batches.count, entries: batches.entries, failed: 1 }, `n=${n}`);
    t.deepEqual((await aggregateMigrate.run({ apply: true }, s.ctx)).migrated, [], `n=${n}: a third run has nothing to do`);
  }
  return steps;
}

test('power loss at every durable step of a migration, then a re-run: every entry exactly once', async (t) => {
  const steps = await cutAtEveryStep(t, 'power');
  t.log(`cut at ${steps} steps`);
  t.true(steps >= 12);
});

test('process crash at every durable step of a migration, then a re-run: every entry exactly once', async (t) => {
  t.true((await cutAtEveryStep(t, 'process')) >= 12);
});

test('power loss at every durable step of migrating a data root only the older product wrote: every entry exactly once', async (t) => {
  t.true((await cutAtEveryStep(t, 'power', false)) >= 12);
});
