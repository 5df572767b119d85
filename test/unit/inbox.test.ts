import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateStatus } from '../../plugins/aggregation/handlers/aggregate-status.js';
import { acquireLock } from '../../src/core/lock.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

const input = (entries: unknown[]) => ({ entry: [JSON.stringify(entries)], source: [] as never[] });

test('a busy store: aggregate queues its entries durably in the inbox; the next holder merges them once', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const ts = s.clock.now() - 1;
  await aggregate.run(input([rawEntry(1, ts)]), s.ctx);
  const held = await acquireLock(path.join(s.dataRoot, 'aggregated/journal/store'));
  const r = await aggregate.run(input([rawEntry(1, ts), rawEntry(2, ts), rawEntry(3, ts)]), s.ctx);
  await held.release();
  t.like(r, { accepted: 3, duplicates: 0, pending: null, batchAgeMs: null });
  t.regex(r.queued ?? '', /^aggregated\/inbox\/\d{13}-\d+-[0-9a-f]{8}\.ndjson$/);
  const queuedFile = path.join(s.dataRoot, r.queued!);
  t.deepEqual(fs.readFileSync(queuedFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l).entryId), ['id-1', 'id-2', 'id-3']);
  t.is((fs.statSync(queuedFile).mode & 0o777).toString(8), '600');
  const status = await aggregateStatus.run({}, s.ctx);
  t.is(status.pending, 3, 'id-1 was a duplicate; id-2 and id-3 joined it');
  t.false(fs.existsSync(queuedFile));
  t.true(s.logs.lines.some((l) => l.msg === 'merged queued entries' && l.fields?.accepted === 2 && l.fields?.duplicates === 1));
});

test('a crash between merging an inbox file and removing it: the next merge finds only duplicates', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const ts = s.clock.now() - 1;
  fs.mkdirSync(path.join(s.dataRoot, 'aggregated/journal'), { recursive: true });
  const held = await acquireLock(path.join(s.dataRoot, 'aggregated/journal/store'));
  const r = await aggregate.run(input([rawEntry(7, ts), rawEntry(8, ts)]), s.ctx);
  await held.release();
  t.truthy(r.queued);
  s.setFs(createFaultyFsPort((op, args) => (op === 'removeDurable' && String(args[0]).includes('/inbox/') ? 'EIO' : undefined)));
  await t.throwsAsync(aggregateStatus.run({}, s.ctx));
  s.setFs(createFaultyFsPort(() => undefined));
  const status = await aggregateStatus.run({}, s.ctx);
  t.is(status.pending, 2);
  t.false(fs.existsSync(path.join(s.dataRoot, r.queued!)));
  t.true(s.logs.lines.some((l) => l.msg === 'merged queued entries' && l.fields?.accepted === 0 && l.fields?.duplicates === 2));
});
