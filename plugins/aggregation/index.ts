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
    aggregate: {
      summary: 'accept entries, store them durably, flush batches when a trigger fires',
      load: async () => (await import('./handlers/aggregate.js')).aggregate,
      // The post-commit hook: start `git log -1 HEAD` while the handler's modules load.
      async warm(args, io) {
        if (!args.some((a, i) => a === '--source=git-commit' || (a === '--source' && args[i + 1] === 'git-commit'))) return;
        const { warmHeadCommit } = await import('../../src/core/git-client.js');
        await warmHeadCommit(io.cwd, io.env, { cwd: io.cwd });
      },
    },
    'aggregate-status': { summary: 'show pending entries, batches, recovery files, metrics and health', load: async () => (await import('./handlers/aggregate-status.js')).aggregateStatus },
    'aggregate-force': { summary: 'flush every pending entry into batch files now', load: async () => (await import('./handlers/aggregate-force.js')).aggregateForce },
    'aggregate-recover': { summary: 'retry failed batches in recovery/ now (one recovery pass)', load: async () => (await import('./handlers/aggregate-recover.js')).aggregateRecover },
    'aggregate-health': { summary: 'run a health check now and write health/health-<ms>.json', load: async () => (await import('./handlers/aggregate-health.js')).aggregateHealth },
    'aggregate-validate': { summary: 'check every batch file, recovery file and the journal; exit 1 listing each problem', load: async () => (await import('./handlers/aggregate-validate.js')).aggregateValidate },
    'aggregate-migrate': { summary: 'upgrade batch files of the older format to version 2.0.0 (dry run unless --apply)', load: async () => (await import('./handlers/aggregate-migrate.js')).aggregateMigrate },
    'aggregate-report': { summary: 'entries, commits and tracked hours per user, task, day, branch or action (json, text, csv, html)', load: async () => (await import('./handlers/aggregate-report.js')).aggregateReport },
    'aggregate-cleanup': { summary: 'remove old health snapshots, rotated logs and stale temp files', load: async () => (await import('./handlers/aggregate-cleanup.js')).aggregateCleanup },
    'aggregate-sync': { summary: "share batches with the team through git: publish this clone's, fetch everyone else's", load: async () => (await import('./handlers/aggregate-sync.js')).aggregateSync },
  },
  hooks: [
    { name: 'post-commit', args: ['aggregate', '--source=git-commit'] },
    { name: 'post-checkout', args: ['aggregate', '--source=git-checkout'] },
  ],
  // FlowForge command files (plugins/aggregation/commands/*.md), one provider-bridge call each.
  commands: [
    { name: 'flowforge:aggregation:start', description: 'Start the long-lived aggregation host (recovery pass, health checks, age flushes, daily cleanup) until stopped', file: 'commands/start.md', args: ['serve'] },
    { name: 'flowforge:aggregation:status', description: 'Show pending entries, batch files, recovery files, flush metrics and health of the time-tracking store', file: 'commands/status.md', args: ['aggregate-status', '--format=text'] },
    { name: 'flowforge:aggregation:flush', description: 'Flush every pending time-tracking entry into batch files now (trigger "manual")', file: 'commands/flush.md', args: ['aggregate-force'] },
    { name: 'flowforge:aggregation:recover', description: 'Retry failed batches in aggregated/recovery/ now (one recovery pass), or one batch with --batch-id', file: 'commands/recover.md', args: ['aggregate-recover'] },
    { name: 'flowforge:aggregation:sync', description: "Share time-tracking batches with the team through git: publish this clone's batches to its own ref and fetch everyone else's", file: 'commands/sync.md', args: ['aggregate-sync', '--format=text'] },
    { name: 'flowforge:aggregation:report', description: 'Report entries, commits and tracked hours per user, task, day, branch or action, as a table, CSV or an HTML page with a chart', file: 'commands/report.md', args: ['aggregate-report', '--format=text'] },
  ],
  schedules: aggregationSchedules,
};
