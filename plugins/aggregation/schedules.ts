/**
 * What the aggregation plugin wants run while `provider-bridge serve` keeps the host alive
 * (SPEC §7). Plain data; every run imports its work lazily. Intervals in milliseconds from the
 * config: the recovery pass every `recovery.scheduleInterval`, the health check every
 * `recovery.healthCheckInterval`, the age-trigger check every maxAge/2 (between 1 s and 30 s),
 * and cleanup once a day (`cleanupAge`).
 */
import type { ScheduleBinding } from '../../src/core/handler.js';

export const DAY_MS = 86_400_000;

export const aggregationSchedules: ScheduleBinding[] = [
  {
    name: 'recovery-pass',
    everyMs: (c) => c.recovery.scheduleInterval,
    async run(ctx) {
      const [{ withStore }, { runRecoveryPass }] = await Promise.all([import('./aggregator.js'), import('./recovery.js')]);
      return withStore(ctx, async (store) => {
        const flush = await store.flush();
        return { flushed: flush.flushed.length, recovery: runRecoveryPass(ctx, store) };
      });
    },
  },
  {
    name: 'health-check',
    everyMs: (c) => c.recovery.healthCheckInterval,
    async run(ctx, host) {
      const [{ withStore }, { runHealthCheck }] = await Promise.all([import('./aggregator.js'), import('./health-check.js')]);
      return withStore(ctx, async (store) => {
        await store.flush();
        return runHealthCheck(ctx, store, { daemon: host }).status;
      });
    },
  },
  {
    name: 'cleanup',
    everyMs: () => DAY_MS,
    async run(ctx) {
      const { aggregateCleanup } = await import('./handlers/aggregate-cleanup.js');
      return aggregateCleanup.run({ 'dry-run': false }, ctx);
    },
  },
  {
    name: 'age-flush',
    everyMs: (c) => Math.min(30_000, Math.max(1_000, Math.floor(c.maxAge / 2))),
    async run(ctx) {
      const { withStore } = await import('./aggregator.js');
      return withStore(ctx, async (store) => (await store.flush()).flushed.length);
    },
  },
];
