/**
 * `aggregate-recover`: one recovery pass now (SPEC §6), or for one batch with `--batch-id`.
 * A `--batch-id` that is not a plain batch id (`batch_<13 digits>_<8 hex>`) is a usage error,
 * never used as a path.
 */
import * as v from 'valibot';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { UsageError } from '../../../src/core/errors.js';
import { withStore } from '../aggregator.js';
import { BATCH_ID_PATTERN } from '../layout.js';
import { runRecoveryPass, type RecoveryResult } from '../recovery.js';

const AggregateRecoverInput = v.object({ 'batch-id': v.optional(v.string()) });

export const aggregateRecover: HandlerDefinition<typeof AggregateRecoverInput, RecoveryResult> = {
  name: 'aggregate-recover',
  summary: 'retry failed batches in recovery/ now (one recovery pass)',
  help: `Usage: provider-bridge aggregate-recover [--batch-id=ID]

Retries each failed batch in aggregated/recovery/ that is due (oldest first), writing it
as a batch file with "recovered": true. A batch that fails batchRetryLimit times moves to
recovery/abandoned/; unreadable files move to recovery/errors/. --batch-id retries one
batch now, whatever its due time. The entries of an unreadable failed batch are listed
in "released": they are no longer counted as stored, so re-import them from your source.`,
  options: { 'batch-id': { type: 'string' } },
  input: AggregateRecoverInput,
  async run(input, ctx) {
    const only = input['batch-id'];
    if (only !== undefined && !BATCH_ID_PATTERN.test(only)) {
      throw new UsageError(`--batch-id must look like batch_<13 digits>_<8 hex>, got ${JSON.stringify(only)}`, {
        details: [{ path: '--batch-id', message: 'not a batch id', value: only }],
      });
    }
    return withStore(ctx, async (store) => {
      await store.flush();
      return runRecoveryPass(ctx, store, only);
    });
  },
  formatText: (r) =>
    `processed ${r.processed}: ${r.succeeded} recovered, ${r.failed} failed again, ${r.abandoned} abandoned, ${r.quarantined} quarantined` +
    (r.waiting.length ? `\n${r.waiting.length} waiting for their next retry` : '') +
    r.released.map((b) => `\nbatch ${b.batchId} was damaged and set aside: its ${b.entryIds.length} entries are in no batch file; re-import them from your source: ${b.entryIds.join(', ')}`).join(''),
};
