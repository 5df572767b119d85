/**
 * `aggregate-sync [--remote=origin] [--repo=DIR] [--flush]`: team sync through git (issue 6
 * item 3). Applies the flush triggers (or, with `--flush`, flushes everything pending) under the
 * store lock, releases it, then publishes this clone's batch files to its own ref, pushes it and
 * fetches the other clones' batches into `team/<clone id>/` (plugins/aggregation/team-sync.ts).
 */
import * as v from 'valibot';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { withStore } from '../aggregator.js';
import type { SyncOutcome } from '../team-sync.js';
import type { FlushedBatch } from '../types.js';

const AggregateSyncInput = v.object({
  remote: v.optional(v.pipe(v.string(), v.nonEmpty('--remote must name a git remote')), 'origin'),
  repo: v.optional(v.string()),
  flush: v.optional(v.boolean(), false),
});

/**
 * Result of `aggregate-sync`: the sync (see {@link SyncOutcome}: `published`, `pushed`,
 * `fetched`, `problems`) plus the batches the flush triggers (or `--flush`) wrote first, and
 * those whose flush failed and were parked in `recovery/` (published once recovered).
 */
export interface AggregateSyncResult extends SyncOutcome {
  flushed: FlushedBatch[];
  failed: Array<{ batchId: string; file: string; entryCount: number; error: string }>;
}

/**
 * The `aggregate-sync` action. Throws UsageError (exit 2) for an unknown remote; SyncError
 * (exit 1, `E_SYNC`) when the remote could not be reached or refused the push, after committing
 * the local batches to the local ref; UsageError (exit 2) outside a repository; IoError or
 * LockedError (exit 1) when the store or the sync lock cannot be used.
 */
export const aggregateSync: HandlerDefinition<typeof AggregateSyncInput, AggregateSyncResult> = {
  name: 'aggregate-sync',
  summary: "share batches with the team through git: publish this clone's, fetch everyone else's",
  help: `Usage: provider-bridge aggregate-sync [--remote=origin] [--repo=DIR] [--flush]

Publishes this clone's batch files (aggregated/batch_*.json) to its own git ref,
refs/flowforge/aggregated/<clone id>, pushes it to the remote, and fetches every other
clone's ref into refs/flowforge/remotes/<remote>/; their batches are written to
team/<clone id>/ in the data root (aggregate-report --scope=team reads them).
Only git plumbing is used: your working tree, index, HEAD and branches are not touched,
and no commit carries your name (author "FlowForge Aggregation <flowforge@localhost>").
Syncing again when nothing changed writes nothing.

  --remote=NAME   git remote to sync with (default origin)
  --repo=DIR      repository to sync through (default: the working directory's)
  --flush         flush every pending entry into a batch first (otherwise only the
                  usual flush triggers apply, so pending entries wait for their batch)

Offline (remote unreachable): the local batches are still committed to the local ref,
then the call exits 1 (E_SYNC) saying so; the next aggregate-sync pushes them.`,
  options: { remote: { type: 'string' }, repo: { type: 'string' }, flush: { type: 'boolean' } },
  input: AggregateSyncInput,
  async run(input, ctx) {
    // Flush first (SPEC §5: triggers at every invocation), holding the store lock only for that;
    // the network part runs under the sync lock alone.
    const { flushed, failed } = await withStore(ctx, async (store) => {
      const outcome = await store.flush({ manual: input.flush });
      return { flushed: [...store.resumed, ...outcome.flushed], failed: outcome.failed };
    });
    const { syncTeam } = await import('../team-sync.js');
    const git = await ctx.git(input.repo);
    const outcome = await syncTeam(ctx, git, { remote: input.remote });
    return { ...outcome, flushed, failed };
  },
  formatText: (r) =>
    [
      r.flushed.length > 0 ? `flushed ${r.flushed.reduce((n, f) => n + f.entryCount, 0)} pending entries into ${r.flushed.length} batch(es) first` : '',
      r.published.commit === null
        ? 'no local batches to publish yet'
        : `${r.published.batches > 0 ? `published ${r.published.batches} new batch(es)` : 'no new batches'} → ${r.published.ref} (${r.published.total} in total, commit ${r.published.commit.slice(0, 12)})`,
      r.pushed ? `pushed to ${r.remote}` : `${r.remote} already had it`,
      `fetched from ${r.remote}: ${r.fetched.clones} other clone(s), ${r.fetched.batches} new batch file(s) (${r.fetched.entries} entries) in team/`,
      ...r.problems.map((p) => `left out: clone ${p.cloneId} batch ${p.batchId || '(ref)'}: ${p.message}`),
      ...r.failed.map((f) => `flush FAILED, ${f.entryCount} entries parked in ${f.file}: ${f.error}`),
    ]
      .filter(Boolean)
      .join('\n'),
};
