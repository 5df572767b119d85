/**
 * `aggregate-migrate`: upgrades batch files of the older format (issue 6 item 5; see
 * migrate.ts for the format and the crash-safe order of each upgrade). A dry run by default:
 * it lists what `--apply` would change and writes nothing. `--apply` upgrades every older
 * file, or — when any file is of a newer format or cannot be upgraded — changes nothing and
 * exits 1 listing every problem.
 *
 * A dry run of a data root this product never opened (no `aggregated/journal/`, e.g. one
 * written only by the older product) takes no lock and creates nothing; otherwise it reads
 * under the store lock (a concurrent append could otherwise look like a torn journal record),
 * without applying the flush triggers.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerContext } from '../../../src/core/context.js';
import { CorruptError, type ErrorDetail } from '../../../src/core/errors.js';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { withStore } from '../aggregator.js';
import { openIdIndex } from '../id-index.js';
import { storeLayout } from '../layout.js';
import {
  applyMigration,
  loadAnonymizer,
  planMigration,
  previewOriginals,
  storedIdsOf,
  type DroppedDuplicate,
  type MigratedFile,
  type MigrationPlan,
  type RefusedFile,
} from '../migrate.js';

/** Result of `aggregate-migrate`; every path is relative to the data root. */
export interface AggregateMigrateResult {
  /** true without `--apply`: nothing was written. */
  dryRun: boolean;
  /** Whether `--apply` can run (no refused and no invalid file); always true when returned by `--apply`. */
  ok: boolean;
  /** Files upgraded (or, in a dry run, to upgrade), in the order they are processed. */
  migrated: MigratedFile[];
  /** Batch, failed and abandoned files already in the current format. */
  current: number;
  /** Files of a newer batch format: never touched. */
  refused: RefusedFile[];
  /** Every problem that keeps an older file from being upgraded, `path` like `aggregated/batch_x.json:entries[3].timestamp`. */
  invalid: ErrorDetail[];
  /** Entries left out of the upgraded files because their id is already stored (kept in the original copy). */
  duplicatesDropped: DroppedDuplicate[];
  /** Damaged files that are neither format (aggregate-validate reports them): left alone. */
  skipped: Array<{ file: string; reason: string }>;
  notes: string[];
}

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

const AggregateMigrateInput = v.object({ apply: v.optional(v.boolean(), false) });

function toResult(plan: MigrationPlan, dryRun: boolean, migrated: MigratedFile[]): AggregateMigrateResult {
  return {
    dryRun,
    ok: plan.refused.length === 0 && plan.invalid.length === 0,
    migrated,
    current: plan.current,
    refused: plan.refused,
    invalid: plan.invalid,
    duplicatesDropped: plan.duplicatesDropped,
    skipped: plan.skipped,
    notes: plan.notes,
  };
}

/** The dry run: a plan and nothing written (see the module comment for the lock). */
async function dryRun(ctx: HandlerContext): Promise<AggregateMigrateResult> {
  const layout = storeLayout(ctx.dataRoot);
  const notes: string[] = [];
  const anonymize = await loadAnonymizer(ctx, true, notes);
  const preview = (plan: MigrationPlan) => {
    previewOriginals(ctx, layout, plan);
    return toResult(plan, true, plan.upgrades.map((u) => u.summary));
  };
  if (!ctx.fs.stat(layout.journal)) {
    const index = openIdIndex(layout.index, ctx.fs);
    return preview(planMigration(ctx, layout, { inJournal: () => false, owners: (ids) => index.owners(ids) }, { anonymize, notes }));
  }
  return withStore(ctx, async (store) => preview(planMigration(ctx, layout, storedIdsOf(store), { anonymize, notes: [...notes] })));
}

/** The `aggregate-migrate` action. Throws CorruptError (exit 1) when `--apply` is blocked, IoError (exit 1) when a write fails. */
export const aggregateMigrate: HandlerDefinition<typeof AggregateMigrateInput, AggregateMigrateResult> = {
  name: 'aggregate-migrate',
  summary: 'upgrade batch files of the older format to version 2.0.0 (dry run unless --apply)',
  help: `Usage: provider-bridge aggregate-migrate [--apply]

Finds batch files (aggregated/batch_*.json), failed and abandoned batches in recovery/ of
the older format — no "version" (or 1.x), no "checksum", entries without "entryId",
timestamps in epoch seconds or ISO form — and upgrades them to version 2.0.0: timestamps
in epoch ms, derived entry ids, redaction applied, entryCount and checksum added. The file
name and batchId stay the same. An entry whose id is already stored is left out and listed
in duplicatesDropped.

Without --apply (a dry run) it only lists what would change: exit 0, "ok": false when
--apply would be refused. With --apply each file is upgraded atomically, after its original
bytes were copied to aggregated/recovery/migrated/<name>.orig (kept until you delete them).
Running it again changes nothing.

Exit 1 (E_CORRUPT), nothing changed, when a file has a newer major version (upgrade the
product) or an older file cannot be upgraded (every problem is listed with its path:
fix or move that file, then run again).`,
  options: { apply: { type: 'boolean' } },
  input: AggregateMigrateInput,
  async run(input, ctx) {
    if (!input.apply) return dryRun(ctx);
    const notes: string[] = [];
    const anonymize = await loadAnonymizer(ctx, false, notes);
    return withStore(ctx, async (store) => {
      await store.flush();
      const plan = planMigration(ctx, store.layout, storedIdsOf(store), { anonymize, notes: [...notes] });
      if (plan.refused.length > 0 || plan.invalid.length > 0) {
        const details: ErrorDetail[] = [...plan.refused.map((r) => ({ path: r.file, message: r.message, value: r.version })), ...plan.invalid];
        const files = plan.refused.length + plan.invalidFiles.length;
        throw new CorruptError(
          `Nothing was migrated: ${files} file(s) in ${path.join(ctx.dataRoot, 'aggregated')} cannot be upgraded by this version (${plan.upgrades.length} other file(s) could be). Each problem below names its file; fix or move those files, then run aggregate-migrate --apply again.`,
          { details },
        );
      }
      return toResult(plan, false, await applyMigration(ctx, store, plan));
    });
  },
  formatText: (r) => {
    const lines: string[] = [];
    const verb = r.dryRun ? 'would upgrade' : 'upgraded';
    for (const m of r.migrated) {
      const what = m.to === null ? 'remove (every entry is stored elsewhere)' : `${m.from ?? 'no version'} → ${m.to}`;
      lines.push(
        `${verb} ${m.file}: ${what}, ${count(m.entries, 'entry', 'entries')}, ${count(m.derivedIds, 'derived id', 'derived ids')}, ` +
          `${count(m.convertedTimestamps, 'timestamp', 'timestamps')} converted` +
          `${m.duplicatesDropped ? `, ${count(m.duplicatesDropped, 'duplicate', 'duplicates')} dropped` : ''}; original kept as ${m.original}`,
      );
    }
    for (const d of r.duplicatesDropped) lines.push(`duplicate ${d.file} entries[${d.index}] ${d.entryId} (already in ${d.duplicateOf})`);
    for (const f of r.refused) lines.push(`refused ${f.message}`);
    for (const p of r.invalid) lines.push(`invalid ${p.path}: ${p.message}`);
    for (const s of r.skipped) lines.push(`skipped ${s.file}: ${s.reason}`);
    for (const n of r.notes) lines.push(`note: ${n}`);
    lines.push(
      `${count(r.migrated.length, 'file', 'files')} ${r.dryRun ? 'to upgrade' : 'upgraded'}, ${r.current} already current` +
        (r.dryRun ? (r.ok ? ' — run with --apply to upgrade' : ' — --apply would change nothing until the problems above are fixed') : ''),
    );
    return lines.join('\n');
  },
};
