/**
 * Names of the files the maintenance actions (`aggregate-validate`, `aggregate-cleanup`) look
 * for. Pure: nothing here touches the disk.
 */
import type { StoreLayout } from './layout.js';

/**
 * A write-file-atomic temp file: `<target name>.<uint32 in decimal>` (write-file-atomic 7
 * `getTmpname`: `filename + '.' + sha1(...).readUInt32BE(0)`), left behind when a process was
 * killed between its write and its rename. Only targets the store writes atomically count
 * (`.json`, `.log`, `.bad`, `.mjs`, `.orig`, the originals kept by `aggregate-migrate`, and
 * `.tsv`, index shards an index rebuild writes as `ids-<xx>.tsv.<pid>` before renaming them), so a rotated log `aggregation.log.1` in `logs/` is never
 * taken for one (logs/ is not searched for temp files anyway).
 */
export const TEMP_FILE_PATTERN = /^.+\.(?:json|log|bad|mjs|orig|tsv)\.\d{1,10}$/;

/** A health snapshot `health-<epoch ms>.json` in `health/`. */
export const HEALTH_SNAPSHOT_PATTERN = /^health-\d+\.json$/;

/** A rotated log `<name>.log.<N>` in `logs/` (the live `<name>.log` never matches). */
export const ROTATED_LOG_PATTERN = /^[^/]+\.log\.\d+$/;

/** A transpiled `.ts` config `config-<hex>.mjs` in `cache/` (see src/config/load.ts). */
export const CONFIG_CACHE_PATTERN = /^config-[0-9a-f]+\.mjs$/;

/** Scratch copies of a large stdin (`cache/stdin-<pid>-<hex>.ndjson`) left by a killed `aggregate --input=-`. */
export const STDIN_SPOOL_PATTERN = /^stdin-\d+-[0-9a-f]{8}\.ndjson$/;

/**
 * Folders where the store writes files atomically and a killed process can leave a temp file:
 * `aggregated/` (batches, metrics.json), `aggregated/journal/` (compaction),
 * `aggregated/recovery/`, `recovery/abandoned/` and `recovery/migrated/`, `aggregated/index/`
 * (an index rebuild), `health/`, `cache/`. `recovery/errors/` is
 * left out on purpose: everything there is quarantined and only a human removes it.
 */
export function tempFileDirs(layout: StoreLayout): string[] {
  return [layout.aggregated, layout.journal, layout.recovery, layout.abandoned, layout.migrated, layout.index, layout.health, layout.cache];
}
