/**
 * The aggregation plugin manifest (STYLE §2): plain data. Handlers load lazily so a hook
 * invocation imports only its own action; the host (src/bridge) is the only place that wires
 * the manifest.
 */
import type { PluginManifest } from '../../src/core/handler.js';
import { aggregationSchedules } from './schedules.js';

export const aggregationPlugin: PluginManifest = {
  name: 'aggregation',
  handlers: {
    aggregate: { summary: 'accept entries, store them durably, flush batches when a trigger fires', load: async () => (await import('./handlers/aggregate.js')).aggregate },
    'aggregate-status': { summary: 'show pending entries, batches, recovery files, metrics and health', load: async () => (await import('./handlers/aggregate-status.js')).aggregateStatus },
    'aggregate-force': { summary: 'flush every pending entry into batch files now', load: async () => (await import('./handlers/aggregate-force.js')).aggregateForce },
    'aggregate-recover': { summary: 'retry failed batches in recovery/ now (one recovery pass)', load: async () => (await import('./handlers/aggregate-recover.js')).aggregateRecover },
  },
  hooks: [
    { name: 'post-commit', args: ['aggregate', '--source=git-commit'] },
    { name: 'post-checkout', args: ['aggregate', '--source=git-checkout'] },
  ],
  schedules: aggregationSchedules,
};
