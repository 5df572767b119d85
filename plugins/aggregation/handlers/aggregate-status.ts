/**
 * `aggregate-status`: a summary of the store (SPEC §3). Read-only except that it applies the
 * age trigger, as every action does (SPEC §5). Costs do not grow with history: batch counts
 * come from the journal's totals, never from listing batch files. `--format=prometheus`
 * prints the same summary in the Prometheus text exposition format (../prometheus.ts).
 */
import { recentHookFailures } from '../hook-failures.js';
import * as v from 'valibot';
import type { HandlerContext } from '../../../src/core/context.js';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { withStore } from '../aggregator.js';
import { evaluateHealth, type HealthSummary } from '../health.js';
import { summarizeMetrics } from '../metrics.js';
import { idIndexSample } from '../id-index.js';
import type { FlushedBatch } from '../types.js';

const AggregateStatusInput = v.object({});

/** Result of `aggregate-status`; times in milliseconds, `lastFlushAt` and `readAt` epoch ms. */
export interface AggregateStatusResult {
  dataRoot: string;
  /** When this summary was read (the context's clock), epoch ms. */
  readAt: number;
  pending: number;
  batchAgeMs: number;
  batches: { count: number; entries: number };
  recovery: { failed: number; abandoned: number; errors: number };
  metrics: ReturnType<typeof summarizeMetrics>;
  health: HealthSummary;
  lastFlushAt: number | null;
  /** Batches the age trigger (or a resumed flush) wrote during this call. */
  flushed: FlushedBatch[];
}

export const aggregateStatus: HandlerDefinition<typeof AggregateStatusInput, AggregateStatusResult> = {
  name: 'aggregate-status',
  summary: 'show pending entries, batches, recovery files, metrics and health',
  help: `Usage: provider-bridge aggregate-status [--format=json|text|prometheus]

Prints pending entries and the age of the oldest, batch files written, failed /
abandoned / quarantined files, flush metrics and health. Applies the age trigger.
--format=prometheus prints the same in the Prometheus text exposition format
(metrics named flowforge_aggregation_*; serve --metrics-port=N serves it over HTTP).`,
  options: {},
  input: AggregateStatusInput,
  run: (_input, ctx) => readStatus(ctx, { applyAgeTrigger: true }),
  formatText: (r) =>
    [
      `data root     ${r.dataRoot}`,
      `pending       ${r.pending} entries (oldest ${Math.round(r.batchAgeMs / 1000)} s)`,
      `batches       ${r.batches.count} files, ${r.batches.entries} entries`,
      `recovery      ${r.recovery.failed} failed, ${r.recovery.abandoned} abandoned, ${r.recovery.errors} quarantined`,
      `flushes       ${r.metrics.flushes} (avg ${r.metrics.averageFlushTime.toFixed(1)} ms, max ${r.metrics.maxFlushTime.toFixed(1)} ms)`,
      `success rate  ${(r.metrics.successRate * 100).toFixed(1)} %`,
      `health        ${r.health.status}${r.health.issues.map((i) => `\n  - ${i.severity}: ${i.message}`).join('')}`,
      `last flush    ${r.lastFlushAt === null ? 'never' : new Date(r.lastFlushAt).toISOString()}`,
    ].join('\n'),
  renderers: {
    // prom-client is loaded only when this format is asked for (never on the hook path).
    prometheus: async (r) => (await (await import('../prometheus.js')).renderPrometheus(r)).body,
  },
};

/**
 * Reads the summary under the store lock. `applyAgeTrigger` flushes what the age trigger
 * wants first (the action does; a metrics scrape in `serve` does not — the age-flush schedule
 * does that there). `lockTimeoutMs` bounds the wait for the store lock (default 30 000 ms);
 * past it, LockedError (exit 1). I/O failures are IoError naming the data root.
 */
export async function readStatus(ctx: HandlerContext, options: { applyAgeTrigger: boolean; lockTimeoutMs?: number }): Promise<AggregateStatusResult> {
  return withStore(
    ctx,
    async (store) => {
      const outcome = options.applyAgeTrigger ? await store.flush() : { flushed: [] };
      const { pending, batchAgeMs } = store.pendingSummary();
      const count = (dir: string, suffix: string) => ctx.fs.readdir(dir).filter((n) => n.endsWith(suffix)).length;
      const recovery = {
        failed: count(store.layout.recovery, '.failed.json'),
        abandoned: count(store.layout.abandoned, '.abandoned.json'),
        errors: ctx.fs.readdir(store.layout.errors).length,
      };
      const metrics = summarizeMetrics(store.metrics);
      const totals = store.journal.totals;
      return {
        dataRoot: ctx.dataRoot,
        readAt: ctx.now(),
        pending,
        batchAgeMs,
        batches: { count: totals.batches, entries: totals.batchEntries },
        recovery,
        metrics,
        health: evaluateHealth({
          successRate: metrics.successRate,
          totalOperations: metrics.totalOperations,
          averageFlushTime: metrics.averageFlushTime,
          targetTime: ctx.config.performance.targetTime,
          failed: recovery.failed,
          abandoned: recovery.abandoned,
          quarantined: recovery.errors,
          batchAgeMs,
          maxAge: ctx.config.maxAge,
          hookFailures: recentHookFailures(ctx),
          idIndex: idIndexSample(ctx.fs, store.layout.index, store.journal),
        }),
        lastFlushAt: totals.lastFlushAt,
        flushed: [...store.resumed, ...outcome.flushed],
      };
    },
    options.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: options.lockTimeoutMs },
  );
}
