/**
 * `aggregate-cleanup [--age=7d] [--dry-run]`: removes what SPEC §7 allows and nothing else —
 * health snapshots `health/health-*.json`, rotated logs `logs/*.log.N`, stale write-file-atomic
 * temp files (see {@link tempFileDirs}) and transpiled config caches `cache/config-*.mjs` other
 * than the newest — when their mtime is older than `--age` (default `recovery.cleanupAge`,
 * 7 days) against ctx.now().
 *
 * Never removed, whatever their age, because no pattern here can match them: batch files,
 * failed and abandoned batches, anything in `recovery/errors/` (quarantined), the journal, the
 * id index, metrics.json, the live logs and the lock. Two extra guards:
 * - a temp file younger than {@link TEMP_FILE_MIN_AGE_MS} is kept even with `--age=0`: it may
 *   belong to a write in progress in another process (health and cache writes take no lock);
 * - the newest `config-*.mjs` is kept: it is almost always the cache of the current config, and
 *   removing it would make the next hook pay for a TypeScript transpile (~900 ms). An older one
 *   is the cache of an earlier config content; removing it costs at most one re-transpile.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerContext } from '../../../src/core/context.js';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import { UsageError } from '../../../src/core/errors.js';
import { withStore } from '../aggregator.js';
import type { StoreLayout } from '../layout.js';
import { CONFIG_CACHE_PATTERN, STDIN_SPOOL_PATTERN, HEALTH_SNAPSHOT_PATTERN, ROTATED_LOG_PATTERN, TEMP_FILE_PATTERN, tempFileDirs } from '../store-files.js';

/** Temp files younger than this (ms) are never removed: a write may still be in progress. */
export const TEMP_FILE_MIN_AGE_MS = 60_000;

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Parses an age: a non-negative integer with an optional unit `ms`, `s`, `m`, `h` or `d`
 * (`7d`, `12h`, `30m`, `45s`, `500ms`), or a plain number of milliseconds. Returns
 * milliseconds. Throws UsageError (exit 2) for anything else (`-1d`, `1.5h`, `7w`, ``).
 */
export function parseAge(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNIT_MS[(m[2] ?? 'ms') as keyof typeof UNIT_MS] : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new UsageError(`--age must be a whole number of milliseconds or a number with a unit (7d, 12h, 30m, 45s, 500ms), got ${JSON.stringify(text)}`, {
      details: [{ path: '--age', message: 'expected e.g. 7d, 12h, 30m, 45s, 500ms or a number of ms', value: text }],
    });
  }
  return ms;
}

/** What one cleanup removed (or, with `dryRun`, would remove). Paths relative to the data root, sorted. */
export interface AggregateCleanupResult {
  removed: string[];
  /** Files of the removable kinds that were kept (too young, newest config cache, or failed to remove). */
  kept: number;
  dryRun: boolean;
  /** Bytes of the removed files (would-be, with dryRun). */
  bytesFreed: number;
  /** Age limit applied, ms. */
  ageMs: number;
  /** Removals that failed (logged); those files are counted in `kept`. */
  failed: Array<{ path: string; message: string }>;
}

interface Candidate {
  file: string;
  mtimeMs: number;
  size: number;
  minAgeMs: number;
}

/**
 * One cleanup over the data root of `layout`. Call it with the store lock held (as the
 * action does), so no store write is in flight in `aggregated/`. Never throws for a file that
 * cannot be removed (it is logged and listed in `failed`); throws the port's error when a
 * folder cannot be listed.
 */
export function runCleanup(ctx: HandlerContext, layout: StoreLayout, options: { ageMs: number; dryRun: boolean }): AggregateCleanupResult {
  const now = ctx.now();
  const candidates: Candidate[] = [];
  const collect = (dir: string, pattern: RegExp, minAgeMs = 0): Candidate[] => {
    const found: Candidate[] = [];
    for (const name of ctx.fs.readdir(dir)) {
      if (!pattern.test(name)) continue;
      const file = path.join(dir, name);
      const st = ctx.fs.stat(file);
      if (!st?.isFile()) continue;
      found.push({ file, mtimeMs: st.mtimeMs, size: st.size, minAgeMs });
    }
    return found;
  };
  candidates.push(...collect(layout.health, HEALTH_SNAPSHOT_PATTERN));
  candidates.push(...collect(layout.logs, ROTATED_LOG_PATTERN));
  for (const dir of tempFileDirs(layout)) candidates.push(...collect(dir, TEMP_FILE_PATTERN, TEMP_FILE_MIN_AGE_MS));
  candidates.push(...collect(layout.cache, STDIN_SPOOL_PATTERN, TEMP_FILE_MIN_AGE_MS));
  const caches = collect(layout.cache, CONFIG_CACHE_PATTERN).sort((a, b) => b.mtimeMs - a.mtimeMs || a.file.localeCompare(b.file));
  const keptNewest = caches.length > 0 ? 1 : 0;
  candidates.push(...caches.slice(1));

  const result: AggregateCleanupResult = { removed: [], kept: keptNewest, dryRun: options.dryRun, bytesFreed: 0, ageMs: options.ageMs, failed: [] };
  for (const c of candidates.sort((a, b) => a.file.localeCompare(b.file))) {
    const age = now - c.mtimeMs;
    if (age <= options.ageMs || age < c.minAgeMs) {
      result.kept++;
      continue;
    }
    const rel = path.relative(ctx.dataRoot, c.file);
    if (!options.dryRun) {
      try {
        ctx.fs.removeDurable(c.file);
      } catch (error) {
        result.kept++;
        result.failed.push({ path: rel, message: (error as Error).message });
        ctx.log.warn('cleanup could not remove a file', { file: c.file, error: String(error) });
        continue;
      }
    }
    result.removed.push(rel);
    result.bytesFreed += c.size;
  }
  if (!options.dryRun && result.removed.length > 0) ctx.log.info('cleanup removed files', { removed: result.removed.length, bytesFreed: result.bytesFreed, ageMs: options.ageMs });
  return result;
}

const AggregateCleanupInput = v.object({
  age: v.optional(v.string()),
  'dry-run': v.optional(v.boolean(), false),
});

/** The `aggregate-cleanup` action. Throws UsageError (exit 2) for a bad `--age`, IoError (exit 1) when the store cannot be opened. */
export const aggregateCleanup: HandlerDefinition<typeof AggregateCleanupInput, AggregateCleanupResult> = {
  name: 'aggregate-cleanup',
  summary: 'remove old health snapshots, rotated logs and stale temp files',
  help: `Usage: provider-bridge aggregate-cleanup [--age=7d] [--dry-run]

Removes, when older than --age (default: the config's recovery.cleanupAge, 7 days):
  health/health-*.json            health snapshots
  logs/*.log.N                    rotated logs
  <name>.<digits>                 temp files left by an interrupted atomic write
                                  (in aggregated/, its journal/ and recovery/ folders,
                                  health/, cache/; never younger than 1 minute)
  cache/config-*.mjs              transpiled configs, except the newest
Never removes a batch, a failed or abandoned batch, a quarantined file (recovery/errors/),
the journal, the id index, metrics.json or a live log.

--age accepts 7d, 12h, 30m, 45s, 500ms or a plain number of milliseconds.
--dry-run lists what would be removed and removes nothing.`,
  options: { age: { type: 'string' }, 'dry-run': { type: 'boolean' } },
  input: AggregateCleanupInput,
  async run(input, ctx) {
    const ageMs = input.age === undefined ? ctx.config.recovery.cleanupAge : parseAge(input.age);
    return withStore(ctx, async (store) => {
      await store.flush();
      return runCleanup(ctx, store.layout, { ageMs, dryRun: input['dry-run'] });
    });
  },
  formatText: (r) =>
    (r.removed.length === 0 ? 'nothing to remove' : `${r.dryRun ? 'would remove' : 'removed'} ${r.removed.length} file(s), ${r.bytesFreed} bytes:\n` + r.removed.map((p) => `  ${p}`).join('\n')) +
    `\nkept ${r.kept}` +
    r.failed.map((f) => `\ncould not remove ${f.path}: ${f.message}`).join(''),
};
