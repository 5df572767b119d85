import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/store.js';
import { PROJECT_ROOT } from '../helpers/git-repo.js';

const PAST = Date.UTC(2026, 0, 15, 9, 30);
const entry = (i: number, extra: Record<string, unknown> = {}) => ({ entryId: `cli-${i}`, userId: 'ana', action: 'review', timestamp: PAST + i, ...extra });

function project(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git')); // a work-tree top, so the search stops here
  return dir;
}

test('--help lists every action and the global options; --version prints the package version', (t) => {
  const dir = project(t);
  const help = runCli(['--help'], { cwd: dir });
  t.is(help.code, 0);
  for (const action of ['aggregate', 'aggregate-status', 'aggregate-force', 'aggregate-recover', 'aggregate-validate', 'aggregate-cleanup', 'aggregate-health', 'aggregate-migrate', 'aggregate-report', 'aggregate-sync', 'hooks', 'serve']) t.regex(help.stdout, new RegExp(`^  ${action} `, 'm'));
  t.regex(help.stdout, /--data-path=DIR/);
  const version = runCli(['--version'], { cwd: dir });
  t.is(version.code, 0);
  t.is(version.stdout.trim(), JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version);
  const actionHelp = runCli(['aggregate', '--help'], { cwd: dir });
  t.is(actionHelp.code, 0);
  t.regex(actionHelp.stdout, /--source=git-checkout --prev=SHA --new=SHA --flag=0\|1/);
});

test('unknown action or option: exit 2, one JSON error listing the valid ones, nothing written', (t) => {
  const dir = project(t);
  const action = runCli(['agregate'], { cwd: dir });
  t.is(action.code, 2);
  t.is(action.json.ok, false);
  t.is(action.json.error.code, 'E_USAGE');
  t.regex(action.json.error.message, /Valid actions: aggregate, aggregate-cleanup, aggregate-force, aggregate-health, aggregate-migrate, aggregate-recover, aggregate-report, aggregate-status, aggregate-sync, aggregate-validate, hooks, serve$/);
  const option = runCli(['aggregate-status', '--bogus=1'], { cwd: dir });
  t.is(option.code, 2);
  t.regex(option.json.error.message, /Unknown option --bogus.*Valid options: .*--data-path/);
  t.regex(option.stderr, /Unknown option --bogus/);
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('aggregate from --entry, --input FILE (NDJSON) and stdin (JSON array) in one data root; duplicates counted', (t) => {
  const dir = project(t);
  const a = runCli(['aggregate', `--entry=${JSON.stringify(entry(1))}`, '--entry', JSON.stringify(entry(2))], { cwd: dir });
  t.is(a.code, 0);
  t.deepEqual(a.json, { ok: true, action: 'aggregate', result: { accepted: 2, duplicates: 0, pending: 2, batchAgeMs: a.json.result.batchAgeMs, flushed: [], failed: [], skipped: [] } });
  fs.writeFileSync(path.join(dir, 'in.ndjson'), `${JSON.stringify(entry(2))}\n\n${JSON.stringify(entry(3))}\n`);
  const b = runCli(['aggregate', '--input=in.ndjson'], { cwd: dir });
  t.like(b.json.result, { accepted: 1, duplicates: 1, pending: 3 });
  const c = runCli(['aggregate', '--input=-'], { cwd: dir, input: JSON.stringify([entry(4), entry(5)]) });
  t.like(c.json.result, { accepted: 2, duplicates: 0, pending: 5 });
  const force = runCli(['aggregate-force'], { cwd: dir });
  t.is(force.code, 0);
  t.is(force.json.result.flushed.length, 1);
  const batch = JSON.parse(fs.readFileSync(path.join(dir, '.flowforge', force.json.result.flushed[0].file), 'utf8'));
  t.deepEqual(batch.entries.map((e: { entryId: string }) => e.entryId), ['cli-1', 'cli-2', 'cli-3', 'cli-4', 'cli-5']);
  t.is(batch.version, '2.0.0');
  t.is(batch.entryCount, 5);
  const status = runCli(['aggregate-status'], { cwd: dir });
  t.like(status.json.result, { pending: 0, batches: { count: 1, entries: 5 } });
});

test('every validation problem is listed with its path; exit 2 and nothing is written', (t) => {
  const dir = project(t);
  const bad = [
    entry(1, { timestamp: 'not a date' }),
    entry(2, { userId: '' }),
    entry(3, { action: 'has space' }),
    entry(4, { timestamp: Date.now() + 3_600_000 }),
    entry(5, { metadata: { duration: -1 } }),
    entry(6, { timestamp: 1_700_000_000_000.5 }),
  ];
  const r = runCli(['aggregate', '--input=-'], { cwd: dir, input: JSON.stringify(bad) });
  t.is(r.code, 2);
  t.is(r.json.error.code, 'E_INPUT');
  t.deepEqual(
    r.json.error.details.map((d: { path: string }) => d.path),
    ['[0].timestamp', '[1].userId', '[2].action', '[3].timestamp', '[4].metadata.duration', '[5].timestamp'],
  );
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('NDJSON with a bad line in the middle is rejected whole, naming the line', (t) => {
  const dir = project(t);
  const r = runCli(['aggregate', '--input=-'], { cwd: dir, input: `${JSON.stringify(entry(1))}\n{oops\n${JSON.stringify(entry(3))}\n` });
  t.is(r.code, 2);
  t.is(r.json.error.details[0].path, '--input=-:line 2');
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('NDJSON with bad lines and invalid entries lists both in one run, in line order, each entry with its line; --format=text too', (t) => {
  const dir = project(t);
  const file = path.join(dir, 'mixed.ndjson');
  fs.writeFileSync(file, [JSON.stringify(entry(1)), '', JSON.stringify(entry(2, { userId: '' })), '{oops', JSON.stringify(entry(4, { action: 'has space' }))].join('\n') + '\n');
  const r = runCli(['aggregate', '--input=mixed.ndjson'], { cwd: dir });
  t.is(r.code, 2);
  t.is(r.json.error.message, '--input=mixed.ndjson: 1 line is not valid JSON and 2 entries are invalid: nothing was accepted');
  t.deepEqual(
    r.json.error.details.map((d: { path: string; source?: string }) => [d.path, d.source ?? null]),
    [
      ['[1].userId', '--input=mixed.ndjson:line 3'],
      ['--input=mixed.ndjson:line 4', null],
      ['[2].action', '--input=mixed.ndjson:line 5'],
    ],
  );
  const text = runCli(['aggregate', '--input=mixed.ndjson', '--format=text'], { cwd: dir });
  t.is(text.code, 2);
  t.regex(text.stderr, /^ {2}- \[1\]\.userId \(--input=mixed\.ndjson:line 3\): userId must be 1–128 characters$/m);
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('--data-path and FLOWFORGE_DATA_PATH choose the data root; dirs 0700, files 0600; --format=text is for people', (t) => {
  const dir = project(t);
  const viaEnv = path.join(dir, 'env-root');
  runCli(['aggregate', `--entry=${JSON.stringify(entry(1))}`], { cwd: dir, env: { FLOWFORGE_DATA_PATH: viaEnv } });
  t.true(fs.existsSync(path.join(viaEnv, 'aggregated/journal/journal.log')));
  const viaFlag = path.join(dir, 'flag-root');
  const r = runCli(['aggregate', '--data-path', viaFlag, `--entry=${JSON.stringify(entry(2))}`, '--format=text'], { cwd: dir, env: { FLOWFORGE_DATA_PATH: viaEnv } });
  t.is(r.code, 0);
  t.regex(r.stdout, /^accepted 1, duplicates 0, pending 1/);
  t.is((fs.statSync(path.join(viaFlag, 'aggregated')).mode & 0o777).toString(8), '700');
  t.is((fs.statSync(path.join(viaFlag, 'aggregated/journal/journal.log')).mode & 0o777).toString(8), '600');
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('global options in space form before the action (--data-path DIR --format text aggregate) are not read as the action; through the bin too', (t) => {
  const dir = project(t);
  const bin = path.join(PROJECT_ROOT, 'src/bridge/provider-bridge.sh');
  for (const [name, command] of [['esm', undefined], ['bin', [bin]]] as const) {
    const root = path.join(dir, `root-${name}`);
    const r = runCli(['--data-path', root, '--format', 'text', 'aggregate', `--entry=${JSON.stringify(entry(7))}`], { cwd: dir, ...(command ? { command: [...command] } : {}) });
    t.is(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
    t.is(r.stdout, 'accepted 1, duplicates 0, pending 1 (oldest 0 s)\n', name);
    t.true(fs.existsSync(path.join(root, 'aggregated/journal/journal.log')), name);
    const status = runCli(['--data-path', root, 'aggregate-status'], { cwd: dir, ...(command ? { command: [...command] } : {}) });
    t.is(status.code, 0, name);
    t.is(status.json.result.pending, 1, name);
  }
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('a data root that cannot be written: exit 1, message names the data root', (t) => {
  const dir = project(t);
  const blocker = path.join(dir, 'not-a-dir');
  fs.writeFileSync(blocker, 'x');
  const r = runCli(['aggregate', `--data-path=${blocker}`, `--entry=${JSON.stringify(entry(1))}`], { cwd: dir });
  t.is(r.code, 1);
  t.is(r.json.error.code, 'E_IO');
  t.true(r.json.error.message.includes(blocker));
});

test('a bad config is an error naming the key, never a silent fallback', (t) => {
  const dir = project(t);
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 0, recovery: { retryLimit: 3 } }));
  const r = runCli(['aggregate-status'], { cwd: dir });
  t.is(r.code, 2);
  t.is(r.json.error.code, 'E_CONFIG');
  const paths = r.json.error.details.map((d: { path: string }) => d.path).sort();
  t.deepEqual(paths, ['batchSize', 'recovery.retryLimit']);
});

test('--hook never fails or prints: a bad config is written to the aggregation log instead', (t) => {
  const dir = project(t);
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 0 }));
  const r = runCli(['aggregate', `--entry=${JSON.stringify(entry(1))}`, '--hook'], { cwd: dir });
  t.is(r.code, 0);
  t.is(r.stdout, '');
  t.is(r.stderr, '');
  const lines = fs.readFileSync(path.join(dir, '.flowforge/logs/aggregation.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.is(lines.length, 1);
  t.like(lines[0], { level: 'error', msg: 'hook invocation failed', action: 'aggregate', code: 'E_CONFIG' });
  t.false(fs.existsSync(path.join(dir, '.flowforge/aggregated')), 'nothing was accepted');
  // Once the config is fixed, status says commits went unrecorded.
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 5 }));
  const status = runCli(['aggregate-status'], { cwd: dir });
  t.is(status.json.result.health.status, 'degraded');
  t.deepEqual(status.json.result.health.issues.map((i: { type: string }) => i.type), ['hook-failures']);
  t.regex(status.json.result.health.issues[0].message, /^1 git-hook call\(s\) failed in the last 24 h/);
});

test('--input naming a pipe (/dev/stdin, <(cmd)) is read like standard input, once; its entries are stored; one that cannot be opened is a usage error', (t) => {
  const dir = project(t);
  const ndjson = Array.from({ length: 300 }, (_, i) => JSON.stringify(entry(i))).join('\n') + '\n';
  const file = path.join(dir, 'in.ndjson');
  fs.writeFileSync(file, ndjson);
  const bin = path.join(PROJECT_ROOT, 'src/bridge/provider-bridge.sh');
  // /dev/stdin fed by a shell pipe: it used to be read whole with readFile.
  const viaDevStdin = runCli(['-c', `cat '${file}' | "$0" aggregate --input=/dev/stdin --data-path='${path.join(dir, 'a')}'`, bin], { cwd: dir, command: ['sh'] });
  t.is(viaDevStdin.code, 0, viaDevStdin.stdout + viaDevStdin.stderr);
  t.is(JSON.parse(viaDevStdin.stdout).result.accepted, 300);
  // A process substitution (a pipe under /dev/fd).
  const viaFifo = runCli(['-c', `"$0" aggregate --input=<(cat '${file}') --data-path='${path.join(dir, 'b')}'`, bin], { cwd: dir, command: ['bash'] });
  t.is(viaFifo.code, 0, viaFifo.stdout + viaFifo.stderr);
  t.is(JSON.parse(viaFifo.stdout).result.accepted, 300);
  // spawnSync's stdin is a socket: /dev/stdin cannot be opened (ENXIO), which is said as such.
  const socket = runCli(['aggregate', '--input=/dev/stdin', `--data-path=${path.join(dir, 'c')}`], { cwd: dir, input: ndjson });
  t.is(socket.code, 2);
  t.is(socket.json.error.message, 'Cannot read --input=/dev/stdin: ENXIO');
});

test('--input with an empty path or a folder is a usage error saying so (it read the working folder: EISDIR)', (t) => {
  const dir = project(t);
  const root = path.join(dir, 'root');
  const empty = runCli(['aggregate', '--input=', `--data-path=${root}`], { cwd: dir });
  t.is(empty.code, 2);
  t.is(empty.json.error.code, 'E_USAGE');
  t.is(empty.json.error.message, '--input needs a file: --input=FILE, or --input=- for standard input');
  const folder = runCli(['aggregate', '--input=sub', `--data-path=${root}`], { cwd: dir });
  fs.mkdirSync(path.join(dir, 'sub'));
  const folder2 = runCli(['aggregate', '--input=sub', `--data-path=${root}`], { cwd: dir });
  t.is(folder.json.error.message, 'Cannot read --input=sub: ENOENT');
  t.is(folder2.code, 2);
  t.is(folder2.json.error.message, 'Cannot read --input=sub: it is a folder; give an NDJSON or JSON file, or - for standard input');
  t.deepEqual(folder2.json.error.details, [{ path: '--input', message: `${path.join(dir, 'sub')} is a folder`, value: 'sub' }]);
  t.false(fs.existsSync(root));
});
