import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openIdIndex, rebuildIdIndex, scanIdIndex, shardOf } from '../../plugins/aggregation/id-index.js';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { tempDir } from '../helpers/store.js';

test('an index sees ids another index (another process) appended after its first lookup', async (t) => {
  const dir = path.join(tempDir(t), 'index');
  const port = createNodeFsPort();
  const reader = openIdIndex(dir, port);
  const writer = openIdIndex(dir, port);
  await writer.add([{ entryId: 'a', batchId: 'b1' }]);
  t.deepEqual([...reader.lookup(['a', 'b'])], ['a']);
  await writer.add([{ entryId: 'b', batchId: 'b2' }]);
  t.deepEqual([...reader.lookup(['a', 'b', 'c'])].sort(), ['a', 'b']);
});

test('50,000 ids: every stored id is found, no other id is, and a deleted shard forgets its ids', async (t) => {
  const dir = path.join(tempDir(t), 'index');
  const port = createNodeFsPort();
  const ids = Array.from({ length: 50_000 }, (_, i) => `e_${i.toString(16).padStart(32, '0')}`);
  const index = openIdIndex(dir, port);
  await index.add(ids.filter((_, i) => i % 2 === 0).map((entryId) => ({ entryId, batchId: 'batch_x' })));
  const found = index.lookup(ids);
  t.is(found.size, 25_000);
  t.true(ids.every((id, i) => found.has(id) === (i % 2 === 0)));
  // Fingerprints are only hints: the shard's text decides.
  const victim = ids[0]!;
  fs.rmSync(path.join(dir, `ids-${shardOf(victim)}.tsv`));
  t.false(index.lookup([victim]).has(victim));
});

test('ids with any characters (user-given entryIds) round-trip through the shards', async (t) => {
  const dir = path.join(tempDir(t), 'index');
  const odd = ['session:ana:42:3600000', 'ünïcödé-✓', 'x'.repeat(200), '0'];
  await openIdIndex(dir, createNodeFsPort()).add(odd.map((entryId) => ({ entryId, batchId: 'batch_y' })));
  t.deepEqual([...openIdIndex(dir, createNodeFsPort()).lookup([...odd, 'missing'])].sort(), [...odd].sort());
});

test('the id index tells which batch each id is recorded under (the first line wins)', async (t) => {
  const dir = tempDir(t);
  const index = openIdIndex(dir, createNodeFsPort());
  await index.add([
    { entryId: 'a', batchId: 'batch_1' },
    { entryId: 'b', batchId: 'batch_2' },
  ]);
  await index.add([{ entryId: 'a', batchId: 'batch_3' }]);
  t.deepEqual([...index.owners(['a', 'b', 'c'])], [
    ['a', 'batch_1'],
    ['b', 'batch_2'],
  ]);
  t.deepEqual([...openIdIndex(dir, createNodeFsPort()).owners(['a', 'b', 'c'])], [
    ['a', 'batch_1'],
    ['b', 'batch_2'],
  ]);
  t.deepEqual([...index.lookup(['a', 'c'])], ['a']);
});

test('ids added after a lookup of a longer list (its hashes reused) are found again by the same index, and only they', async (t) => {
  const dir = path.join(tempDir(t), 'index');
  const index = openIdIndex(dir, createNodeFsPort());
  const ids = Array.from({ length: 3_000 }, (_, i) => `id-${i}`);
  t.is(index.lookup(ids).size, 0);
  // ingestBulk adds a subsequence of what it looked up, in the same order.
  const kept = ids.filter((_, i) => i % 3 === 1);
  const prepared = await index.prepare([{ batchId: 'batch_a', entryIds: kept.slice(0, 500) }, { batchId: 'batch_b', entryIds: kept.slice(500) }]);
  t.is(prepared.ids, 1_000);
  await index.commit(prepared);
  // Another id list in between: no stale hashes may be reused for it.
  await index.add([{ entryId: 'late', batchId: 'batch_c' }]);
  const found = index.lookup([...ids, 'late', 'never']);
  t.is(found.size, 1_001);
  t.true(kept.every((id) => found.has(id)));
  t.true(found.has('late'));
  t.deepEqual([...openIdIndex(dir, createNodeFsPort()).lookup(ids)].sort(), [...kept].sort());
});

test('an id whose only lines name released batches is not stored; a line naming another batch still makes it stored', async (t) => {
  const dir = path.join(tempDir(t), 'index');
  const index = openIdIndex(dir, createNodeFsPort());
  await index.add([
    { entryId: 'a', batchId: 'batch_gone' },
    { entryId: 'b', batchId: 'batch_gone' },
    { entryId: 'b', batchId: 'batch_kept' },
    { entryId: 'c', batchId: 'batch_kept' },
  ]);
  t.deepEqual([...index.lookup(['a', 'b', 'c'])].sort(), ['a', 'b', 'c']);
  const released = new Set<string>();
  index.setReleased(released);
  released.add('batch_gone'); // the journal's live set grows when a batch is released
  t.deepEqual([...index.lookup(['a', 'b', 'c'])].sort(), ['b', 'c']);
  t.deepEqual([...index.owners(['a', 'b', 'c'])].sort(), [
    ['b', 'batch_kept'],
    ['c', 'batch_kept'],
  ]);
});

test('rebuildIdIndex replaces every shard with exactly the given lines, and an index that cached the old shards reads the new ones', async (t) => {
  const dir = path.join(tempDir(t), 'index');
  const port = createNodeFsPort();
  const ids = Array.from({ length: 2_000 }, (_, i) => `r-${i}`);
  const reader = openIdIndex(dir, port);
  await reader.add(ids.slice(0, 1_000).map((entryId) => ({ entryId, batchId: 'batch_old' })));
  t.is(reader.lookup(ids).size, 1_000);
  // Damage: some shards lose their text (zero-filled tails, truncation).
  fs.writeFileSync(path.join(dir, `ids-${shardOf('r-1')}.tsv`), '\0'.repeat(64));
  const written = await rebuildIdIndex(dir, port, [
    ...ids.map((entryId) => ({ entryId, batchId: 'batch_new' })),
    { entryId: 'r-0', batchId: 'batch_new' }, // a repeat is written once
  ]);
  t.is(written, 2_000);
  t.is(reader.lookup(ids).size, 2_000, 'the cached index noticed the replaced shards');
  t.is(openIdIndex(dir, port).lookup([...ids, 'r-x']).size, 2_000);
  const scan = scanIdIndex(dir, port);
  t.is(scan.shards.length, 256);
  t.deepEqual([...scan.byBatch.keys()], ['batch_new']);
  t.is(scan.byBatch.get('batch_new')!.length, 2_000);
  t.deepEqual(fs.readdirSync(dir).filter((n) => !/^ids-[0-9a-f]{2}\.tsv$/.test(n)), [], 'no temp shard left');
});

test('scanIdIndex: garbled lines (NUL bytes, control bytes, two tabs, no id) are malformed; a tab-less id prefix is a torn line', (t) => {
  const dir = path.join(tempDir(t), 'index');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'ids-00.tsv'), ['', 'good\tbatch_a', 'tor', '\0\0\0\0', 'x\ty\tz', '\tbatch_a', 'ok\u0007\tbatch_a', 'y'.repeat(129), 'also-good\tbatch_b'].join('\n'));
  const scan = scanIdIndex(dir, createNodeFsPort());
  t.deepEqual(scan.shards, [{ name: 'ids-00.tsv', malformed: 5, malformedLines: [4, 5, 6, 7, 8], torn: 1 }]);
  t.deepEqual([...scan.byBatch], [
    ['batch_a', ['good']],
    ['batch_b', ['also-good']],
  ]);
});
