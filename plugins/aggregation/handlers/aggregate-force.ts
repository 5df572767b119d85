/**
 * `aggregate-force`: flush everything pending now, with `trigger: "manual"` (SPEC §3). Throws
 * FlushError (exit 1) when a batch could not be written after every attempt; its entries are
 * then in recovery/ (or still in the journal), never lost.
 */
import * as v from 'valibot';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { FlushError } from '../../../src/core/errors.js';
import { withStore } from '../aggregator.js';
import type { FlushedBatch } from '../types.js';

const AggregateForceInput = v.object({});

/** Result of `aggregate-force`: the batches written and what is still pending (entries). */
export interface AggregateForceResult {
  flushed: FlushedBatch[];
  pending: number;
}

export const aggregateForce: HandlerDefinition<typeof AggregateForceInput, AggregateForceResult> = {
  name: 'aggregate-force',
  summary: 'flush every pending entry into batch files now',
  help: `Usage: provider-bridge aggregate-force

Writes every pending entry into batch files (at most batchSize entries each) with
trigger "manual". Exits 1 if a batch could not be written; its entries are kept in
aggregated/recovery/ for aggregate-recover.`,
  options: {},
  input: AggregateForceInput,
  async run(_input, ctx) {
    return withStore(ctx, async (store) => {
      const outcome = await store.flush({ manual: true });
      const flushed = [...store.resumed, ...outcome.flushed];
      if (outcome.failed.length > 0 || outcome.stuck) {
        throw new FlushError(
          outcome.stuck
            ? `Flush failed: ${outcome.stuck}.`
            : `Flush failed for ${outcome.failed.length} batch(es); their entries are safe in ${ctx.dataRoot}/aggregated/recovery/ (run aggregate-recover).`,
          { details: outcome.failed.map((f) => ({ path: f.file, message: f.error })) },
        );
      }
      return { flushed, pending: store.pendingSummary().pending };
    });
  },
  formatText: (r) => (r.flushed.length === 0 ? 'nothing pending' : r.flushed.map((f) => `flushed ${f.entryCount} entries → ${f.file}`).join('\n')) + `\npending ${r.pending}`,
};
