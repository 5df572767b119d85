import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { openJournal, readPendingSnapshot } from '../../plugins/aggregation/journal.js';
import type { Entry } from '../../plugins/aggregation/types.js';
import { tempDir } from '../helpers/store.js';

const fsPort = createNodeFsPort();
const entry = (i: number): Entry => ({ entryId: `id-${i}`, userId: 'ana', action: 'work', timestamp: 1_700_000_000_000 + i });

function setup(t: Parameters<typeof tempDir>[0]) {
  const root = tempDir(t);
  const dir = path.join(root, 'journal');
  const errors = path.join(root, 'errors');
  const open = () => openJournal(dir, errors, fsPort, () => 1_800_000_000_000);
  return { dir, errors, file: path.join(dir, 'journal.log'), open };
}

test('appended entries survive a reopen with their seqs and append times', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.append([entry(1), entry(2)], 1000);
  journal.append([entry(3)], 2000);
  journal.close();
  const reopened = s.open().journal;
  t.deepEqual(
    reopened.pending.map((p) => [p.seq, p.appendedAt, p.entry.entryId]),
    [
      [1, 1000, 'id-1'],
      [2, 1000, 'id-2'],
      [3, 2000, 'id-3'],
    ],
  );
  t.true(reopened.hasId('id-2'));
  t.false(reopened.hasId('id-9'));
  t.is((fs.statSync(s.file).mode & 0o777).toString(8), '600');
  t.is((fs.statSync(s.dir).mode & 0o777).toString(8), '700');
});

test('a torn last record is quarantined, the valid ones kept, and the next append works', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.append([entry(1), entry(2), entry(3)], 1000);
  journal.close();
  fs.appendFileSync(s.file, '0badc0de {"t":"e","s":4,"at":10');
  const { journal: j2, quarantine } = s.open();
  t.is(quarantine.badRecords, 1);
  t.deepEqual(j2.pending.map((p) => p.entry.entryId), ['id-1', 'id-2', 'id-3']);
  const bad = fs.readdirSync(s.errors);
  t.is(bad.length, 1);
  t.is(fs.readFileSync(path.join(s.errors, bad[0]!), 'utf8'), '0badc0de {"t":"e","s":4,"at":10\n');
  j2.append([entry(4)], 2000);
  j2.close();
  const { journal: j3, quarantine: q3 } = s.open();
  t.is(q3.badRecords, 0);
  t.deepEqual(j3.pending.map((p) => [p.seq, p.entry.entryId]), [
    [1, 'id-1'],
    [2, 'id-2'],
    [3, 'id-3'],
    [4, 'id-4'],
  ]);
});

test('a corrupt record in the middle is dropped alone; a zero-filled tail is quarantined', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.append([entry(1)], 1000);
  journal.append([entry(2)], 1000);
  journal.append([entry(3)], 1000);
  journal.close();
  const lines = fs.readFileSync(s.file, 'utf8').split('\n');
  lines[1] = lines[1]!.replace('id-2', 'id-X'); // checksum no longer matches
  fs.writeFileSync(s.file, lines.join('\n') + '\0'.repeat(64));
  const { journal: j2, quarantine } = s.open();
  t.is(quarantine.badRecords, 2);
  t.deepEqual(j2.pending.map((p) => p.entry.entryId), ['id-1', 'id-3']);
  t.false(fs.readFileSync(s.file, 'utf8').includes('\0'));
});

test('commit moves a range out of pending; totals and committed ids follow; compaction keeps pending only', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.append([1, 2, 3, 4, 5].map(entry), 1000);
  journal.intent([{ b: 'batch_1', from: 1, to: 3 }], 2000);
  t.deepEqual(journal.openIntent, [{ b: 'batch_1', from: 1, to: 3 }]);
  journal.commit([{ b: 'batch_1', from: 1, to: 3 }], 2001, [3]);
  t.is(journal.openIntent, undefined);
  t.deepEqual(journal.pending.map((p) => p.seq), [4, 5]);
  t.deepEqual(journal.committed, [
    { entryId: 'id-1', batchId: 'batch_1' },
    { entryId: 'id-2', batchId: 'batch_1' },
    { entryId: 'id-3', batchId: 'batch_1' },
  ]);
  t.deepEqual(journal.totals, { batches: 1, batchEntries: 3, failedBatches: 0, lastFlushAt: 2001, recovered: [] });
  journal.close();
  const reopened = s.open().journal;
  t.deepEqual(reopened.totals, { batches: 1, batchEntries: 3, failedBatches: 0, lastFlushAt: 2001, recovered: [] });
  t.is(reopened.committed.length, 3);
  reopened.compact();
  reopened.close();
  const compacted = s.open().journal;
  t.deepEqual(compacted.pending.map((p) => [p.seq, p.entry.entryId]), [
    [4, 'id-4'],
    [5, 'id-5'],
  ]);
  t.is(compacted.committed.length, 0);
  t.false(compacted.hasId('id-1'));
  t.deepEqual(compacted.totals, { batches: 1, batchEntries: 3, failedBatches: 0, lastFlushAt: 2001, recovered: [] });
  compacted.append([entry(6)], 3000);
  t.deepEqual(compacted.pending.map((p) => p.seq), [4, 5, 6]);
});

test('an intent without a commit is still open after a reopen; abort closes it', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.append([entry(1)], 1000);
  journal.intent([{ b: 'batch_x', from: 1, to: 1 }], 2000);
  journal.close();
  const j2 = s.open().journal;
  t.deepEqual(j2.openIntent, [{ b: 'batch_x', from: 1, to: 1 }]);
  j2.abort(2001);
  j2.close();
  const j3 = s.open().journal;
  t.is(j3.openIntent, undefined);
  t.is(j3.pending.length, 1);
});

test('a migrated record counts an upgraded batch once, across reopen and compaction', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.migrated([{ batchId: 'batch_legacy_a', entryCount: 3 }], 1000);
  // A re-run after a crash records a again: ignored.
  journal.migrated([{ batchId: 'batch_legacy_a', entryCount: 3 }, { batchId: 'batch_legacy_b', entryCount: 0 }], 1001);
  const expected = { batches: 2, batchEntries: 3, failedBatches: 0, lastFlushAt: null, recovered: [], migrated: ['batch_legacy_a', 'batch_legacy_b'] };
  t.deepEqual(journal.totals, expected);
  journal.close();
  const reopened = s.open().journal;
  t.deepEqual(reopened.totals, expected);
  reopened.migrated([{ batchId: 'batch_legacy_a', entryCount: 3 }], 1003);
  t.is(fs.readFileSync(path.join(s.dir, 'journal.log'), 'utf8').trim().split('\n').length, 2, 'one record per batch, none for a repeat');
  reopened.compact();
  reopened.close();
  t.deepEqual(s.open().journal.totals, expected);
  const records = fs.readFileSync(path.join(s.dir, 'journal.log'), 'utf8').trim().split('\n');
  t.is(records.length, 1, 'after compaction only the header holds them');
});

test('readPendingSnapshot: pending entries only, across commits and a compaction; a torn tail is skipped, a bad record counted; nothing written', (t) => {
  const s = setup(t);
  t.deepEqual(readPendingSnapshot(s.dir, fsPort), { pending: [], badRecords: 0 });
  const { journal } = s.open();
  journal.append([entry(1), entry(2), entry(3)], 1000);
  journal.intent([{ b: 'batch_1', from: 1, to: 2 }], 1500);
  journal.commit([{ b: 'batch_1', from: 1, to: 2 }], 1600, [2]);
  journal.append([entry(4)], 2000);
  t.deepEqual(readPendingSnapshot(s.dir, fsPort).pending.map((e) => e.entryId), ['id-3', 'id-4']);
  journal.compact();
  journal.append([entry(5)], 3000);
  journal.close();
  t.deepEqual(readPendingSnapshot(s.dir, fsPort), { pending: [entry(3), entry(4), entry(5)], badRecords: 0 });

  const lines = fs.readFileSync(s.file, 'utf8').split('\n');
  const corrupt = lines[1]!.replace('id-3', 'id-X'); // checksum no longer matches
  fs.writeFileSync(s.file, [lines[0], corrupt, ...lines.slice(2, -1)].join('\n') + '\n' + '0badc0de {"t":"e","s":9');
  const before = fs.readFileSync(s.file);
  t.deepEqual(readPendingSnapshot(s.dir, fsPort), { pending: [entry(4), entry(5)], badRecords: 1 });
  t.deepEqual(fs.readFileSync(s.file), before);
  t.deepEqual(fs.readdirSync(path.dirname(s.dir)), ['journal']); // no quarantine written
});

test('a release record: the batch leaves the totals once, its committed ids stop being known, and both survive a reopen and a compaction', (t) => {
  const s = setup(t);
  const { journal } = s.open();
  journal.append([entry(1), entry(2), entry(3), entry(4)], 1000);
  journal.intent([{ b: 'batch_a', from: 1, to: 2 }, { b: 'batch_b', from: 3, to: 4, failed: true }], 1100);
  journal.commit([{ b: 'batch_a', from: 1, to: 2 }, { b: 'batch_b', from: 3, to: 4, failed: true }], 1200, [2, 2]);
  journal.append([entry(5)], 1300);
  t.like(journal.totals, { batches: 1, batchEntries: 2, failedBatches: 1 });
  journal.release([{ batchId: 'batch_a', kind: 'batch', entryCount: 2 }, { batchId: 'batch_b', kind: 'failed', entryCount: 2 }, { batchId: 'batch_a', kind: 'batch', entryCount: 2 }], 1400);
  const check = (j: typeof journal, when: string) => {
    t.like(j.totals, { batches: 0, batchEntries: 0, failedBatches: 0, released: ['batch_a', 'batch_b'] }, when);
    t.deepEqual([...j.released], ['batch_a', 'batch_b'], when);
    t.deepEqual([1, 2, 3, 4, 5].map((i) => j.hasId(`id-${i}`)), [false, false, false, false, true], when);
  };
  check(journal, 'in process');
  journal.release([{ batchId: 'batch_a', kind: 'batch', entryCount: 2 }], 1500); // again: nothing written
  journal.close();
  const reopened = s.open().journal;
  check(reopened, 'after a reopen');
  t.is(fs.readFileSync(s.file, 'utf8').split('\n').filter((l) => l.includes('"t":"x"')).length, 2);
  reopened.compact();
  reopened.close();
  const compacted = s.open().journal;
  t.like(compacted.totals, { batches: 0, batchEntries: 0, failedBatches: 0, released: ['batch_a', 'batch_b'] });
  t.deepEqual([...compacted.released], ['batch_a', 'batch_b']);
  t.deepEqual(compacted.pending.map((p) => p.entry.entryId), ['id-5']);
});
