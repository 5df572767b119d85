/**
 * Corruption cases (issue 4 item 3), through the real CLI: each ends with every valid record
 * kept, the bad bytes or file quarantined under recovery/errors/ (never deleted), health
 * reporting it, and the next append working.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/store.js';

const entry = (i: number) => ({ entryId: `c-${i}`, userId: 'ana', action: 'work', timestamp: Date.now() - 60_000 + i });

function store(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const root = path.join(dir, '.flowforge');
  const cli = (...args: string[]) => runCli(args, { cwd: dir });
  const add = (...ids: number[]) => cli('aggregate', `--entry=${JSON.stringify(ids.map(entry))}`);
  const errors = () => (fs.existsSync(path.join(root, 'aggregated/recovery/errors')) ? fs.readdirSync(path.join(root, 'aggregated/recovery/errors')) : []);
  const journal = path.join(root, 'aggregated/journal/journal.log');
  return { dir, root, cli, add, errors, journal };
}

/** After the damage: status sees the quarantine, the next append works, force stores all ids once. */
function assertRecovered(t: Parameters<typeof tempDir>[0], s: ReturnType<typeof store>, expectedIds: string[]) {
  const status = s.cli('aggregate-status');
  t.is(status.code, 0);
  t.true(status.json.result.recovery.errors >= 1, 'status counts the quarantined file');
  t.true(status.json.result.health.issues.some((i: { type: string }) => i.type === 'quarantined-files'), 'health reports it');
  t.is(s.add(100).code, 0, 'the next append works');
  t.is(s.cli('aggregate-force').code, 0);
  const ids = fs
    .readdirSync(path.join(s.root, 'aggregated'))
    .filter((n) => /^batch_.*\.json$/.test(n))
    .flatMap((n) => JSON.parse(fs.readFileSync(path.join(s.root, 'aggregated', n), 'utf8').replace(/^\uFEFF/, '')).entries.map((e: { entryId: string }) => e.entryId));
  t.deepEqual(ids.sort(), [...expectedIds, 'c-100'].sort());
}

test('a torn last journal record: earlier records kept, the torn bytes quarantined', (t) => {
  const s = store(t);
  s.add(1, 2);
  fs.appendFileSync(s.journal, '1a2b3c4d {"t":"e","s":3,"at":17000000');
  assertRecovered(t, s, ['c-1', 'c-2']);
  t.is(fs.readFileSync(path.join(s.root, 'aggregated/recovery/errors', s.errors()[0]!), 'utf8'), '1a2b3c4d {"t":"e","s":3,"at":17000000\n');
});

test('a corrupt record in the middle and a zero-filled tail: only they are quarantined', (t) => {
  const s = store(t);
  s.add(1);
  s.add(2);
  s.add(3);
  const lines = fs.readFileSync(s.journal, 'utf8').split('\n');
  lines[1] = lines[1]!.replace('"c-2"', '"c-X"');
  fs.writeFileSync(s.journal, lines.join('\n') + '\0'.repeat(512));
  assertRecovered(t, s, ['c-1', 'c-3']);
});

test('a UTF-8 byte-order mark in front of the journal costs no record', (t) => {
  const s = store(t);
  s.add(1, 2);
  fs.writeFileSync(s.journal, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fs.readFileSync(s.journal)]));
  assertRecovered(t, s, ['c-1', 'c-2']);
});

test('a zero-byte and a truncated batch file: validate --repair quarantines them, the rest is kept', (t) => {
  const s = store(t);
  s.add(1, 2);
  s.cli('aggregate-force');
  s.add(3, 4);
  s.cli('aggregate-force');
  s.add(5, 6);
  s.cli('aggregate-force');
  const batches = fs.readdirSync(path.join(s.root, 'aggregated')).filter((n) => n.startsWith('batch_')).sort();
  t.is(batches.length, 3);
  fs.writeFileSync(path.join(s.root, 'aggregated', batches[0]!), '');
  const second = path.join(s.root, 'aggregated', batches[1]!);
  fs.writeFileSync(second, fs.readFileSync(second, 'utf8').slice(0, 40));
  const check = s.cli('aggregate-validate');
  t.is(check.code, 1);
  t.deepEqual(
    check.json.error.details.map((d: { path: string }) => d.path).sort(),
    [`aggregated/${batches[0]}`, `aggregated/${batches[1]}`],
  );
  const idsOf = (name: string) => (name === batches[0] ? ['c-1', 'c-2'] : ['c-3', 'c-4']);
  const repair = s.cli('aggregate-validate', '--repair');
  t.is(repair.code, 1, 'repair still reports what it found');
  const details = repair.json.error.details as Array<{ path: string; message: string }>;
  t.is(details.filter((d) => /moved to aggregated\/recovery\/errors\//.test(d.message)).length, 2);
  // The entries of the two files set aside are listed, to be re-imported.
  t.deepEqual(
    details.filter((d) => / was set aside: /.test(d.message)).map((d) => d.message).sort(),
    batches.slice(0, 2).map((name) => `batch ${name.replace(/\.json$/, '')} was set aside: its 2 entries are in no batch file and no longer counted as stored — re-import them from your source: ${idsOf(name).join(', ')}`).sort(),
  );
  t.deepEqual(repair.json.error.message.match(/4 entries are in no batch file: re-import them from your source/)?.length, 1);
  t.is(s.errors().length, 2);
  assertRecovered(t, s, ['c-5', 'c-6']);
  // Until they are re-imported, validate says which entries are missing, and where the damaged files are.
  const after = s.cli('aggregate-validate');
  t.deepEqual(after.json.error.details.map((d: { message: string }) => d.message.replace(/ — .*$/, '')).sort(), [
    `batch ${batches[0]!.replace(/\.json$/, '')} was set aside as damaged: 2 of its entries are in no batch file`,
    `batch ${batches[1]!.replace(/\.json$/, '')} was set aside as damaged: 2 of its entries are in no batch file`,
    'quarantined file: inspect it, then move it out of the store',
    'quarantined file: inspect it, then move it out of the store',
  ]);
  // Re-importing the source stores exactly the missing entries; validate passes again.
  const again = s.add(1, 2, 3, 4, 5, 6, 100);
  t.like(again.json.result, { accepted: 4, duplicates: 3 });
  t.is(s.cli('aggregate-force').code, 0);
  const ids = fs
    .readdirSync(path.join(s.root, 'aggregated'))
    .filter((n) => /^batch_.*\.json$/.test(n))
    .flatMap((n) => JSON.parse(fs.readFileSync(path.join(s.root, 'aggregated', n), 'utf8')).entries.map((e: { entryId: string }) => e.entryId));
  t.deepEqual(ids.sort(), ['c-1', 'c-100', 'c-2', 'c-3', 'c-4', 'c-5', 'c-6']);
  const clean = s.cli('aggregate-validate');
  t.is(clean.code, 0);
  t.is(clean.json.result.notes.length, 2, 'the damaged copies are notes now');
});

test('a leftover temp file from a killed writer is noted (validate still passes), removed by cleanup, and harms nothing', (t) => {
  const s = store(t);
  s.add(1, 2);
  s.cli('aggregate-force');
  const temp = path.join(s.root, 'aggregated/batch_1700000000000_00000000.json.3141592653');
  fs.writeFileSync(temp, '{"batchId":');
  const check = s.cli('aggregate-validate');
  t.is(check.code, 0);
  t.deepEqual(check.json.result.notes.map((d: { path: string }) => d.path), ['aggregated/batch_1700000000000_00000000.json.3141592653']);
  fs.utimesSync(temp, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
  const cleanup = s.cli('aggregate-cleanup', '--age=1m');
  t.is(cleanup.code, 0);
  t.deepEqual(cleanup.json.result.removed, ['aggregated/batch_1700000000000_00000000.json.3141592653']);
  t.is(s.cli('aggregate-validate').code, 0);
  t.is(s.add(3).code, 0);
});
