import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { COMPACT_AFTER_ENTRIES, FLUSH_ATTEMPTS } from '../../plugins/aggregation/aggregator.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { InputError } from '../../src/core/errors.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

const input = (entries: unknown[]) => ({ entry: [JSON.stringify(entries)], source: [] as never[] });

test('entries are acknowledged into the journal and the threshold trigger cuts a batch at ⌈0.9 × 10⌉ = 9', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now();
  const first = await aggregate.run(input([0, 1, 2, 3, 4, 5, 6, 7].map((i) => rawEntry(i, now - 1000))), s.ctx);
  t.like(first, { accepted: 8, duplicates: 0, pending: 8, flushed: [] });
  const second = await aggregate.run(input([rawEntry(8, now - 1000)]), s.ctx);
  t.is(second.accepted, 1);
  t.is(second.pending, 0);
  t.is(second.flushed.length, 1);
  t.like(second.flushed[0], { entryCount: 9, trigger: 'threshold' });
  const batches = s.batches();
  t.is(batches.length, 1);
  t.deepEqual(batches[0]!.entries.map((e) => e.entryId), [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => `id-${i}`));
  t.is(batches[0]!.entryCount, 9);
  t.false(batches[0]!.recovered);
  t.is(second.flushed[0]!.file, `aggregated/${batches[0]!.batchId}.json`);
});

test('size trigger: 25 entries with batchSize 10 make two batches of 10; 5 stay pending', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const r = await aggregate.run(input(Array.from({ length: 25 }, (_, i) => rawEntry(i, s.clock.now() - 1))), s.ctx);
  t.deepEqual(r.flushed.map((f) => [f.entryCount, f.trigger]), [
    [10, 'size'],
    [10, 'size'],
  ]);
  t.is(r.pending, 5);
  t.deepEqual(s.batches().map((b) => b.entryCount), [10, 10]);
});

test('a large call writes whole batches straight to batch files: the same batches as the size trigger, the journal holds only the rest', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const ts = s.clock.now() - 1;
  t.like(await aggregate.run(input([0, 1, 2].map((i) => rawEntry(i, ts))), s.ctx), { accepted: 3, pending: 3 });
  const ids = Array.from({ length: 45 }, (_, i) => i + 3);
  const r = await aggregate.run(input(ids.map((i) => rawEntry(i, ts))), s.ctx);
  // 7 complete the pending batch (journal, size trigger), 3 whole batches go straight to files,
  // 8 stay pending (below the threshold of 9).
  t.like(r, { accepted: 45, duplicates: 0, pending: 8 });
  t.deepEqual(r.flushed.map((f) => [f.entryCount, f.trigger]), [
    [10, 'size'],
    [10, 'size'],
    [10, 'size'],
    [10, 'size'],
  ]);
  const batches = s.batches();
  t.deepEqual(batches.map((b) => b.entryCount), [10, 10, 10, 10]);
  const contents = batches.map((b) => b.entries.map((e) => Number(e.entryId.slice(3)))).sort((a, b) => a[0]! - b[0]!);
  t.deepEqual(contents, [0, 10, 20, 30].map((from) => Array.from({ length: 10 }, (_, k) => from + k)));
  t.deepEqual(r.flushed.map((f) => f.file).sort(), batches.map((b) => `aggregated/${b.batchId}.json`).sort());
  const journal = fs.readFileSync(path.join(s.dataRoot, 'aggregated/journal/journal.log'), 'utf8');
  t.true(journal.includes('"id-9"'), 'the entries completing the pending batch went through the journal');
  t.false(journal.includes('"id-20"'), 'entries of whole batches never went through the journal');
  t.true(journal.includes('"id-47"'), 'the remainder is pending in the journal');
  // Every entry is known: sent again, all are duplicates (the direct ones through the id index).
  t.like(await aggregate.run(input([0, 1, 2, ...ids].map((i) => rawEntry(i, ts))), s.ctx), { accepted: 0, duplicates: 48, pending: 8, flushed: [] });
  const status = await (await import('../../plugins/aggregation/handlers/aggregate-status.js')).aggregateStatus.run({}, s.ctx);
  t.like(status, { pending: 8, batches: { count: 4, entries: 40 } });
});

test('a duplicate is counted and not stored, pending or already in a batch, also after compaction', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const ts = s.clock.now() - 1;
  await aggregate.run(input([rawEntry(1, ts)]), s.ctx);
  t.like(await aggregate.run(input([rawEntry(1, ts), rawEntry(1, ts), rawEntry(2, ts)]), s.ctx), { accepted: 1, duplicates: 2, pending: 2 });
  await aggregateForce.run({}, s.ctx);
  t.like(await aggregate.run(input([rawEntry(1, ts)]), s.ctx), { accepted: 0, duplicates: 1, pending: 0 });
  // Push enough through the journal to compact it, so ids must come from the index shards
  // (calls of 40 entries: a larger call writes whole batches straight to batch files).
  const many = Array.from({ length: COMPACT_AFTER_ENTRIES + 10 }, (_, i) => rawEntry(100 + i, ts));
  for (let i = 0; i < many.length; i += 40) await aggregate.run(input(many.slice(i, i + 40)), s.ctx);
  await aggregateForce.run({}, s.ctx);
  const journal = fs.readFileSync(path.join(s.dataRoot, 'aggregated/journal/journal.log'), 'utf8');
  t.false(journal.includes('"id-1"'), 'journal was compacted');
  t.like(await aggregate.run(input([rawEntry(1, ts), rawEntry(150, ts), rawEntry(9999, ts)]), s.ctx), { accepted: 1, duplicates: 2 });
  const ids = s.batches().flatMap((b) => b.entries.map((e) => e.entryId));
  t.is(ids.length, new Set(ids).size);
  t.is(ids.length, 2 + COMPACT_AFTER_ENTRIES + 10);
});

test('an invalid entry rejects the whole call and writes nothing', async (t) => {
  const s = withTempStore(t);
  const good = rawEntry(1, s.clock.now() - 1);
  const error = await t.throwsAsync(aggregate.run(input([good, { ...good, entryId: 'x', timestamp: 'yesterday' }]), s.ctx), { instanceOf: InputError });
  t.is(error?.details[0]?.path, '[1].timestamp');
  t.false(fs.existsSync(s.dataRoot));
});

test('a batch write that fails every attempt parks the batch in recovery/ and the call still succeeds', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const port = createFaultyFsPort((op, args) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'ENOSPC' : undefined));
  s.setFs(port);
  const r = await aggregate.run(input([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)]), s.ctx);
  t.is(r.accepted, 2);
  t.is(r.flushed.length, 0);
  t.is(r.failed.length, 1);
  t.is(r.pending, 0);
  t.is(port.calls.filter((c) => c.op === 'writeFileDurable' && c.file?.endsWith(`${r.failed[0]!.batchId}.json`)).length, 3);
  const parked = JSON.parse(fs.readFileSync(path.join(s.dataRoot, r.failed[0]!.file), 'utf8'));
  t.deepEqual(parked.entries.map((e: { entryId: string }) => e.entryId), ['id-1', 'id-2']);
  t.is(parked.retryCount, 0);
  t.regex(parked.lastError, /ENOSPC/);
  t.is(s.batches().length, 0);
});

test('when the batch cannot be parked either, its entries stay pending in the journal', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  s.setFs(createFaultyFsPort((op, args) => (op === 'writeFileDurable' && /batch_/.test(String(args[0])) ? 'EIO' : undefined)));
  const r = await aggregate.run(input([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)]), s.ctx);
  t.is(r.accepted, 2);
  t.is(r.pending, 2);
  t.deepEqual(r.failed, []);
  s.setFs(createFaultyFsPort(() => undefined));
  const again = await aggregateForce.run({}, s.ctx);
  t.is(again.flushed.length, 1);
  t.deepEqual(s.batches()[0]!.entries.map((e) => e.entryId), ['id-1', 'id-2']);
});

test('a bulk ingest whose batch files can be neither written nor parked: those entries stay pending in the journal, once each', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  s.setFs(createFaultyFsPort((op, args) => (op === 'writeFilesDurable' || (op === 'writeFileDurable' && /batch_/.test(String(args[0]))) ? 'EIO' : undefined)));
  const r = await aggregate.run(input([1, 2, 3, 4, 5].map((i) => rawEntry(i, s.clock.now() - 1))), s.ctx);
  t.like(r, { accepted: 5, duplicates: 0, pending: 5, flushed: [], failed: [] });
  t.deepEqual(s.batches(), []);
  s.setFs(createFaultyFsPort(() => undefined));
  const forced = await aggregateForce.run({}, s.ctx);
  t.deepEqual(forced.flushed.map((f) => f.entryCount), [2, 2, 1]);
  t.deepEqual(s.batches().flatMap((b) => b.entries.map((e) => e.entryId)).sort(), ['id-1', 'id-2', 'id-3', 'id-4', 'id-5']);
  t.like(await aggregate.run(input([1, 2, 3, 4, 5].map((i) => rawEntry(i, s.clock.now() - 1))), s.ctx), { accepted: 0, duplicates: 5 });
});

test('a process killed after writing the batch file but before the commit: the next call commits it, no duplicate batch', async (t) => {
  const s = withTempStore(t, { batchSize: 100 });
  await aggregate.run(input([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)]), s.ctx);
  // Simulate the kill: the journal append of the commit record throws after the file landed.
  let appends = 0;
  s.setFs(
    createFaultyFsPort((op) => {
      if (op === 'writeAll') appends++;
      return op === 'writeAll' && appends === 2 ? 'EIO' : undefined; // 1st = intent, 2nd = commit
    }),
  );
  await t.throwsAsync(aggregateForce.run({}, s.ctx));
  t.is(s.batches().length, 1);
  s.setFs(createFaultyFsPort(() => undefined));
  const r = await aggregateForce.run({}, s.ctx);
  t.is(r.pending, 0);
  t.is(r.flushed.length, 1, 'the resumed batch is reported');
  t.is(s.batches().length, 1);
  t.deepEqual(s.batches()[0]!.entries.map((e) => e.entryId), ['id-1', 'id-2']);
});

test('a lock lost mid-operation: the call stops before its next write, starts over, and stores each entry once', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const lockOwner = path.join(s.dataRoot, 'aggregated/journal/store.lock/owner.json');
  let stolen = 0;
  s.setFs(
    createFaultyFsPort((op) => {
      // Right after the entries are appended, someone else takes the lock over once.
      if (op === 'fsync' && stolen === 0 && fs.existsSync(lockOwner)) {
        stolen++;
        const owner = JSON.parse(fs.readFileSync(lockOwner, 'utf8'));
        fs.writeFileSync(lockOwner, JSON.stringify({ ...owner, token: 'intruder' }));
        // ...holds it for a moment, then releases it, so the retry can take it.
        setTimeout(() => fs.rmSync(path.dirname(lockOwner), { recursive: true, force: true }), 50);
      }
      return undefined;
    }),
  );
  const r = await aggregate.run(input([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)]), s.ctx);
  t.is(stolen, 1);
  t.true(s.logs.lines.some((l) => l.msg === 'store lock lost mid-operation; starting over'));
  t.like(r, { accepted: 2, duplicates: 0, pending: 0 });
  const ids = s.batches().flatMap((b) => b.entries.map((e) => e.entryId));
  t.deepEqual(ids, ['id-1', 'id-2']);
});

test('a lock lost during a bulk ingest, after its batch files and ids are durable: the retry commits them and counts them as accepted, not duplicates', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const lockOwner = path.join(s.dataRoot, 'aggregated/journal/store.lock/owner.json');
  let stolen = 0;
  s.setFs(
    createFaultyFsPort((op) => {
      // The id index append of the direct batches (step 3): someone takes the lock over once.
      if (op === 'appendAllDurable' && stolen === 0 && fs.existsSync(lockOwner)) {
        stolen++;
        const owner = JSON.parse(fs.readFileSync(lockOwner, 'utf8'));
        fs.writeFileSync(lockOwner, JSON.stringify({ ...owner, token: 'intruder' }));
        setTimeout(() => fs.rmSync(path.dirname(lockOwner), { recursive: true, force: true }), 50);
      }
      return undefined;
    }),
  );
  const r = await aggregate.run(input([1, 2, 3, 4, 5, 6, 7].map((i) => rawEntry(i, s.clock.now() - 1))), s.ctx);
  t.is(stolen, 1);
  t.true(s.logs.lines.some((l) => l.msg === 'store lock lost mid-operation; starting over'));
  t.like(r, { accepted: 7, duplicates: 0, pending: 1 });
  t.deepEqual(r.flushed.map((f) => f.entryCount), [2, 2, 2]);
  const ids = s.batches().flatMap((b) => b.entries.map((e) => e.entryId)).sort();
  t.deepEqual(ids, ['id-1', 'id-2', 'id-3', 'id-4', 'id-5', 'id-6']);
  t.like(await aggregate.run(input([1, 2, 3, 4, 5, 6, 7].map((i) => rawEntry(i, s.clock.now() - 1))), s.ctx), { accepted: 0, duplicates: 7, pending: 1 });
});

test('batchSize "auto": small entries make batches of 500, 4 KB entries batches of about 64 KB', async (t) => {
  const small = withTempStore(t, { batchSize: 'auto' });
  const r1 = await aggregate.run(input(Array.from({ length: 1200 }, (_, i) => rawEntry(i, small.clock.now() - 1))), small.ctx);
  t.deepEqual(r1.flushed.map((f) => [f.entryCount, f.trigger]), [
    [500, 'size'],
    [500, 'size'],
  ]);
  const large = withTempStore(t, { batchSize: 'auto' });
  const r2 = await aggregate.run(input(Array.from({ length: 40 }, (_, i) => rawEntry(i, large.clock.now() - 1, { note: 'x'.repeat(4000) }))), large.ctx);
  t.true(r2.flushed.length >= 2);
  t.is(r2.flushed[0]!.entryCount, 15, '⌊65536 ÷ ~4.1 KB⌋');
  const bytes = fs.statSync(path.join(large.dataRoot, r2.flushed[0]!.file)).size;
  t.true(bytes > 50_000 && bytes < 70_000, `${bytes} bytes`);
});

test('a folder that refuses every batch file: the first batch gets every attempt, the later ones one each, then all are parked (2,000 batches took minutes of backoff)', async (t) => {
  const s = withTempStore(t, { batchSize: 2 });
  const refuse = createFaultyFsPort((op, args) => (op === 'writeFilesDurable' || (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0]))) ? 'EPERM' : undefined));
  s.setFs(refuse);
  let sleeps = 0;
  s.ctx.sleep = async () => void sleeps++;
  const r = await aggregate.run(input(Array.from({ length: 10 }, (_, i) => rawEntry(i, s.clock.now() - 1))), s.ctx);
  t.like(r, { accepted: 10, pending: 0, flushed: [] });
  t.is(r.failed.length, 5);
  t.is(refuse.calls.filter((c) => c.op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(c.file ?? '')).length, FLUSH_ATTEMPTS + 4);
  t.is(sleeps, FLUSH_ATTEMPTS - 1);
  t.is(fs.readdirSync(path.join(s.dataRoot, 'aggregated/recovery')).filter((n) => n.endsWith('.failed.json')).length, 5);
  s.setFs(createFaultyFsPort(() => undefined));
  // A flush that only parked batches wrote no batch file: status says "never" (it named this one).
  const { aggregateStatus } = await import('../../plugins/aggregation/handlers/aggregate-status.js');
  t.like(await aggregateStatus.run({}, s.ctx), { lastFlushAt: null, batches: { count: 0, entries: 0 } });
  t.like(await aggregateRecover.run({}, s.ctx), { processed: 5, succeeded: 5 });
  t.deepEqual(s.batches().flatMap((b) => b.entries.map((e) => e.entryId)).sort(), Array.from({ length: 10 }, (_, i) => `id-${i}`).sort());
});
