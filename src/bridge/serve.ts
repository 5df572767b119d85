/**
 * `provider-bridge serve`: the long-lived host (SPEC §7). Runs every schedule the registered
 * plugins want with node-schedule until SIGINT/SIGTERM, then finishes the current run, flushes
 * what is pending, cancels every job and returns (the process then exits 0 on its own: no timer
 * is left behind).
 *
 * Each schedule is a one-off node-schedule job at `now + everyMs` (to the second), re-armed only after its run
 * finished, and all runs go through one queue: runs never overlap, and a slow run delays the
 * next instead of piling up. One run of every schedule happens at start.
 */
import * as v from 'valibot';
import type { HandlerContext } from '../core/context.js';
import type { HandlerDefinition, ScheduleBinding } from '../core/handler.js';
import type { Registry } from './registry.js';

const ServeInput = v.object({});

/** What `serve` reports when it stops: runs per schedule, failures, the signal, the final flush. */
export interface ServeResult {
  stoppedBy: string;
  uptimeMs: number;
  runs: Record<string, number>;
  failures: Record<string, number>;
  finalFlush: { flushed: number; pending: number } | { error: string };
}

/** Options for tests: which signals stop it (default SIGINT, SIGTERM) and an abort hook. */
export interface ServeOptions {
  signals?: NodeJS.Signals[];
  /** Resolves when the host should stop (in addition to the signals). */
  stopWhen?: Promise<string>;
  /** Called once the start-up runs have finished. */
  onReady?: () => void;
}

/** Runs the schedules until stopped. Errors of single runs are logged and counted, never fatal. */
export async function serveSchedules(ctx: HandlerContext, bindings: ScheduleBinding[], options: ServeOptions = {}): Promise<ServeResult> {
  const schedule = (await import('node-schedule')).default;
  const startedAt = ctx.now();
  const runs: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const jobs = new Map<string, import('node-schedule').Job>();
  let stopping = false;
  let queue: Promise<void> = Promise.resolve();

  const runOne = (binding: ScheduleBinding): Promise<void> => {
    queue = queue.then(async () => {
      if (stopping) return;
      const started = performance.now();
      try {
        await binding.run(ctx, { startedAt, runs: Object.values(runs).reduce((a, b) => a + b, 0) });
        runs[binding.name] = (runs[binding.name] ?? 0) + 1;
        ctx.log.info('scheduled run finished', { schedule: binding.name, durationMs: Math.round(performance.now() - started) });
      } catch (error) {
        failures[binding.name] = (failures[binding.name] ?? 0) + 1;
        ctx.log.error('scheduled run failed', { schedule: binding.name, error: (error as Error).message });
      }
    });
    return queue;
  };

  const arm = (binding: ScheduleBinding): void => {
    if (stopping) return;
    // node-schedule drops the milliseconds of a Date spec (and returns null for a time it then
    // considers past), so due times are rounded up to the next whole second.
    const at = new Date(Math.ceil((Date.now() + binding.everyMs(ctx.config)) / 1000) * 1000);
    const fire = () => {
      jobs.delete(binding.name);
      void runOne(binding).then(() => arm(binding));
    };
    const job = schedule.scheduleJob(at, fire);
    if (job) jobs.set(binding.name, job);
    else fire();
  };

  let stop!: (reason: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const onSignal = (signal: NodeJS.Signals) => stop(signal);
  // `on`, not `once`: signal-exit (loaded by write-file-atomic) re-raises a signal when it finds itself the
  // only listener, and a `once` listener is already removed when the signal is dispatched.
  for (const s of signals) process.on(s, onSignal);
  void options.stopWhen?.then(stop);

  ctx.log.info('serve started', { pid: process.pid, schedules: bindings.map((b) => ({ name: b.name, everyMs: b.everyMs(ctx.config) })) });
  for (const binding of bindings) void runOne(binding);
  await queue;
  for (const binding of bindings) arm(binding);
  options.onReady?.();

  const reason = await stopped;
  stopping = true;
  for (const job of jobs.values()) job.cancel();
  jobs.clear();
  for (const s of signals) process.removeListener(s, onSignal);
  await queue; // the run in progress finishes
  let finalFlush: ServeResult['finalFlush'];
  try {
    const { withStore } = await import('../../plugins/aggregation/aggregator.js');
    finalFlush = await withStore(ctx, async (store) => {
      const outcome = await store.flush({ manual: true });
      return { flushed: outcome.flushed.length, pending: store.pendingSummary().pending };
    });
  } catch (error) {
    finalFlush = { error: (error as Error).message };
    ctx.log.error('final flush failed', { error: (error as Error).message });
  }
  ctx.log.info('serve stopped', { reason, runs, failures });
  return { stoppedBy: reason, uptimeMs: ctx.now() - startedAt, runs, failures, finalFlush };
}

/** The `serve` action, bound to the registry whose plugins' schedules it runs. */
export function createServeAction(registry: Registry): HandlerDefinition<typeof ServeInput, ServeResult> {
  return {
    name: 'serve',
    summary: 'stay alive and run recovery, health checks, age flushes until SIGINT/SIGTERM',
    help: `Usage: provider-bridge serve

Keeps the host alive and runs, with node-schedule: the recovery pass every
recovery.scheduleInterval, the health check every recovery.healthCheckInterval, the
age-trigger check every maxAge/2 (1–30 s), one of each at start. Runs never overlap.
SIGINT or SIGTERM finishes the current run, flushes everything pending, and exits 0.
Logs go to <data root>/logs/aggregation.log; the result is printed when it stops.`,
    options: {},
    input: ServeInput,
    run: (_input, ctx) => serveSchedules(ctx, registry.plugins().flatMap((p) => p.schedules ?? [])),
    formatText: (r) => `stopped by ${r.stoppedBy} after ${Math.round(r.uptimeMs / 1000)} s; runs ${JSON.stringify(r.runs)}; final flush ${JSON.stringify(r.finalFlush)}`,
  };
}
