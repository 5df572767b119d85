import test from 'ava';
import { serveSchedules } from '../../src/bridge/serve.js';
import type { ScheduleBinding } from '../../src/core/handler.js';
import { withTempStore } from '../helpers/store.js';

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
