import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CLI, runCli } from '../helpers/cli.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { tempDir } from '../helpers/store.js';

const P = 'flowforge_aggregation_';

/** A port nothing listens on right now (the system picks it; closed again at once). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** A project with 2 threshold flushes, 1 manual flush and 1 entry pending. */
function seededProject(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 4, flushThreshold: 0.5, maxAge: 3_600_000 }));
  const now = Date.now() - 1000;
  const add = (...ids: number[]) => runCli(['aggregate', `--entry=${JSON.stringify(ids.map((i) => ({ entryId: `m-${i}`, userId: 'ana', action: 'work', timestamp: now })))}`], { cwd: dir });
  t.like(add(1, 2).json.result, { flushed: [{ trigger: 'threshold' }] });
  t.like(add(3, 4).json.result, { flushed: [{ trigger: 'threshold' }] });
  t.like(add(5).json.result, { pending: 1 });
  t.like(runCli(['aggregate-force'], { cwd: dir }).json.result, { flushed: [{ trigger: 'manual', entryCount: 1 }] });
  t.like(add(6).json.result, { pending: 1 });
  return dir;
}

test('a real serve --metrics-port process: scraped over HTTP with the store\'s numbers, then SIGTERM exits 0 and frees the port', async (t) => {
  const dir = seededProject(t);
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', `--metrics-port=${port}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}/metrics`;
  for (let i = 0; i < 200 && !stderr.includes(url); i++) await new Promise((r) => setTimeout(r, 25));
  t.is(stderr, `provider-bridge serve: metrics at ${url}\n`);

  const response = await fetch(url);
  t.is(response.status, 200);
  t.is(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const families = parseExposition(await response.text());
  const value = (name: string, labels: Record<string, string> = {}) => sampleValue(families, P + name, labels);
  t.is(value('pending_entries'), 1);
  t.is(value('batches'), 3);
  t.is(value('batch_entries'), 5);
  t.is(value('flushes_total', { trigger: 'threshold' }), 2);
  t.is(value('flushes_total', { trigger: 'manual' }), 1);
  t.is(value('flushes_total', { trigger: 'age' }), 0);
  t.is(value('flush_duration_seconds_count'), 3);
  t.is(value('flush_duration_seconds_bucket', { le: '+Inf' }), 3);
  const saved = JSON.parse(fs.readFileSync(path.join(dir, '.flowforge/aggregated/metrics.json'), 'utf8'));
  t.is(value('flush_duration_seconds_sum'), saved.totalFlushTimeMs / 1000);
  t.is(value('accepted_entries_total'), 6);
  t.is(value('health_status', { status: 'healthy' }), 1);
  t.is(value('failed_batches'), 0);
  t.is((await fetch(`http://127.0.0.1:${port}/`)).status, 404);

  child.kill('SIGTERM');
  t.is(await exited, 0);
  const out = JSON.parse(stdout);
  t.is(out.result.stoppedBy, 'SIGTERM');
  t.deepEqual(out.result.finalFlush, { flushed: 1, pending: 0 });
  t.like(out.result.metrics, { url, fresh: 1, stale: 0, unavailable: 0 });
  await t.throwsAsync(fetch(url), undefined, 'the port is closed with the process');
});

test('serve --metrics-port on a taken port exits 1 naming the port, before anything ran or was written', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  const { port } = blocker.address() as net.AddressInfo;
  const r = runCli(['serve', `--metrics-port=${port}`], { cwd: dir });
  t.is(r.code, 1);
  t.is(r.json.error.code, 'E_IO');
  t.is(r.json.error.message, `Cannot serve metrics on 127.0.0.1:${port}: the port is already in use (EADDRINUSE). Nothing was started; choose another --metrics-port, or 0 for any free port.`);
  t.false(fs.existsSync(path.join(dir, '.flowforge')), 'nothing ran, nothing was written');
});
