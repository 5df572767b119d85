import test from 'ava';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { runHost } from '../../src/bridge/host.js';
import { messages } from '../../src/bridge/messages.js';
import { serveSchedules, type ServeOptions, type ServeResult } from '../../src/bridge/serve.js';
import { FlowForgeError } from '../../src/core/errors.js';
import type { ScheduleBinding } from '../../src/core/handler.js';
import { tempDir, withTempStore, type TempStore } from '../helpers/store.js';

const TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Starts serve with a metrics endpoint on a free port; resolves once it listens. */
async function startServe(s: TempStore, bindings: ScheduleBinding[], metrics: Omit<NonNullable<ServeOptions['metrics']>, 'port' | 'onListening'>) {
  let stop!: (reason: string) => void;
  const stopWhen = new Promise<string>((r) => (stop = r));
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  let listening!: (url: string) => void;
  const url = new Promise<string>((r) => (listening = r));
  const done: Promise<ServeResult> = serveSchedules(s.ctx, bindings, { signals: [], stopWhen, onReady: ready, metrics: { port: 0, onListening: listening, ...metrics } });
  return { url: await url, ready: readyP, stop, done };
}

test('GET /metrics answers with the collected exposition and its content type; other paths 404, other methods 405; stop closes the port', async (t) => {
  const s = withTempStore(t);
  let reads = 0;
  const serve = await startServe(s, [], { collect: async () => ({ contentType: TYPE, body: `reads ${++reads}\n` }) });
  await serve.ready;
  t.regex(serve.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const ok = await fetch(serve.url);
  t.is(ok.status, 200);
  t.is(ok.headers.get('content-type'), TYPE);
  t.is(await ok.text(), 'reads 1\n');
  const head = await fetch(serve.url, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
  const other = await fetch(serve.url.replace('/metrics', '/'));
  t.is(other.status, 404);
  t.is(await other.text(), messages.metricsNotFound);
  t.is((await fetch(`${serve.url}?name[]=x`)).status, 200, 'a query string is ignored');
  const post = await fetch(serve.url, { method: 'POST', body: 'x' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is(reads, 3, 'GET (twice) and HEAD read the status; 404 and 405 do not');
  serve.stop('test');
  const result = await serve.done;
  t.deepEqual(result.metrics, { url: serve.url, fresh: 3, stale: 0, unavailable: 0 });
  await t.throwsAsync(fetch(serve.url), undefined, 'nothing listens after stop');
});

test('a scrape never runs beside a scheduled run: it waits, then serves 503 before the first read and the last read after it', async (t) => {
  const s = withTempStore(t);
  let active = 0;
  let release: (() => void) | undefined;
  const gated: ScheduleBinding = {
    name: 'gated',
    // 1 s, not 1 ms: the fresh read below must land between two runs even on a loaded machine
    // (with 1 ms the next run could start first, and the test then hung on its gate).
    everyMs: () => 1000,
    async run() {
      active++;
      await new Promise<void>((r) => (release = r));
      active--;
    },
  };
  const activeAtRead: number[] = [];
  const serve = await startServe(s, [gated], {
    waitMs: 100,
    collect: async () => {
      activeAtRead.push(active);
      return { contentType: TYPE, body: `read ${activeAtRead.length}\n` };
    },
  });
  const waitFor = async (what: () => boolean) => {
    for (let i = 0; i < 500 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
    t.true(what());
  };
  await waitFor(() => active === 1); // the start-up run is in progress
  const first = await fetch(serve.url);
  t.is(first.status, 503);
  t.is(await first.text(), messages.metricsUnavailable('the store stayed busy for 100 ms'));
  release!();
  await serve.ready;
  await waitFor(() => activeAtRead.length === 1); // the queued read ran once the run finished
  const fresh = await fetch(serve.url);
  t.is(await fresh.text(), 'read 2\n');
  await waitFor(() => active === 1); // the next scheduled run (within two seconds)
  const stale = await fetch(serve.url);
  t.is(stale.status, 200);
  t.is(await stale.text(), 'read 2\n', 'the last status read');
  serve.stop('test');
  // Release whatever run holds the gate until serve has stopped, so a failed assertion above
  // never leaves the worker hanging on an open port.
  const releaser = setInterval(() => release?.(), 10);
  const result = await serve.done.finally(() => clearInterval(releaser));
  t.deepEqual(activeAtRead, [0, 0], 'no read beside a run; the read queued at stop did not run');
  t.deepEqual(result.metrics, { url: serve.url, fresh: 1, stale: 1, unavailable: 1 });
  t.true(s.logs.lines.some((l) => l.msg === 'metrics scrape could not read the status' && l.fields?.error === 'serve is stopping'));
});

test('a metrics port already in use: IoError (exit 1) naming it, and nothing ran or stayed registered', async (t) => {
  const s = withTempStore(t);
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  let runs = 0;
  const listeners = process.listenerCount('SIGTERM');
  const error = await t.throwsAsync(
    serveSchedules(s.ctx, [{ name: 'count', everyMs: () => 1000, run: async () => void runs++ }], { metrics: { port, collect: async () => ({ contentType: TYPE, body: '' }) } }),
  );
  t.true(error instanceof FlowForgeError);
  t.is((error as FlowForgeError).code, 'E_IO');
  t.is((error as FlowForgeError).exitCode, 1);
  t.is(error!.message, messages.metricsListenFailed('127.0.0.1', port, 'EADDRINUSE'));
  t.is(runs, 0);
  t.is(process.listenerCount('SIGTERM'), listeners);
});

test('--metrics-port must be 0–65535: anything else is exit 2 before anything starts', async (t) => {
  const cwd = tempDir(t);
  for (const bad of ['abc', '65536', '-1', '1.5', '']) {
    let stdout = '';
    const code = await runHost(['serve', `--metrics-port=${bad}`, `--data-path=${cwd}/data`], {
      stdout: { write: (x: string) => (stdout += x) },
      stderr: { write: () => true },
      stdin: Readable.from([]),
      env: {},
      cwd,
    });
    t.is(code, 2, bad);
    const doc = JSON.parse(stdout);
    t.is(doc.error.code, 'E_USAGE');
    t.deepEqual(doc.error.details.map((d: { path: string; message: string }) => `${d.path}: ${d.message}`), [`--metrics-port: ${messages.badMetricsPort}`], bad);
  }
});
