/**
 * `provider-bridge aggregate-report` as a real process: formats on stdout, `--output`, exit codes.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { commit, session, writeBatch } from '../helpers/report-store.js';
import { tempDir } from '../helpers/store.js';

const H = 3_600_000;

function store(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git')); // a work-tree top: the data root is <dir>/.flowforge
  const dataRoot = path.join(dir, '.flowforge');
  writeBatch(dataRoot, [session('alice', 's1', '2026-03-02T08:00:00Z', 2 * H, 'T-1'), commit('c1', 'bob', '2026-03-02T10:00:00Z'), session('bob', 's2', '2026-03-03T08:00:00Z', H, 'T-2')]);
  return { dir, dataRoot };
}

test('stdout carries the JSON document by default, the table with text, CSV with csv and one HTML page with html', (t) => {
  const { dir } = store(t);
  const json = runCli(['aggregate-report', '--by=day'], { cwd: dir });
  t.is(json.code, 0, json.stderr);
  t.like(json.json, { ok: true, action: 'aggregate-report' });
  t.deepEqual(json.json.result.rows, [
    { key: '2026-03-02', entries: 2, commits: 1, trackedMs: 2 * H },
    { key: '2026-03-03', entries: 1, commits: 0, trackedMs: H },
  ]);
  t.deepEqual(json.json.result.totals, { entries: 3, commits: 1, trackedMs: 3 * H });

  const text = runCli(['aggregate-report', '--by=task', '--format=text'], { cwd: dir });
  t.is(text.code, 0);
  t.regex(text.stdout, /^Time report by task: 2026-03-02 – 2026-03-03\n/);
  t.regex(text.stdout, /│ T-1 +│ +1 │ +0 │ +2\.00 │\n/);
  t.regex(text.stdout, /│ \(total\) +│ +3 │ +1 │ +3\.00 │\n/);

  const csv = runCli(['aggregate-report', '--by=user', '--format=csv'], { cwd: dir });
  t.is(csv.code, 0);
  t.is(csv.stdout, 'user,entries,commits,trackedMs,trackedHours\nalice,1,0,7200000,2.00\nbob,2,1,3600000,1.00\n');

  const html = runCli(['aggregate-report', '--format=html'], { cwd: dir });
  t.is(html.code, 0);
  t.regex(html.stdout, /^<!doctype html>\n/);
  t.regex(html.stdout, /<strong id="date-range">2026-03-02 – 2026-03-03<\/strong>/);
  t.regex(html.stdout, /Chart\.js v4\./); // the library is inlined, not fetched
  t.is(html.stdout.match(/<script[ >]/g)?.length, 3);
});

test('--output writes the rendered report atomically (0600) and stdout carries the JSON document with its absolute path', (t) => {
  const { dir } = store(t);
  fs.mkdirSync(path.join(dir, 'out'));
  const csv = runCli(['aggregate-report', '--format=csv', '--output=out/report.csv'], { cwd: dir });
  t.is(csv.code, 0, csv.stderr);
  const file = path.join(dir, 'out', 'report.csv');
  t.is(csv.json.result.output, file);
  t.deepEqual(csv.json.result.totals, { entries: 3, commits: 1, trackedMs: 3 * H });
  t.is(fs.readFileSync(file, 'utf8'), 'user,entries,commits,trackedMs,trackedHours\nalice,1,0,7200000,2.00\nbob,2,1,3600000,1.00\n');
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.deepEqual(fs.readdirSync(path.join(dir, 'out')), ['report.csv']); // no temp file left

  const json = runCli(['aggregate-report', '--output=out/report.json'], { cwd: dir });
  t.is(json.code, 0);
  const written = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'report.json'), 'utf8'));
  t.is(written.action, 'aggregate-report');
  t.deepEqual(written.result.rows, json.json.result.rows);
  t.is(written.result.output, undefined);

  const text = runCli(['aggregate-report', '--format=text', '--output=out/report.txt'], { cwd: dir });
  t.is(text.json.result.output, path.join(dir, 'out', 'report.txt'));
  t.regex(fs.readFileSync(path.join(dir, 'out', 'report.txt'), 'utf8'), /│ \(total\) +│ +3 │/);
});

test('aggregate-report --help names every source counted, the inbox included', (t) => {
  const { dir } = store(t);
  const r = runCli(['aggregate-report', '--help'], { cwd: dir });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout.replace(/\s+/g, ' '), /Counts every acknowledged entry: batch files, failed batches awaiting retry, and entries still pending in the journal and in the inbox \(abandoned batches are reported, not counted\)\./);
});

test('bad options exit 2 naming the option, and nothing is written', (t) => {
  const { dir } = store(t);
  const cases: Array<[string[], string, RegExp]> = [
    [['--by=week'], '--by', /--by must be one of user, task, day, branch, action/],
    [['--scope=world'], '--scope', /--scope must be local or team/],
    [['--tz=Mars/Olympus'], '--tz', /^--tz "Mars\/Olympus" is not valid/],
    [['--since=2026-13-01'], '--since', /^--since "2026-13-01" is not valid/],
    [['--until=tomorrow'], '--until', /^--until "tomorrow" is not valid/],
    [['--since=2026-03-05', '--until=2026-03-01'], '--since', /^--since \(2026-03-05\) is after --until \(2026-03-01\)/],
    [['--output=missing/report.html'], '--output', /^--output missing\/report\.html: the folder .* does not exist/],
    [['--format=pdf'], '', /^--format must be one of json, text, csv, html, got "pdf"/],
  ];
  for (const [args, option, message] of cases) {
    const r = runCli(['aggregate-report', ...args], { cwd: dir });
    t.is(r.code, 2, args.join(' '));
    t.is(r.json.error.code, 'E_USAGE', args.join(' '));
    t.regex(r.json.error.message, message, args.join(' '));
    if (option) t.is(r.json.error.details[0].path, option, args.join(' '));
  }
  t.false(fs.existsSync(path.join(dir, 'missing')));
});

test('a batch file that cannot be trusted: exit 1, every such file listed, no report', (t) => {
  const { dir, dataRoot } = store(t);
  const bad = writeBatch(dataRoot, [commit('c9', 'eve', '2026-03-04T10:00:00Z')], { mutate: (b) => ({ ...b, entryCount: 2 }) });
  const r = runCli(['aggregate-report', '--format=csv'], { cwd: dir });
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, /1 stored file\(s\) under .* could not be trusted, so no report was made/);
  t.regex(r.stderr, new RegExp(`  - aggregated/${path.basename(bad).replace('.', '\\.')}: entryCount does not match its entries\n`));
});

// Root reads a chmod 000 file: skipped then (the unit test covers it with a faulty file port).
(process.getuid?.() === 0 ? test.skip : test)('a batch file the user cannot read (chmod 000): exit 1 E_IO naming the file, not a repair hint', (t) => {
  const { dir, dataRoot } = store(t);
  const file = writeBatch(dataRoot, [commit('c9', 'eve', '2026-03-04T10:00:00Z')]);
  fs.chmodSync(file, 0o000);
  t.teardown(() => fs.chmodSync(file, 0o600));
  const r = runCli(['aggregate-report'], { cwd: dir });
  t.is(r.code, 1);
  const doc = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string; details: Array<{ path: string }> } };
  t.is(doc.ok, false);
  t.is(doc.error.code, 'E_IO');
  t.regex(doc.error.message, new RegExp(`^Could not read aggregated/${path.basename(file).replace('.', '\\.')} under ${dataRoot} \\(cannot be read: EACCES`));
  t.deepEqual(doc.error.details.map((d) => d.path), [`aggregated/${path.basename(file)}`]);
  t.false(r.stdout.includes('aggregate-validate'));
});

test('reports taken while other processes append, flush and compact never lose or double-count an acknowledged entry', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  // batchSize 5: every call of 10 entries flushes two batches; past 256 flushed entries the journal is compacted.
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 5 }));
  const { spawn } = await import('node:child_process');
  const { CLI } = await import('../helpers/cli.js');
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.on('close', (code) => resolve({ code, stdout }));
    });
  let acknowledged = 0; // entries of the calls that returned ok
  let started = 0; // entries of the calls started: one in flight may already be in the journal
  let writing = true;
  const writer = (async () => {
    for (let call = 0; call < 30; call++) {
      const entries = Array.from({ length: 10 }, (_, i) => ({ entryId: `w-${call}-${i}`, userId: 'ana', action: 'work', timestamp: Date.UTC(2026, 2, 2, 9) + call * 10 + i, metadata: { duration: 1000 } }));
      started += 10;
      const r = await run(['aggregate', `--entry=${JSON.stringify(entries)}`]);
      if (r.code === 0 && JSON.parse(r.stdout).result.accepted === 10) acknowledged += 10;
    }
    writing = false;
  })();
  const seen: Array<{ before: number; counted: number; after: number }> = [];
  while (writing) {
    const before = acknowledged;
    const r = await run(['aggregate-report']);
    t.is(r.code, 0);
    const totals = JSON.parse(r.stdout).result.totals;
    seen.push({ before, counted: totals.entries, after: started });
    t.is(totals.trackedMs, totals.entries * 1000);
  }
  await writer;
  t.is(acknowledged, 300);
  t.true(seen.length >= 3, `only ${seen.length} reports ran meanwhile`);
  for (const s of seen) t.true(s.before <= s.counted && s.counted <= s.after, JSON.stringify(s));
  const final = JSON.parse((await run(['aggregate-report'])).stdout).result;
  t.deepEqual(final.totals, { entries: 300, commits: 0, trackedMs: 300_000 });
});
