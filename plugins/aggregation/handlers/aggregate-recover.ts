/**
 * `aggregate-recover`: one recovery pass now (SPEC §6), or for one batch with `--batch-id`.
 * A `--batch-id` that is not a batch id (`batch_<13 digits>_<8 hex>`, or an older id kept by
 * `aggregate-migrate`) is a usage error, never used as a path; so is one with no failed batch
 * in `aggregated/recovery/` (the message says where that batch is, if anywhere).
 */
import * as v from 'valibot';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { UsageError } from '../../../src/core/errors.js';
import { withStore } from '../aggregator.js';
import { abandonedFile, batchFile, failedFile, isBatchId, type StoreLayout } from '../layout.js';
import type { HandlerContext } from '../../../src/core/context.js';
import * as path from 'node:path';
import { runRecoveryPass, type RecoveryResult } from '../recovery.js';
import { readBatchFile } from '../batch-store.js';

const AggregateRecoverInput = v.object({ 'batch-id': v.optional(v.string()) });

/** The usage error for a `--batch-id` with no failed batch, saying where that batch is instead. */
function notFailed(ctx: HandlerContext, layout: StoreLayout, batchId: string): UsageError {
  const rel = (file: string) => path.relative(ctx.dataRoot, file);
  const where = [batchFile(layout, batchId), abandonedFile(layout, batchId)].find((file) => ctx.fs.stat(file));
  const message =
    where === undefined
      ? `no failed batch ${batchId} in ${rel(layout.recovery)}/ (aggregate-status counts the failed batches; their ids are the file names there)`
      : where.endsWith('.abandoned.json')
        ? `${batchId} is not a failed batch: it was abandoned after batchRetryLimit attempts, ${rel(where)}`
        : `${batchId} is not a failed batch: it is stored, ${rel(where)}`;
  return new UsageError(message, { details: [{ path: '--batch-id', message: where === undefined ? 'no such failed batch' : `not in ${rel(layout.recovery)}/`, value: batchId }] });
}

export const aggregateRecover: HandlerDefinition<typeof AggregateRecoverInput, RecoveryResult> = {
  name: 'aggregate-recover',
  summary: 'retry failed batches in recovery/ now (one recovery pass)',
  help: `Usage: provider-bridge aggregate-recover [--batch-id=ID]

Retries each failed batch in aggregated/recovery/ that is due (oldest first), writing it
as a batch file with "recovered": true. A batch that fails batchRetryLimit times moves to
recovery/abandoned/; unreadable files move to recovery/errors/. --batch-id retries one
failed batch now, whatever its due time (an id with no failed batch is an error saying
where that batch is: stored, abandoned or nowhere). The entries of an unreadable failed
batch are listed in "released": they are no longer counted as stored, so re-import them
from your source.`,
  options: { 'batch-id': { type: 'string' } },
  input: AggregateRecoverInput,
  async run(input, ctx) {
    const only = input['batch-id'];
    if (only !== undefined && !isBatchId(only)) {
      throw new UsageError(`--batch-id must look like batch_<13 digits>_<8 hex>, got ${JSON.stringify(only)}`, {
        details: [{ path: '--batch-id', message: 'not a batch id', value: only }],
      });
    }
    return withStore(ctx, async (store) => {
      await store.flush();
      if (only !== undefined && !ctx.fs.stat(failedFile(store.layout, only))) throw notFailed(ctx, store.layout, only);
      if (only !== undefined) {
        // The pass leaves a failed batch of the older format for aggregate-migrate: say so.
        const read = readBatchFile(ctx.fs, failedFile(store.layout, only));
        if (read && 'problem' in read && read.problem === 'legacy') {
          throw new UsageError(`${only} is a failed batch of the older format: run aggregate-migrate --apply first, then aggregate-recover`, {
            details: [{ path: '--batch-id', message: 'older format', value: only }],
          });
        }
      }
      return runRecoveryPass(ctx, store, only);
    });
  },
  formatText: (r) =>
    `processed ${r.processed}: ${r.succeeded} recovered, ${r.failed} failed again, ${r.abandoned} abandoned, ${r.quarantined} quarantined` +
    (r.waiting.length ? `\n${r.waiting.length} waiting for their next retry` : '') +
    r.released.map((b) => `\nbatch ${b.batchId} was damaged and set aside: its ${b.entryIds.length} entries are in no batch file; re-import them from your source: ${b.entryIds.join(', ')}`).join(''),
};
