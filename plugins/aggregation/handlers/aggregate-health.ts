/**
 * `aggregate-health`: one health check now (SPEC §7): writes `health/health-<epoch ms>.json`
 * and raises its alerts (logs + `onAlert`). Applies the flush triggers first, as every action
 * does (SPEC §5), so the snapshot shows the store after them.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { withStore } from '../aggregator.js';
import { healthFile, runHealthCheck, type HealthReport } from '../health-check.js';

const AggregateHealthInput = v.object({});

/** Result of `aggregate-health`: the report as written, plus `file`, its path relative to the data root. */
export type AggregateHealthResult = HealthReport & { file: string };

/** The `aggregate-health` action. Throws IoError (exit 1) when the snapshot cannot be written. */
export const aggregateHealth: HandlerDefinition<typeof AggregateHealthInput, AggregateHealthResult> = {
  name: 'aggregate-health',
  summary: 'run a health check now and write health/health-<ms>.json',
  help: `Usage: provider-bridge aggregate-health [--format=json|text]

Checks the aggregator (pending entries, flush success rate and times), recovery/ (failed,
abandoned, quarantined files) and the system (memory, disk space of the data root), writes
the snapshot to health/health-<epoch ms>.json, logs each warning or critical issue as an
alert and passes it to the config's onAlert. Exit 0 whatever the health status.`,
  options: {},
  input: AggregateHealthInput,
  async run(_input, ctx) {
    return withStore(ctx, async (store) => {
      await store.flush();
      const report = runHealthCheck(ctx, store);
      return { ...report, file: path.relative(ctx.dataRoot, healthFile(store.layout, report.timestamp)) };
    });
  },
  formatText: (r) =>
    [
      `health        ${r.status}`,
      ...r.issues.map((i) => `  - ${i.severity}: ${i.message}`),
      `pending       ${r.aggregator.pending} entries (oldest ${Math.round(r.aggregator.batchAgeMs / 1000)} s)`,
      `recovery      ${r.recovery.failed} failed, ${r.recovery.abandoned} abandoned, ${r.recovery.quarantined} quarantined`,
      `memory        ${r.system.memory.percent} % used`,
      `disk          ${r.system.disk ? `${r.system.disk.percent} % used, ${(r.system.disk.freeBytes / 1024 / 1024).toFixed(0)} MiB free` : 'unknown'}`,
      `written to    ${r.file}`,
    ].join('\n'),
};
