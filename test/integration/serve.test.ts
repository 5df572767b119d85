import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/store.js';

test('a real serve process stopped by SIGTERM finishes, flushes what is pending and exits 0', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ maxAge: 3_600_000, recovery: { scheduleInterval: 200, healthCheckInterval: 300 } }));
  const now = Date.now() - 1000;
  const add = runCli(['aggregate', `--entry=${JSON.stringify([1, 2, 3].map((i) => ({ entryId: `s-${i}`, userId: 'ana', action: 'work', timestamp: now })))}`], { cwd: dir });
  t.like(add.json.result, { accepted: 3, pending: 3 });
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const log = path.join(dir, '.flowforge/logs/aggregation.log');
  // Wait until the recovery pass has run twice: at start and once on its schedule.
  const passes = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('"schedule":"recovery-pass"').length - 1 : 0);
  for (let i = 0; i < 200 && passes() < 2; i++) await new Promise((r) => setTimeout(r, 50));
  const stoppedAt = Date.now();
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.is(code, 0);
  t.true(Date.now() - stoppedAt < 5000, 'exits within seconds');
  const out = JSON.parse(stdout);
  t.is(out.ok, true);
  t.is(out.result.stoppedBy, 'SIGTERM');
  t.deepEqual(out.result.finalFlush, { flushed: 1, pending: 0 });
  t.true(out.result.runs['recovery-pass'] >= 2);
  const status = runCli(['aggregate-status'], { cwd: dir });
  t.like(status.json.result, { pending: 0, batches: { count: 1, entries: 3 } });
});

test('aggregate-recover with a non-empty recovery folder does its pass and exits promptly', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const rec = path.join(dir, '.flowforge/aggregated/recovery');
  fs.mkdirSync(rec, { recursive: true });
  fs.writeFileSync(path.join(rec, 'batch_1700000000000_00000001.failed.json'), 'not json');
  const started = Date.now();
  const r = runCli(['aggregate-recover'], { cwd: dir });
  t.is(r.code, 0);
  t.like(r.json.result, { processed: 0, quarantined: 1 });
  t.true(Date.now() - started < 5000);
});
