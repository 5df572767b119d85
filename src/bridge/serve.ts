/**
 * `provider-bridge serve`: the long-lived host (SPEC §7). Runs every schedule the registered
 * plugins want with node-schedule until SIGINT, SIGTERM or SIGHUP (caught from the start, so
 * one during start-up stops it the same way), then finishes the current run, flushes what is
 * pending, cancels every job and returns (the process then exits 0 on its own: no timer is left
 * behind; the action exits 1 when that final flush failed).
 *
 * Each schedule is a one-off node-schedule job at `now + everyMs` (to the nearest second, never
 * the current one), re-armed only after its run
 * finished, and all runs go through one queue: runs never overlap, and a slow run delays the
 * next instead of piling up. One run of every schedule happens at start.
 *
 * With `--metrics-port=N`, `GET http://127.0.0.1:N/metrics` serves the store's status in the
 * Prometheus text format. A scrape reads the status through the same queue (never beside a
 * scheduled run), without flushing, waiting at most SCRAPE_WAIT_MS for the queue and the store
 * lock; when that is not enough it serves the last status it read (its
 * `flowforge_aggregation_status_timestamp_seconds` says when), or 503 before the first one.
 */
import * as v from 'valibot';
import type { HandlerContext } from '../core/context.js';
import { IoError } from '../core/errors.js';
import type { HandlerDefinition, ScheduleBinding } from '../core/handler.js';
import type { MetricsResponse, MetricsServer } from './metrics-server.js';
import { messages } from './messages.js';
import type { Registry } from './registry.js';

const ServeInput = v.object({
  'metrics-port': v.optional(v.pipe(v.string(), v.regex(/^\d{1,5}$/, messages.badMetricsPort), v.transform(Number), v.maxValue(65_535, messages.badMetricsPort))),
});

/**
 * How long a scrape waits for a fresh status (the run in progress, then the store lock held
 * by another process), milliseconds. Well under Prometheus's default 10 s scrape timeout.
 */
export const SCRAPE_WAIT_MS = 2_000;

/** What `serve` reports when it stops: runs per schedule, failures, the signal, the final flush. */
export interface ServeResult {
  stoppedBy: string;
  uptimeMs: number;
  runs: Record<string, number>;
  failures: Record<string, number>;
  finalFlush: { flushed: number; pending: number } | { error: string };
  /** With a metrics port: its URL and the scrapes answered by kind (fresh, stale, unavailable). */
  metrics?: { url: string; fresh: number; stale: number; unavailable: number };
}

/** The metrics endpoint of `serve`: where to listen and how to read the exposition. */
export interface ServeMetrics {
  /** TCP port on 127.0.0.1, 1–65535, or 0 for any free port. */
  port: number;
  /**
   * Reads the store's status and renders it (runs on the serve queue, so never beside a
   * scheduled run). Should give up on the store lock within about SCRAPE_WAIT_MS.
   */
  collect(ctx: HandlerContext): Promise<{ contentType: string; body: string }>;
  /** Called once listening, with the endpoint URL (port 0 resolved). */
  onListening?(url: string): void;
  /** How long a scrape waits for a fresh status, ms (default SCRAPE_WAIT_MS). */
  waitMs?: number;
}

/** Options for tests: which signals stop it (default SIGINT, SIGTERM) and an abort hook. */
export interface ServeOptions {
  signals?: NodeJS.Signals[];
  /** Resolves when the host should stop (in addition to the signals). */
  stopWhen?: Promise<string>;
  /** Called once the start-up runs have finished. */
  onReady?: () => void;
  /** Serve metrics over HTTP while running (bound before anything runs). */
  metrics?: ServeMetrics;
}

/**
 * Runs the schedules until stopped. Errors of single runs are logged and counted, never fatal.
 * Throws IoError (exit 1) before anything ran when the metrics port cannot be bound.
 */
export async function serveSchedules(ctx: HandlerContext, bindings: ScheduleBinding[], options: ServeOptions = {}): Promise<ServeResult> {
  // The stop signals are caught first, before anything is loaded or bound: a SIGTERM during
  // start-up used to kill the process (exit 143, no final flush, no result).
  let stop!: (reason: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  let stopRequested = false;
  const signals = options.signals ?? ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const requestStop = (reason: string) => {
    stopRequested = true;
    stop(reason);
  };
  const onSignal = (signal: NodeJS.Signals) => requestStop(signal);
  // `on`, not `once`: signal-exit (loaded by write-file-atomic) re-raises a signal when it finds itself the
  // only listener, and a `once` listener is already removed when the signal is dispatched.
  for (const s of signals) process.on(s, onSignal);
  void options.stopWhen?.then(requestStop);
  const schedule = (await import('node-schedule')).default;
  const startedAt = ctx.now();
  const runs: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const jobs = new Map<string, import('node-schedule').Job>();
  let stopping = false;
  let queue: Promise<void> = Promise.resolve();

  /** Runs `job` after everything queued before it; the queue itself never rejects. */
  const enqueue = <T>(job: () => Promise<T>): Promise<T> => {
    const run = queue.then(job);
    queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  let endpoint: Awaited<ReturnType<typeof startEndpoint>> | undefined;
  try {
    endpoint = options.metrics ? await startEndpoint(ctx, options.metrics, enqueue, () => stopping) : undefined;
  } catch (error) {
    for (const s of signals) process.removeListener(s, onSignal);
    throw error;
  }

  const runOne = (binding: ScheduleBinding): Promise<void> =>
    enqueue(async () => {
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

  const arm = (binding: ScheduleBinding): void => {
    if (stopping) return;
    const at = new Date(dueAt(Date.now(), binding.everyMs(ctx.config)));
    const fire = () => {
      jobs.delete(binding.name);
      void runOne(binding).then(() => arm(binding));
    };
    const job = schedule.scheduleJob(at, fire);
    if (job) jobs.set(binding.name, job);
    else fire();
  };

  ctx.log.info('serve started', { pid: process.pid, schedules: bindings.map((b) => ({ name: b.name, everyMs: b.everyMs(ctx.config) })) });
  if (!stopRequested) {
    for (const binding of bindings) void runOne(binding);
    await queue;
    for (const binding of bindings) arm(binding);
  }
  options.onReady?.();

  const reason = await stopped;
  stopping = true;
  for (const job of jobs.values()) job.cancel();
  jobs.clear();
  for (const s of signals) process.removeListener(s, onSignal);
  await endpoint?.server.close(); // no new scrapes; one already queued sees `stopping` and ends
  await queue; // the run in progress finishes
  let finalFlush: ServeResult['finalFlush'];
  try {
    const { withStore } = await import('../../plugins/aggregation/aggregator.js');
    finalFlush = await withStore(ctx, async (store) => {
      const outcome = await store.flush({ manual: true });
      // As aggregate-force: a batch parked in recovery/ or left in the journal is a failed flush.
      if (outcome.stuck) return { error: `${outcome.stuck}; the pending entries are safe in the journal, and the next aggregate, aggregate-force or serve flushes them` };
      if (outcome.failed.length > 0) return { error: `${outcome.failed.length} batch(es) could not be written (${outcome.failed[0]!.error}); their entries are safe in aggregated/recovery/ (run aggregate-recover)` };
      return { flushed: outcome.flushed.length, pending: store.pendingSummary().pending };
    });
  } catch (error) {
    finalFlush = { error: `${(error as Error).message}; the pending entries are safe in the journal, and the next aggregate, aggregate-force or serve flushes them` };
  }
  if ('error' in finalFlush) ctx.log.error('final flush failed', { error: finalFlush.error });
  ctx.log.info('serve stopped', { reason, runs, failures, metrics: endpoint?.counts });
  const result: ServeResult = { stoppedBy: reason, uptimeMs: ctx.now() - startedAt, runs, failures, finalFlush };
  if (endpoint) result.metrics = { url: endpoint.server.url, ...endpoint.counts };
  return result;
}

/**
 * When a schedule run `everyMs` after `now` (epoch ms) is due: a whole second, since
 * node-schedule drops the milliseconds of a Date spec (and returns null for a time it then
 * considers past) — the nearest one to `now + everyMs`, but at least the next second. Rounding
 * up instead made a 1,000 ms interval every 2 s: a run that ended a few ms after a whole second
 * was due again 2 s later.
 */
export function dueAt(now: number, everyMs: number): number {
  return Math.max(Math.round((now + everyMs) / 1000), Math.floor(now / 1000) + 1) * 1000;
}

/**
 * Binds the metrics endpoint and answers scrapes: one status read at a time goes through the
 * serve queue (scrapes arriving meanwhile share it); a scrape waits for it at most
 * SCRAPE_WAIT_MS, else gets the last exposition read, or 503 when there is none yet.
 */
async function startEndpoint(
  ctx: HandlerContext,
  metrics: ServeMetrics,
  enqueue: <T>(job: () => Promise<T>) => Promise<T>,
  isStopping: () => boolean,
): Promise<{ server: MetricsServer; counts: { fresh: number; stale: number; unavailable: number } }> {
  const counts = { fresh: 0, stale: 0, unavailable: 0 };
  const waitMs = metrics.waitMs ?? SCRAPE_WAIT_MS;
  let last: { contentType: string; body: string } | undefined;
  let reading: Promise<{ contentType: string; body: string }> | undefined;

  const respond = async (): Promise<MetricsResponse> => {
    if (!reading) {
      const read = enqueue(async () => {
        if (isStopping()) throw new Error('serve is stopping');
        return metrics.collect(ctx);
      });
      reading = read;
      read.then(
        (exposition) => (last = exposition),
        (error: unknown) => ctx.log.warn('metrics scrape could not read the status', { error: (error as Error).message }),
      ).finally(() => {
        if (reading === read) reading = undefined;
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      reading.then(
        (exposition) => ({ exposition }),
        (error: unknown) => ({ error: (error as Error).message }),
      ),
      new Promise<{ error: string }>((resolve) => (timer = setTimeout(() => resolve({ error: `the store stayed busy for ${waitMs} ms` }), waitMs))),
    ]);
    clearTimeout(timer);
    if ('exposition' in outcome) {
      counts.fresh++;
      return { status: 200, ...outcome.exposition };
    }
    if (last) {
      counts.stale++;
      return { status: 200, ...last };
    }
    counts.unavailable++;
    return { status: 503, contentType: 'text/plain; charset=utf-8', body: messages.metricsUnavailable(outcome.error) };
  };

  const { startMetricsServer } = await import('./metrics-server.js');
  const server = await startMetricsServer({ port: metrics.port, respond, onError: (error) => ctx.log.warn('metrics endpoint error', { error: error.message }) });
  ctx.log.info('metrics endpoint listening', { url: server.url });
  metrics.onListening?.(server.url);
  return { server, counts };
}

/** The `serve` action, bound to the registry whose plugins' schedules it runs. */
export function createServeAction(registry: Registry): HandlerDefinition<typeof ServeInput, ServeResult> {
  return {
    name: 'serve',
    summary: 'stay alive and run recovery, health checks, age flushes until SIGINT/SIGTERM/SIGHUP',
    help: `Usage: provider-bridge serve [--metrics-port=N]

Keeps the host alive and runs, with node-schedule: the recovery pass every
recovery.scheduleInterval, the health check every recovery.healthCheckInterval, the
age-trigger check every maxAge/2 (1–30 s), one of each at start. Runs never overlap.
SIGINT, SIGTERM or SIGHUP (also while its schedules start) finishes the current run,
flushes everything pending, and exits 0; 1 when that final flush fails (the entries stay
pending in the journal, or parked in recovery/).
Logs go to <data root>/logs/aggregation.log; the result is printed when it stops.

  --metrics-port=N   also serve Prometheus metrics at http://127.0.0.1:N/metrics
                     (loopback only; 0 picks a free port, printed on stderr). A port
                     already in use is exit 1 before anything runs.`,
    options: { 'metrics-port': { type: 'string' } },
    input: ServeInput,
    run: async (input, ctx) => {
      const port = input['metrics-port'];
      const result = await serveSchedules(
        ctx,
        registry.plugins().flatMap((p) => p.schedules ?? []),
        port === undefined
          ? {}
          : {
              metrics: {
                port,
                async collect(c) {
                  const [{ readStatus }, { renderPrometheus }] = await Promise.all([
                    import('../../plugins/aggregation/handlers/aggregate-status.js'),
                    import('../../plugins/aggregation/prometheus.js'),
                  ]);
                  return renderPrometheus(await readStatus(c, { applyAgeTrigger: false, lockTimeoutMs: SCRAPE_WAIT_MS }));
                },
                // The one line serve prints while running: where the metrics are (port 0 resolved).
                onListening: (url) => process.stderr.write(messages.metricsListening(url)),
              },
            },
      );
      // Like aggregate-force: a flush that could not be made is exit 1, not a quiet ok.
      if ('error' in result.finalFlush) {
        throw new IoError(`serve stopped (${result.stoppedBy}), but its final flush failed: ${result.finalFlush.error}.`, {
          details: [{ path: 'finalFlush', message: result.finalFlush.error }],
        });
      }
      return result;
    },
    formatText: (r) => `stopped by ${r.stoppedBy} after ${Math.round(r.uptimeMs / 1000)} s; runs ${JSON.stringify(r.runs)}; final flush ${JSON.stringify(r.finalFlush)}`,
  };
}
