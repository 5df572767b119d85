/**
 * Upgrading batch files of the older format (issue 6 item 5). The older format is the seed's
 * "Batch File Format": `{batchId, timestamp, entries: [{userId, action, timestamp, metadata?}],
 * entryCount?}`, without `version` (or with a major below 2), without `checksum`, entries
 * without `entryId` and timestamps in epoch seconds or ISO form (batch-store `parseBatchBytes`
 * tells it apart). `planMigration` reads the store and decides, file by file, what the upgrade
 * writes; `applyMigration` carries the plan out under the store lock.
 *
 * Upgrade of a file, in this order, each step durable before the next:
 *   1. its original bytes are copied to `aggregated/recovery/migrated/<name>.orig` (kept);
 *   2. the ids of its entries are added to the entry-id index, under its batch id;
 *   3. a batch file is recorded in the journal (`m` record), so status counts it;
 *   4. the upgraded document replaces the file atomically (same name, same batch id).
 * Each step is taken for every file of the run before the next step (one index append and one
 * journal write for the whole run instead of one per file: a few fsyncs per file, not one per
 * index shard per file). Until its step 4, a file is still in the older format, so after a
 * crash the next run plans it again and redoes every step idempotently: the backup is already
 * there, ids the index holds under this batch id are its own (not duplicates), the journal
 * counts a batch id once.
 *
 * Entries go through the same validation as `aggregate` input (SPEC §4): timestamps become
 * epoch ms, a missing `entryId` is derived, the configured redaction (and `anonymizeUsers`)
 * applies. An entry whose id is already stored — in a batch, the journal, or an earlier file
 * of this run — is dropped from the upgraded file and reported; its original stays in the
 * backup. A file with any entry that cannot be upgraded blocks the whole run.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import { InputError, type ErrorDetail } from '../../src/core/errors.js';
import type { OpenStore } from './aggregator.js';
import { BATCH_MESSAGES, BATCH_VERSION, makeBatch, parseBatchBytes } from './batch-store.js';
import { MIN_TIMESTAMP_MS, toEpochMs, validateEntries } from './entry.js';
import { LEGACY_BATCH_ID_PATTERN, type StoreLayout } from './layout.js';
import type { BatchFile, Entry } from './types.js';

/** Which kind of stored batch a file is, by its folder and suffix. */
export type MigrateKind = 'batch' | 'failed' | 'abandoned';

/** One file the run upgrades (or, in a dry run, would upgrade). Paths relative to the data root. */
export interface MigratedFile {
  file: string;
  kind: MigrateKind;
  batchId: string;
  /** The file's `version` before (null: none). */
  from: string | null;
  /** `"2.0.0"`, or null for a failed/abandoned batch whose every entry is stored elsewhere: it is removed (the original is kept). */
  to: typeof BATCH_VERSION | null;
  /** Entries in the upgraded file. */
  entries: number;
  /** Entries that had no `entryId` and got a derived one. */
  derivedIds: number;
  /** Entries whose timestamp was converted to epoch ms (from seconds or an ISO string). */
  convertedTimestamps: number;
  /** Whether the file had no `checksum` (the upgraded one always has one). */
  addedChecksum: boolean;
  /** Entries left out as duplicates (listed in the result's `duplicatesDropped`). */
  duplicatesDropped: number;
  /** Where the original bytes are kept. */
  original: string;
}

/** An entry left out because its id is already stored. `index` is its position in the original file. */
export interface DroppedDuplicate {
  file: string;
  index: number;
  entryId: string;
  /** Where the id already is: `journal`, a batch id (from the index), or a file of this run. */
  duplicateOf: string;
}

/** A file of a newer batch format: never touched. */
export interface RefusedFile {
  file: string;
  version: string;
  message: string;
}

/** What one run found and decided. */
export interface MigrationPlan {
  upgrades: PlannedUpgrade[];
  /** Files already in the current format. */
  current: number;
  refused: RefusedFile[];
  /** Every problem that keeps an older-format file from being upgraded, `path` like `aggregated/batch_x.json:entries[3].timestamp`. */
  invalid: ErrorDetail[];
  /** The files those problems are in. */
  invalidFiles: string[];
  duplicatesDropped: DroppedDuplicate[];
  /** Damaged files that are neither current nor older-format (aggregate-validate reports them); left alone. */
  skipped: Array<{ file: string; reason: string }>;
  notes: string[];
}

/** A planned upgrade: the summary plus what applying it needs. */
export interface PlannedUpgrade {
  summary: MigratedFile;
  /** Absolute path of the file. */
  path: string;
  /** Its bytes as read (copied to the backup). */
  raw: Buffer;
  /** The upgraded document without `migrated.original`, which applying fills in. */
  document: BatchFile & Record<string, unknown>;
  /** Index lines to add: entries not yet recorded under this batch id. */
  indexPairs: Array<{ entryId: string; batchId: string }>;
}

/** What duplicate detection knows about already-stored ids. */
export interface StoredIds {
  /** Whether the journal lists the id (pending, or flushed and not yet in the index). */
  inJournal(entryId: string): boolean;
  /** Batch ids the index records the ids under. */
  owners(entryIds: Iterable<string>): Map<string, string>;
}

/** User-facing strings of the migration (one place, STYLE §4). */
export const MIGRATE_MESSAGES = {
  batchIdType: 'batchId must be a string',
  batchIdPattern: 'batchId must be batch_ followed by at most 120 characters without / \\ or control characters (it names the file)',
  nameMismatch: (batchId: string, suffix: string) => `the file name does not match its batchId ${batchId}: rename the file to ${batchId}${suffix}, then run the migration again`,
  idInUse: (batchId: string, other: string) =>
    `batch id ${batchId} is also used by ${other}: compare the two files and move the one that is not needed out of the store (the recovery pass would write one over the other)`,
  entryCount: (declared: unknown, actual: number) => `entryCount is ${JSON.stringify(declared)} but the file holds ${actual} entries (a truncated file?)`,
  provisionalIds:
    'privacy.anonymizeUsers is on and this data root has no secret.key yet: derived ids in this dry run use a provisional secret and will differ under --apply (the counts will not)',
} as const;

const SUFFIX: Record<MigrateKind, string> = { batch: '.json', failed: '.failed.json', abandoned: '.abandoned.json' };
const BATCH_KEYS = ['batchId', 'timestamp', 'version', 'entries', 'entryCount', 'recovered', 'checksum', 'migrated'];
const FAILED_KEYS = ['failedAt', 'retryCount', 'lastRetryAt', 'lastError', 'nextRetryAt'];

/** The backup path of `name` (a file name in its folder). */
export const originalPath = (layout: StoreLayout, name: string): string => path.join(layout.migrated, `${name}.orig`);

/** Epoch ms from a timestamp in any accepted form, when it is one from 2000 on; otherwise undefined. */
function epochMs(value: unknown): number | undefined {
  const ms = toEpochMs(value);
  return typeof ms === 'number' && ms >= MIN_TIMESTAMP_MS ? ms : undefined;
}

/**
 * Reads every batch, failed and abandoned file and plans the upgrade of those in the older
 * format. Reads only (through ctx.fs); throws the port's I/O errors. `anonymize` replaces user
 * ids by their pseudonyms when `privacy.anonymizeUsers` is on (see {@link loadAnonymizer}).
 */
export function planMigration(
  ctx: HandlerContext,
  layout: StoreLayout,
  stored: StoredIds,
  options: { anonymize?: (raw: unknown[]) => unknown[]; notes?: string[] } = {},
): MigrationPlan {
  const plan: MigrationPlan = { upgrades: [], current: 0, refused: [], invalid: [], invalidFiles: [], duplicatesDropped: [], skipped: [], notes: options.notes ?? [] };
  const rel = (file: string) => path.relative(ctx.dataRoot, file);
  const dirs: Record<MigrateKind, string> = { batch: layout.aggregated, failed: layout.recovery, abandoned: layout.abandoned };
  const names: Record<MigrateKind, string[]> = {
    batch: ctx.fs.readdir(layout.aggregated).filter((n) => n.startsWith('batch_') && n.endsWith('.json')).sort(),
    failed: ctx.fs.readdir(layout.recovery).filter((n) => n.endsWith('.failed.json')).sort(),
    abandoned: ctx.fs.readdir(layout.abandoned).filter((n) => n.endsWith('.abandoned.json')).sort(),
  };
  /** Batch id (file-name stem) → the files using it, across the three folders. */
  const stems = new Map<string, string[]>();
  for (const kind of ['batch', 'failed', 'abandoned'] as const) {
    for (const name of names[kind]) {
      const stem = name.slice(0, name.length - SUFFIX[kind].length);
      stems.set(stem, [...(stems.get(stem) ?? []), rel(path.join(dirs[kind], name))]);
    }
  }
  /** Entry ids kept by earlier files of this run → that file. */
  const seen = new Map<string, string>();
  const now = ctx.now();

  for (const kind of ['batch', 'failed', 'abandoned'] as const) {
    for (const name of names[kind]) {
      const file = path.join(dirs[kind], name);
      const where = rel(file);
      let raw: Buffer;
      try {
        raw = ctx.fs.readFile(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      const read = parseBatchBytes(raw);
      if ('batch' in read) {
        plan.current++;
        continue;
      }
      if (read.problem === 'newer-version') {
        plan.refused.push({ file: where, version: read.version, message: BATCH_MESSAGES.newerVersion(where, read.version) });
        continue;
      }
      if (read.problem !== 'legacy') {
        plan.skipped.push({ file: where, reason: `not the older format either (${read.problem}): aggregate-validate reports it` });
        continue;
      }
      const upgrade = planOne(ctx, { kind, file, where, name, raw, doc: read.document, version: read.version, stems, seen, stored, anonymize: options.anonymize, now });
      if ('problems' in upgrade) {
        plan.invalid.push(...upgrade.problems);
        plan.invalidFiles.push(where);
        continue;
      }
      plan.upgrades.push(upgrade.planned);
      plan.duplicatesDropped.push(...upgrade.dropped);
    }
  }
  return plan;
}

interface PlanOneInput {
  kind: MigrateKind;
  file: string;
  where: string;
  name: string;
  raw: Buffer;
  doc: Record<string, unknown>;
  version: string | null;
  stems: Map<string, string[]>;
  seen: Map<string, string>;
  stored: StoredIds;
  anonymize: ((raw: unknown[]) => unknown[]) | undefined;
  now: number;
}

function planOne(ctx: HandlerContext, input: PlanOneInput): { planned: PlannedUpgrade; dropped: DroppedDuplicate[] } | { problems: ErrorDetail[] } {
  const { kind, file, where, name, doc, now } = input;
  const problems: ErrorDetail[] = [];
  const stem = name.slice(0, name.length - SUFFIX[kind].length);
  // The oldest writers named the file after the batch and may have left the id out.
  const batchId = doc.batchId === undefined || doc.batchId === null ? stem : doc.batchId;
  if (typeof batchId !== 'string') problems.push({ path: `${where}:batchId`, message: MIGRATE_MESSAGES.batchIdType, value: batchId });
  else if (!LEGACY_BATCH_ID_PATTERN.test(batchId)) problems.push({ path: `${where}:batchId`, message: MIGRATE_MESSAGES.batchIdPattern, value: batchId });
  else if (batchId !== stem) problems.push({ path: `${where}:batchId`, message: MIGRATE_MESSAGES.nameMismatch(batchId, SUFFIX[kind]), value: batchId });
  else {
    const others = (input.stems.get(stem) ?? []).filter((f) => f !== where);
    if (others.length > 0) problems.push({ path: `${where}:batchId`, message: MIGRATE_MESSAGES.idInUse(batchId, others.join(', ')), value: batchId });
  }
  const rawEntries = (doc.entries as unknown[]).map((e) => {
    // Older writers wrote null for "none": read it as absent.
    if (e === null || typeof e !== 'object' || Array.isArray(e)) return e;
    const copy = { ...(e as Record<string, unknown>) };
    if (copy.entryId === null) delete copy.entryId;
    if (copy.metadata === null) delete copy.metadata;
    return copy;
  });
  if (doc.entryCount !== undefined && doc.entryCount !== null && doc.entryCount !== rawEntries.length) {
    problems.push({ path: `${where}:entryCount`, message: MIGRATE_MESSAGES.entryCount(doc.entryCount, rawEntries.length) });
  }
  let entries: Entry[] = [];
  try {
    const items = input.anonymize ? input.anonymize(rawEntries) : rawEntries;
    entries = validateEntries(items, { now: ctx.now(), maxClockSkew: ctx.config.maxClockSkew, redactKeys: ctx.config.privacy.redactKeys });
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    for (const d of error.details) problems.push({ ...d, path: `${where}:entries${d.path}` });
  }
  if (problems.length > 0) return { problems };
  const id = batchId as string;

  const owners = input.stored.owners(entries.map((e) => e.entryId));
  const kept: Entry[] = [];
  const dropped: DroppedDuplicate[] = [];
  const indexPairs: Array<{ entryId: string; batchId: string }> = [];
  let derivedIds = 0;
  let convertedTimestamps = 0;
  entries.forEach((entry, index) => {
    const original = rawEntries[index] as Record<string, unknown>;
    const earlier = input.seen.get(entry.entryId);
    const owner = owners.get(entry.entryId);
    const duplicateOf = earlier ?? (input.stored.inJournal(entry.entryId) ? 'journal' : owner !== undefined && owner !== id ? owner : undefined);
    if (duplicateOf !== undefined) {
      dropped.push({ file: where, index, entryId: entry.entryId, duplicateOf });
      return;
    }
    input.seen.set(entry.entryId, where);
    kept.push(entry);
    // An id the index already holds under this batch id was added by an interrupted run.
    if (owner === undefined) indexPairs.push({ entryId: entry.entryId, batchId: id });
    if (original.entryId === undefined) derivedIds++;
    if (original.timestamp !== entry.timestamp) convertedTimestamps++;
  });

  const timestamp = epochMs(doc.timestamp) ?? Math.floor(ctx.fs.stat(file)?.mtimeMs ?? now);
  const extras: Record<string, unknown> = {};
  const known = kind === 'batch' ? BATCH_KEYS : [...BATCH_KEYS, ...FAILED_KEYS];
  for (const [key, value] of Object.entries(doc)) if (!known.includes(key)) extras[key] = value;
  const batch = makeBatch(id, timestamp, kept, doc.recovered === true);
  const failedFields =
    kind === 'batch'
      ? {}
      : {
          failedAt: epochMs(doc.failedAt) ?? timestamp,
          retryCount: Number.isSafeInteger(doc.retryCount) && (doc.retryCount as number) >= 0 ? (doc.retryCount as number) : 0,
          lastRetryAt: epochMs(doc.lastRetryAt) ?? null,
          lastError: typeof doc.lastError === 'string' ? doc.lastError : '',
          nextRetryAt: epochMs(doc.nextRetryAt) ?? now,
        };
  const document = { ...batch, ...failedFields, migrated: { from: input.version, at: now, original: '' }, ...extras };
  const removed = kind !== 'batch' && kept.length === 0;
  return {
    planned: {
      summary: {
        file: where,
        kind,
        batchId: id,
        from: input.version,
        to: removed ? null : BATCH_VERSION,
        entries: kept.length,
        derivedIds,
        convertedTimestamps,
        addedChecksum: !('checksum' in doc),
        duplicatesDropped: dropped.length,
        original: '',
      },
      path: file,
      raw: input.raw,
      document,
      indexPairs,
    },
    dropped,
  };
}

/**
 * The user-id pseudonymizer of a run when `privacy.anonymizeUsers` is on (undefined when off),
 * as `aggregate` applies it (privacy.ts). A dry run never creates `secret.key`: without one it
 * uses a provisional secret and says so in `notes`.
 */
export async function loadAnonymizer(ctx: HandlerContext, dryRun: boolean, notes: string[]): Promise<((raw: unknown[]) => unknown[]) | undefined> {
  if (!ctx.config.privacy.anonymizeUsers) return undefined;
  const privacy = await import('./privacy.js');
  let secret: string;
  if (dryRun && privacy.sharedPseudonymKey(ctx.env) === undefined && !ctx.fs.stat(path.join(ctx.dataRoot, privacy.SECRET_FILE))) {
    notes.push(MIGRATE_MESSAGES.provisionalIds);
    secret = randomBytes(32).toString('hex');
  } else secret = privacy.loadOrCreateSecret(ctx);
  return (raw) => privacy.anonymizeRaw(raw, secret);
}

/** The backup name for a file: `<name>.orig`, or `<name>.<ms>.orig` when a different original already holds that name. */
function chooseOriginal(ctx: HandlerContext, layout: StoreLayout, upgrade: PlannedUpgrade): { file: string; present: boolean } {
  const name = path.basename(upgrade.path);
  const first = originalPath(layout, name);
  const existing = readOrUndefined(ctx, first);
  if (existing === undefined || existing.equals(upgrade.raw)) return { file: first, present: existing !== undefined };
  const second = path.join(layout.migrated, `${name}.${ctx.now()}.orig`);
  return { file: second, present: false };
}

function readOrUndefined(ctx: HandlerContext, file: string): Buffer | undefined {
  try {
    return ctx.fs.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Fills in the backup paths a run would use (for a dry run's report). Reads only. */
export function previewOriginals(ctx: HandlerContext, layout: StoreLayout, plan: MigrationPlan): void {
  for (const upgrade of plan.upgrades) upgrade.summary.original = path.relative(ctx.dataRoot, chooseOriginal(ctx, layout, upgrade).file);
}

/**
 * Applies a plan with no refused or invalid files, under the store lock, in the order of the
 * module comment. Throws the port's errors (the caller turns them into IoError); whatever was
 * done stays consistent and the next run finishes the job.
 */
export async function applyMigration(ctx: HandlerContext, store: OpenStore, plan: MigrationPlan): Promise<MigratedFile[]> {
  const { layout } = store;
  const done: MigratedFile[] = [];
  if (plan.upgrades.length === 0) return done;
  for (const upgrade of plan.upgrades) {
    const original = chooseOriginal(ctx, layout, upgrade);
    upgrade.summary.original = path.relative(ctx.dataRoot, original.file);
    if (original.present) continue;
    store.assertLockHeld();
    ctx.fs.mkdirp(layout.migrated);
    ctx.fs.writeFileDurable(original.file, upgrade.raw);
  }
  const pairs = plan.upgrades.flatMap((u) => u.indexPairs);
  if (pairs.length > 0) {
    store.assertLockHeld();
    await store.index.add(pairs);
  }
  const batches = plan.upgrades.filter((u) => u.summary.kind === 'batch').map((u) => ({ batchId: u.summary.batchId, entryCount: u.summary.entries }));
  if (batches.length > 0) {
    store.assertLockHeld();
    store.journal.migrated(batches, ctx.now());
  }
  for (const upgrade of plan.upgrades) {
    const { summary } = upgrade;
    store.assertLockHeld();
    if (summary.to === null) ctx.fs.removeDurable(upgrade.path);
    else {
      const document = { ...upgrade.document, migrated: { ...upgrade.document.migrated!, original: summary.original } };
      ctx.fs.writeFileDurable(upgrade.path, JSON.stringify(document));
    }
    ctx.log.info('upgraded an older-format batch file', { ...summary });
    done.push(summary);
  }
  for (const d of plan.duplicatesDropped) ctx.log.warn('older-format entry dropped as a duplicate (kept in the original copy)', { ...d });
  return done;
}

/** The entry-id view of an open store. */
export function storedIdsOf(store: OpenStore): StoredIds {
  return { inJournal: (id) => store.journal.hasId(id), owners: (ids) => store.index.owners(ids) };
}
