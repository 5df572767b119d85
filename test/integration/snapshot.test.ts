/**
 * The startup snapshot (src/bridge/snapshot-main.ts) must behave exactly like the ESM build:
 * the same calls run through the `provider-bridge` bin (snapshot) and through
 * `node dist/src/bridge/cli.js` (ESM), each against its own data root, and must give the same
 * exit codes and the same documents. Also: the launchers fall back to the ESM build when node
 * refuses the snapshot, and a snapshot copied to another folder runs the ESM build.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hookCommand } from '../../src/bridge/hooks-install.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { PROJECT_ROOT, withGitRepo, type GitRepo } from '../helpers/git-repo.js';

const BIN = path.join(PROJECT_ROOT, 'src/bridge/provider-bridge.sh');
const CLI = path.join(PROJECT_ROOT, 'dist/src/bridge/cli.js');
const BLOB = path.join(PROJECT_ROOT, 'dist/snapshot/provider-bridge.blob');

type Entry = 'snapshot' | 'esm';

type Run = CliRun;

function run(entry: Entry, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string; bin?: string }): Run {
  const command = entry === 'snapshot' ? [opts.bin ?? BIN] : [process.execPath, CLI];
  return runCli(args, { cwd: opts.cwd, env: { ...opts.env, FLOWFORGE_TRACE_STARTUP: '1' }, input: opts.input ?? '', command });
}

/** The trace line of FLOWFORGE_TRACE_STARTUP: which entry ran. */
function startedFrom(r: Run): string {
  return r.stderr.split('\n').find((l) => l.startsWith('provider-bridge: started from')) ?? '(no trace line)';
}

/** One repository, two data roots: one per entry. */
function setup(t: Parameters<typeof withGitRepo>[0]): { repo: GitRepo; call: (entry: Entry, args: string[], input?: string) => Run } {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n', 'b.txt': 'b\nb\n' });
  // A .ts config: loaded from the snapshot through the run-time importer.
  fs.writeFileSync(path.join(repo.dir, 'flowforge.config.ts'), 'const size: number = 2;\nexport default { batchSize: size, maxAge: 3_600_000 };\n');
  const roots: Record<Entry, string> = { snapshot: path.join(repo.root, 'data-snapshot'), esm: path.join(repo.root, 'data-esm') };
  return {
    repo,
    call: (entry, args, input) => {
      const r = run(entry, args, { cwd: repo.dir, env: { ...repo.env, FLOWFORGE_DATA_PATH: roots[entry] }, ...(input === undefined ? {} : { input }) });
      // The data roots differ by name only.
      for (const key of ['stdout', 'stderr'] as const) r[key] = r[key].replaceAll(roots[entry], '<data root>');
      if (r.json !== undefined) r.json = JSON.parse(r.stdout);
      return r;
    },
  };
}

test('the snapshot was built by npm run build for this node', (t) => {
  t.true(fs.existsSync(BLOB), `${BLOB} is missing: npm run build makes it (esbuild is a dev dependency)`);
  const r = run('snapshot', ['--version'], { cwd: PROJECT_ROOT, env: process.env });
  t.is(r.code, 0);
  t.is(r.stdout, `${JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')).version}\n`);
  t.is(startedFrom(r), `provider-bridge: started from the startup snapshot ${BLOB}`);
});

test('help, version and usage errors are the same from the snapshot and the ESM build', (t) => {
  const { call } = setup(t);
  for (const args of [['--version'], ['--help'], ['aggregate', '--help'], ['aggregate-status', '--help'], ['nope'], ['aggregate', '--bogus=1'], ['aggregate-status', '--format=yaml'], []]) {
    const a = call('snapshot', args);
    const b = call('esm', args);
    t.is(a.code, b.code, args.join(' '));
    t.is(a.stdout, b.stdout, args.join(' '));
    t.is(a.stderr.replace(/^provider-bridge: started from.*\n/, ''), b.stderr.replace(/^provider-bridge: started from.*\n/, ''), args.join(' '));
  }
  t.is(call('snapshot', ['nope']).code, 2);
});

test('entries, flushes, status, force, recover, validate and report agree between the snapshot and the ESM build', (t) => {
  const { repo, call } = setup(t);
  const bad = JSON.stringify({ userId: '', action: 'has space', timestamp: 'yesterday' });
  const ndjson = [1, 2, 3].map((i) => JSON.stringify({ entryId: `piped-${i}`, userId: 'ana', action: 'time-tracking', timestamp: 1_780_000_000_000 + i * 60_000, metadata: { taskId: 7, duration: 1_800_000 } })).join('\n');
  const steps: Array<{ args: string[]; input?: string; project: (r: Run) => unknown }> = [
    { args: ['aggregate', `--entry=${bad}`], project: (r) => r.json },
    { args: ['aggregate', '--source=git-commit'], project: (r) => ({ ...r.json.result, batchAgeMs: 0 }) },
    { args: ['aggregate', '--source=git-commit', '--hook'], project: (r) => r.stdout },
    { args: ['aggregate', '--source=git-commit'], project: (r) => ({ ...r.json.result, batchAgeMs: 0 }) },
    {
      args: ['aggregate', '--input=-'],
      input: ndjson,
      project: (r) => ({ accepted: r.json.result.accepted, pending: r.json.result.pending, flushed: r.json.result.flushed.map((f: any) => [f.entryCount, f.trigger]) }),
    },
    { args: ['aggregate-status'], project: (r) => ({ pending: r.json.result.pending, batches: r.json.result.batches, recovery: r.json.result.recovery }) },
    { args: ['aggregate-force'], project: (r) => r.json.result.flushed.map((f: any) => [f.entryCount, f.trigger]) },
    { args: ['aggregate-recover'], project: (r) => r.json.result },
    { args: ['aggregate-validate'], project: (r) => [r.code, r.json.ok] },
    { args: ['aggregate-report', '--by=user', '--format=csv', '--tz=UTC'], project: (r) => r.stdout },
  ];
  const results: Record<Entry, unknown[]> = { snapshot: [], esm: [] };
  for (const entry of ['snapshot', 'esm'] as const) {
    for (const step of steps) {
      const r = call(entry, step.args, step.input);
      results[entry].push({ args: step.args.join(' ').slice(0, 40), code: r.code, value: step.project(r) });
    }
  }
  t.deepEqual(results.snapshot, results.esm);
  // And the values themselves are what a user expects.
  const [invalid, first, hook, again, piped, status, force] = results.snapshot as Array<{ code: number; value: any }>;
  t.is(invalid!.code, 2);
  t.is(invalid!.value.error.code, 'E_INPUT');
  t.deepEqual(invalid!.value.error.details.map((d: any) => d.path), ['[0].userId', '[0].action', '[0].timestamp']);
  t.deepEqual([first!.code, first!.value.accepted, first!.value.pending], [0, 1, 1]);
  t.is(hook!.value, '');
  t.deepEqual([again!.value.accepted, again!.value.duplicates], [0, 1]);
  // batchSize 2 from flowforge.config.ts: 1 pending + 3 piped = two full batches.
  t.deepEqual(piped!.value, { accepted: 3, pending: 0, flushed: [[2, 'size'], [2, 'size']] });
  t.deepEqual(status!.value, { pending: 0, batches: { count: 2, entries: 4 }, recovery: { failed: 0, abandoned: 0, errors: 0 } });
  t.deepEqual(force!.value, []);
  const report = results.snapshot[9] as { value: string };
  t.is(report.value, 'user,entries,commits,trackedMs,trackedHours\nTest User,1,1,0,0.00\nana,3,0,5400000,1.50\n');
  t.is(repo.git(['rev-list', '--count', 'HEAD']), '1');
});

test('report, sync, migrate, --format=prometheus, hooks, serve and imports run from the ESM build', (t) => {
  const { call } = setup(t);
  t.is(call('snapshot', ['aggregate', '--source=git-commit']).code, 0);
  const prom = call('snapshot', ['aggregate-status', '--format=prometheus']);
  t.is(prom.code, 0);
  t.regex(prom.stdout, /^flowforge_aggregation_pending_entries 1$/m);
  t.is(startedFrom(prom), `provider-bridge: started from the startup snapshot ${BLOB} (this action runs from the ESM build)`);
  const report = call('snapshot', ['aggregate-report', '--format=json']);
  t.is(report.code, 0);
  t.is(report.json.action, 'aggregate-report');
  t.is(startedFrom(call('snapshot', ['aggregate-status'])), `provider-bridge: started from the startup snapshot ${BLOB}`);
  // serve and hooks never go through the snapshot: the bin execs the ESM build.
  t.is(startedFrom(call('snapshot', ['hooks', '--help'])), 'provider-bridge: started from the ESM build (dist/src/bridge/cli.js)');
  t.is(startedFrom(call('snapshot', ['--quiet', 'serve', '--help'])), 'provider-bridge: started from the ESM build (dist/src/bridge/cli.js)');
  // Imports run for seconds; from the ESM build their peak memory is lower.
  const imported = call('snapshot', ['aggregate', '--input=-'], JSON.stringify({ entryId: 'i-1', userId: 'ana', action: 'build', timestamp: 1_780_000_000_000 }));
  t.is(imported.json.result.accepted, 1);
  t.is(startedFrom(imported), 'provider-bridge: started from the ESM build (dist/src/bridge/cli.js)');
});

/** A package folder whose bin and dist/src are this package's, with `blob` as its snapshot. */
function fakePackage(repo: GitRepo, blob: Buffer | undefined): string {
  const root = path.join(repo.root, 'pkg');
  fs.mkdirSync(path.join(root, 'src/bridge'), { recursive: true });
  fs.mkdirSync(path.join(root, 'dist/snapshot'), { recursive: true });
  fs.copyFileSync(BIN, path.join(root, 'src/bridge/provider-bridge.sh'));
  fs.chmodSync(path.join(root, 'src/bridge/provider-bridge.sh'), 0o755);
  fs.symlinkSync(path.join(PROJECT_ROOT, 'dist/src'), path.join(root, 'dist/src'));
  if (blob) fs.writeFileSync(path.join(root, 'dist/snapshot/provider-bridge.blob'), blob);
  return path.join(root, 'src/bridge/provider-bridge.sh');
}

test('the bin runs the ESM build when node refuses the snapshot (exit 14), with the same arguments', (t) => {
  const repo = withGitRepo(t);
  // A snapshot written by "another node": node checks the version in the header and exits 14.
  const other = fs.readFileSync(BLOB);
  const at = other.indexOf(Buffer.from(process.version.slice(1)));
  t.true(at > 0 && at < 64, 'the node version is in the blob header');
  other.write('9'.repeat(process.version.length - 1), at, 'latin1');
  const bin = fakePackage(repo, other);
  const env = { ...repo.env, FLOWFORGE_DATA_PATH: path.join(repo.root, 'data') };
  const entry = JSON.stringify({ entryId: 'e-1', userId: 'ana', action: 'build', timestamp: 1_780_000_000_000 });
  const r = run('snapshot', ['aggregate', `--entry=${entry}`], { cwd: repo.dir, env, bin });
  t.is(r.code, 0);
  t.is(r.json.result.accepted, 1);
  t.regex(r.stderr, /Failed to load the startup snapshot/);
  t.is(startedFrom(r), 'provider-bridge: started from the ESM build (dist/src/bridge/cli.js)');
  // A usage error keeps its own exit code (no second run).
  const usage = run('snapshot', ['nope'], { cwd: repo.dir, env, bin });
  t.is(usage.code, 2);
  t.is(usage.stderr.match(/Failed to load the startup snapshot/g)?.length, 1);
});

test('a snapshot copied to another folder runs the ESM build (it holds the paths of the folder it was built in)', (t) => {
  const repo = withGitRepo(t);
  const bin = fakePackage(repo, fs.readFileSync(BLOB));
  const r = run('snapshot', ['aggregate-status'], { cwd: repo.dir, env: { ...repo.env, FLOWFORGE_DATA_PATH: path.join(repo.root, 'data') }, bin });
  t.is(r.code, 0);
  t.is(r.json.result.pending, 0);
  t.regex(startedFrom(r), /^provider-bridge: started from the startup snapshot .*pkg\/dist\/snapshot\/provider-bridge\.blob \(the snapshot was built for another folder; running the ESM build\)$/);
});

test('FLOWFORGE_NO_SNAPSHOT (other than 0) and NODE_OPTIONS make the bin use the ESM build, without a failed snapshot start', (t) => {
  for (const [extra, entry] of [
    [{ FLOWFORGE_NO_SNAPSHOT: '1' }, 'ESM'],
    [{ FLOWFORGE_NO_SNAPSHOT: '0' }, 'snapshot'],
    // V8 flags in NODE_OPTIONS make node refuse the snapshot; --import preloads would not run in it.
    [{ NODE_OPTIONS: '--max-old-space-size=512' }, 'ESM'],
  ] as const) {
    const r = run('snapshot', ['--version'], { cwd: PROJECT_ROOT, env: { ...process.env, ...extra } });
    t.is(r.code, 0);
    t.is(startedFrom(r), entry === 'ESM' ? 'provider-bridge: started from the ESM build (dist/src/bridge/cli.js)' : `provider-bridge: started from the startup snapshot ${BLOB}`);
    t.false(r.stderr.includes('Failed to load the startup snapshot'));
  }
});

/** A node stand-in for the launcher (FLOWFORGE_NODE): logs how it was started; from the "snapshot" it exits FAKE_STATUS. */
function fakeNode(repo: GitRepo): { node: string; log: () => string[] } {
  const log = path.join(repo.root, 'fake-node.log');
  const node = path.join(repo.root, 'fake-node.sh');
  fs.writeFileSync(
    node,
    [
      '#!/bin/sh',
      `log=${JSON.stringify(log)}`,
      'if [ "$1" = --snapshot-blob ]; then',
      '  echo snapshot >> "$log"',
      '  if [ "$FAKE_STATUS" = wait ]; then',
      `    trap 'echo term >> "$log"; exit 143' TERM`,
      // Bounded, so a run in which the signal never arrives leaves nothing behind.
      '    i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done',
      '  fi',
      '  exit "$FAKE_STATUS"',
      'fi',
      'echo esm >> "$log"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { node, log: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []) };
}

test('the launcher runs the ESM build again only when node refused the snapshot (exit 14), never after a crash or a signal', (t) => {
  const repo = withGitRepo(t);
  const bin = fakePackage(repo, Buffer.from('a snapshot'));
  const { node, log } = fakeNode(repo);
  for (const status of [0, 1, 2, 14, 132, 133, 134, 137, 139, 143]) {
    fs.rmSync(path.join(repo.root, 'fake-node.log'), { force: true });
    const r = spawnSync(bin, ['aggregate', '--source=git-checkout'], { cwd: repo.dir, env: { ...repo.env, FLOWFORGE_NODE: node, FAKE_STATUS: String(status) }, encoding: 'utf8' });
    const rerun = status === 14;
    t.deepEqual(log(), rerun ? ['snapshot', 'esm'] : ['snapshot'], `status ${status}`);
    t.is(r.status, rerun ? 0 : status, `status ${status}`);
    // Node explains exit 14 itself; after a crash the launcher says how to replace a damaged snapshot.
    t.is(/node crashed \(exit \d+\)\. If every call does, the startup snapshot .* may be damaged/.test(r.stderr), [132, 133, 134, 139].includes(status), `status ${status}`);
  }
});

test('TERM sent to the launcher reaches node, and the call is not run again', async (t) => {
  const repo = withGitRepo(t);
  const bin = fakePackage(repo, Buffer.from('a snapshot'));
  const { node, log } = fakeNode(repo);
  const child = spawn(bin, ['aggregate', '--source=git-checkout'], { cwd: repo.dir, env: { ...repo.env, FLOWFORGE_NODE: node, FAKE_STATUS: 'wait' }, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 200 && log().length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  child.kill('SIGTERM');
  t.is(await exited, 143);
  t.deepEqual(log(), ['snapshot', 'term']);
});

test('hooks install writes hook lines that run the launcher with the recorded node; a commit is stored once', (t) => {
  const repo = withGitRepo(t);
  repo.commit('first', { 'a.txt': 'a\n' });
  // The hook stores into the repository's own data root, <repo>/.flowforge.
  const env = repo.env;
  t.is(run('esm', ['hooks', 'install', `--repo=${repo.dir}`], { cwd: repo.dir, env }).code, 0);
  const hooksDir = path.resolve(repo.dir, repo.git(['rev-parse', '--git-path', 'hooks']));
  const line = fs.readFileSync(path.join(hooksDir, 'post-commit'), 'utf8').split('\n').find((l) => l.startsWith('FLOWFORGE_NODE='));
  t.is(line, `FLOWFORGE_NODE='${process.execPath}' /bin/sh '${BIN}' aggregate --source=git-commit --hook >/dev/null 2>&1 || true # flowforge-aggregation`);
  const sha = repo.commit('second', { 'b.txt': 'b\n' });
  const report = run('snapshot', ['aggregate-report', '--by=action', '--format=csv'], { cwd: repo.dir, env });
  t.is(report.stdout, 'action,entries,commits,trackedMs,trackedHours\ncommit,1,1,0,0.00\n');
  t.true(sha.length === 40);
});

test('NODE_EXTRA_CA_CERTS is dropped for actions that open no TLS connection, kept for aggregate-health (onAlert may call a web hook)', (t) => {
  const repo = withGitRepo(t);
  const seen = path.join(repo.root, 'seen.txt');
  // The config runs in the action's process, so it sees the environment node started with.
  fs.writeFileSync(path.join(repo.dir, 'flowforge.config.mjs'), `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(seen)}, JSON.stringify(process.env.NODE_EXTRA_CA_CERTS ?? null) + '\\n');\nexport default {};\n`);
  const env = { ...repo.env, FLOWFORGE_DATA_PATH: path.join(repo.root, 'data'), NODE_EXTRA_CA_CERTS: '/etc/no-such-ca.pem' };
  for (const args of [['aggregate-status'], ['aggregate-health']]) t.is(run('snapshot', args, { cwd: repo.dir, env }).code, 0);
  // The hook line empties it for our command only; the next command of the hook still has it.
  const hook = spawnSync('sh', ['-c', `${hookCommand('post-commit', process.execPath, CLI)}\necho "$NODE_EXTRA_CA_CERTS"`], { cwd: repo.dir, env, encoding: 'utf8' });
  t.is(hook.stdout, '/etc/no-such-ca.pem\n');
  t.deepEqual(fs.readFileSync(seen, 'utf8').trim().split('\n').map((l) => JSON.parse(l)), [null, '/etc/no-such-ca.pem', '']);
});

test('an import (--input) runs with 8 thread-pool threads and 8 MB semi-spaces unless the caller set them; other calls keep the defaults', (t) => {
  const repo = withGitRepo(t);
  const seen = path.join(repo.root, 'seen.txt');
  fs.writeFileSync(
    path.join(repo.dir, 'flowforge.config.mjs'),
    `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(seen)}, JSON.stringify([process.env.UV_THREADPOOL_SIZE ?? null, process.execArgv.filter((a) => a.includes('semi-space'))]) + '\\n');\nexport default {};\n`,
  );
  const input = path.join(repo.root, 'in.ndjson');
  fs.writeFileSync(input, `${JSON.stringify({ userId: 'ana', action: 'review', timestamp: 1_700_000_000_000 })}\n`);
  const env: NodeJS.ProcessEnv = { ...repo.env, FLOWFORGE_DATA_PATH: path.join(repo.root, 'data') };
  delete env.UV_THREADPOOL_SIZE;
  t.is(run('snapshot', ['aggregate', `--input=${input}`], { cwd: repo.dir, env }).code, 0);
  t.is(run('snapshot', ['aggregate-status'], { cwd: repo.dir, env }).code, 0);
  t.is(run('snapshot', ['aggregate', '--input', input], { cwd: repo.dir, env: { ...env, UV_THREADPOOL_SIZE: '2' } }).code, 0);
  t.is(run('snapshot', ['aggregate', `--input=${input}`], { cwd: repo.dir, env: { ...env, NODE_OPTIONS: '--max-semi-space-size=16' } }).code, 0);
  t.deepEqual(
    fs.readFileSync(seen, 'utf8').trim().split('\n').map((l) => JSON.parse(l)),
    [
      ['8', ['--max-semi-space-size=8']],
      [null, []],
      ['2', ['--max-semi-space-size=8']],
      ['8', []],
    ],
  );
});
