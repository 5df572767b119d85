import test from 'ava';
import type { Registry } from '../../src/bridge/registry.js';
import { createServeAction, dueAt, serveSchedules } from '../../src/bridge/serve.js';
import { IoError } from '../../src/core/errors.js';
import type { ScheduleBinding } from '../../src/core/handler.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

test('runs never overlap, each schedule runs at start and again after its interval (to the second), stop cancels every job', async (t) => {
  const s = withTempStore(t);
  let active = 0;
  let maxActive = 0;
  const log: string[] = [];
  const slow = (name: string, everyMs: number, workMs: number): ScheduleBinding => ({
    name,
    everyMs: () => everyMs,
    async run() {
      active++;
      maxActive = Math.max(maxActive, active);
      log.push(name);
      await new Promise((r) => setTimeout(r, workMs));
      active--;
    },
  });
  let stop!: (reason: string) => void;
  const stopWhen = new Promise<string>((r) => (stop = r));
  const ready = new Promise<void>((resolve) => {
    void serveSchedules(s.ctx, [slow('a', 20, 30), slow('b', 20, 30)], { signals: [], stopWhen, onReady: resolve }).then((result) => results.push(result));
  });
  const results: Awaited<ReturnType<typeof serveSchedules>>[] = [];
  await ready;
  t.deepEqual(log, ['a', 'b'], 'one run of each at start, in order');
  await new Promise((r) => setTimeout(r, 2300));
  stop('test');
  while (results.length === 0) await new Promise((r) => setTimeout(r, 10));
  const result = results[0]!;
  t.is(maxActive, 1);
  t.is(result.stoppedBy, 'test');
  t.true(result.runs.a! >= 2, `a ran ${result.runs.a} times`);
  t.true(result.runs.b! >= 2, `b ran ${result.runs.b} times`);
  const total = log.length;
  await new Promise((r) => setTimeout(r, 100));
  t.is(log.length, total, 'nothing runs after stop');
  t.deepEqual(result.finalFlush, { flushed: 0, pending: 0 });
});

test('a failing run is counted and logged, and the schedule keeps going', async (t) => {
  const s = withTempStore(t);
  let calls = 0;
  let stop!: (reason: string) => void;
  const stopWhen = new Promise<string>((r) => (stop = r));
  const done = serveSchedules(
    s.ctx,
    [
      {
        name: 'boom',
        everyMs: () => 10,
        async run() {
          calls++;
          throw new Error('disk on fire');
        },
      },
    ],
    { signals: [], stopWhen },
  );
  await new Promise((r) => setTimeout(r, 1500));
  stop('test');
  const result = await done;
  t.true(calls >= 2);
  t.is(result.failures.boom, calls);
  t.is(result.runs.boom, undefined);
  t.true(s.logs.lines.some((l) => l.msg === 'scheduled run failed' && l.fields?.error === 'disk on fire'));
});

test('a stop asked for while serve is still starting: no schedule runs, and the final flush still stores what is pending', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const { aggregate } = await import('../../plugins/aggregation/handlers/aggregate.js');
  t.like(await aggregate.run({ entry: [JSON.stringify(rawEntry(1, s.clock.now() - 1))], source: [] }, s.ctx), { accepted: 1, pending: 1 });
  let ran = 0;
  const result = await serveSchedules(s.ctx, [{ name: 'x', everyMs: () => 10, run: async () => void ran++ }], { signals: [], stopWhen: Promise.resolve('early') });
  t.is(result.stoppedBy, 'early');
  t.is(ran, 0);
  t.deepEqual(result.runs, {});
  t.deepEqual(result.finalFlush, { flushed: 1, pending: 0 });
});

test('the serve action stops on SIGHUP like SIGTERM (closing its terminal used to kill it unflushed); a final flush that fails is exit 1', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  const { aggregate } = await import('../../plugins/aggregation/handlers/aggregate.js');
  await aggregate.run({ entry: [JSON.stringify(rawEntry(1, s.clock.now() - 1))], source: [] }, s.ctx);
  const action = createServeAction({ plugins: () => [] } as unknown as Registry);
  const served = action.run({}, s.ctx);
  await new Promise((r) => setTimeout(r, 300));
  process.kill(process.pid, 'SIGHUP');
  const result = await served;
  t.is(result.stoppedBy, 'SIGHUP');
  t.deepEqual(result.finalFlush, { flushed: 1, pending: 0 });

  // The next one cannot write its final flush (metrics.json and batch files fail): exit 1, entries pending.
  await aggregate.run({ entry: [JSON.stringify(rawEntry(2, s.clock.now() - 1))], source: [] }, s.ctx);
  s.setFs(createFaultyFsPort((op) => (op === 'writeFileDurable' || op === 'writeFilesDurable' ? 'EIO' : undefined)));
  const failing = action.run({}, s.ctx);
  await new Promise((r) => setTimeout(r, 300));
  process.kill(process.pid, 'SIGTERM');
  const error = await t.throwsAsync(failing, { instanceOf: IoError });
  t.regex(error!.message, /^serve stopped \(SIGTERM\), but its final flush failed: .*EIO.*; the pending entries are safe in the journal, and the next aggregate, aggregate-force or serve flushes them\.$/);
  t.is(error!.exitCode, 1);
  s.setFs(createFaultyFsPort(() => undefined));
  const { aggregateStatus } = await import('../../plugins/aggregation/handlers/aggregate-status.js');
  t.like(await aggregateStatus.run({}, s.ctx), { batches: { count: 1, entries: 1 } });
});

test('dueAt: the whole second nearest to now + interval, never the current second (a 1,000 ms interval ran every 2 s)', (t) => {
  const k = 1_790_000_000_000; // a whole second
  t.is(dueAt(k + 5, 1_000), k + 1_000);
  t.is(dueAt(k + 600, 1_000), k + 2_000);
  t.is(dueAt(k + 5, 20), k + 1_000);
  t.is(dueAt(k + 999, 0), k + 1_000);
  t.is(dueAt(k, 60_000), k + 60_000);
});
