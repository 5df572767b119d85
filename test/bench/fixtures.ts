/**
 * Benchmark fixtures: an isolated environment for git and the CLI, scratch git repositories,
 * NDJSON input files, and stores with a history (batch files + id-index shards + a journal
 * header) or with failed batches, written directly in the store's own formats (see
 * plugins/aggregation/{journal,id-index,batch-store,layout}.ts) so that 10,000 batches take
 * seconds, not an hour of `aggregate` calls. Generated files are cached in the bench folder
 * (`benchRoot()`) under a key that includes a hash of those modules, so a format change
 * regenerates them.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { makeBatch, type FailedBatchFile } from '../../plugins/aggregation/batch-store.js';
import { shardOf } from '../../plugins/aggregation/id-index.js';
import { storeLayout } from '../../plugins/aggregation/layout.js';
import type { Entry } from '../../plugins/aggregation/types.js';
import type { Env } from './harness.js';

/** The project root (holding package.json), found from this compiled file. */
export const PROJECT_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

/** The compiled ESM entry of `provider-bridge` (what runs without the startup snapshot). */
export const CLI = path.join(PROJECT_ROOT, 'dist/src/bridge/cli.js');
/** The `provider-bridge` bin users run: starts the startup snapshot when there is one. */
export const BIN = path.join(PROJECT_ROOT, 'src/bridge/provider-bridge.sh');
/** The startup snapshot `npm run build` makes. */
export const BLOB = path.join(PROJECT_ROOT, 'dist/snapshot/provider-bridge.blob');
export const NODE = process.execPath;

/** Refuses any scratch path inside the project (the bench never writes into the repository). */
export function assertOutsideProject(dir: string): void {
  const real = fs.realpathSync(dir);
  if (real === PROJECT_ROOT || real.startsWith(PROJECT_ROOT + path.sep)) throw new Error(`refusing to use ${real} inside the project ${PROJECT_ROOT}`);
}

/**
 * Environment for every child: the caller's minus `GIT_*`/`FLOWFORGE_*`, with an isolated HOME
 * (no global git config, hooksPath or signing can leak in), C locale, husky off.
 */
export function cleanEnv(home: string): Env {
  const env: Env = {};
  for (const [k, v] of Object.entries(process.env)) {
    const u = k.toUpperCase();
    if (!u.startsWith('GIT_') && !u.startsWith('FLOWFORGE_') && u !== 'NODE_OPTIONS') env[k] = v;
  }
  return { ...env, HOME: home, XDG_CONFIG_HOME: home, GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C', HUSKY: '0' };
}

export interface Repo {
  dir: string;
  git(args: string[]): string;
  /** Changes a file, stages it and commits (untimed helper); returns the new HEAD sha. */
  commit(message: string): string;
}

/** A scratch repository with `commits` commits; the data root is `<dir>/.flowforge` (excluded from git). */
export function makeRepo(dir: string, env: Env, commits = 3): Repo {
  fs.mkdirSync(dir, { recursive: true });
  const git = (args: string[]) => execFileSync('git', args, { cwd: dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  git(['init', '-q', '-b', 'main']);
  git(['config', 'user.name', 'Bench User']);
  git(['config', 'user.email', 'bench@example.com']);
  git(['config', 'commit.gpgsign', 'false']);
  fs.appendFileSync(path.join(dir, '.git/info/exclude'), '.flowforge/\n');
  let n = 0;
  const commit = (message: string): string => {
    n++;
    fs.writeFileSync(path.join(dir, `file-${n % 7}.txt`), `line ${n}\n`.repeat(1 + (n % 13)));
    git(['add', '-A']);
    git(['commit', '-q', '--no-verify', '-m', message]);
    return git(['rev-parse', 'HEAD']);
  };
  for (let i = 0; i < commits; i++) commit(`seed commit ${i}`);
  return { dir, git, commit };
}

// ---- entries ------------------------------------------------------------------------------

/** A normalized entry like a day of real use produces (~190 bytes of JSON). */
export function benchEntry(prefix: string, i: number, t0 = Date.UTC(2024, 0, 8, 9)): Entry {
  return {
    entryId: `${prefix}-${i}`,
    userId: `user-${i % 7}`,
    action: i % 5 === 0 ? 'commit' : 'time-tracking',
    timestamp: t0 + i * 1000,
    metadata: { taskId: `T-${i % 50}`, sessionId: `s-${Math.floor(i / 40)}`, duration: 60_000 + (i % 600) * 1000, branch: 'main' },
  };
}

/**
 * Writes entries `from` ≤ i < `from + n` as NDJSON (in chunks, so 1M entries never sit in one
 * string). Parts of one input written with the same prefix and adjacent ranges have the ids of
 * the whole.
 */
export function writeNdjson(file: string, n: number, prefix: string, from = 0): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const CHUNK = 10_000;
    for (let start = from; start < from + n; start += CHUNK) {
      let text = '';
      for (let i = start; i < Math.min(from + n, start + CHUNK); i++) text += JSON.stringify(benchEntry(prefix, i)) + '\n';
      fs.writeSync(fd, text);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

// ---- the cache ----------------------------------------------------------------------------

/**
 * The folder every scratch store, repository and cached input of the benchmark lives in:
 * `FF_BENCH_DIR` (bench.ts sets it from `--dir`), else `$XDG_CACHE_HOME/flowforge-bench`, else
 * `~/.cache/flowforge-bench`. Created on demand (mode 0700); never inside the repository.
 *
 * Not the OS temp folder: on this machine's ext4 (no journal) a new file's inode is searched
 * for in its parent folder's block group first, skipping inodes freed in the last 30 s (5.5 min
 * while their table block is dirty). `/tmp` is where `npm test` and every other tool create
 * and delete files all day, so creating 2,000 files in a fresh folder there took 180–1,430 ms
 * against 65–67 ms under `/root` or `/work` in the same minute. A user's data root lives in
 * their project (`<project>/.flowforge`), so the figures are measured away from that churn.
 * The benchmark's own clean-up deletes ~30,000 files at its end, so the folder is also marked
 * `chattr +T` (ext2–4 "top of directory hierarchy", best effort): each run's folder is then
 * placed in another block group than the last run's, and a run started minutes after the last
 * one does not create its files among the inodes that one freed.
 */
let benchRootMade: string | undefined;
export function benchRoot(): string {
  const configured = process.env.FF_BENCH_DIR;
  const root = path.resolve(configured !== undefined && configured !== '' ? configured : path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'flowforge-bench'));
  if (root === PROJECT_ROOT || root.startsWith(PROJECT_ROOT + path.sep)) throw new Error(`the bench folder ${root} is inside the repository; choose another with --dir or FF_BENCH_DIR`);
  if (benchRootMade !== root) {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    try {
      execFileSync('chattr', ['+T', root], { stdio: 'ignore' });
    } catch {
      // not ext2–4, or no chattr: run folders may share a block group with the last run's
    }
    benchRootMade = root;
  }
  return root;
}

/**
 * `<bench folder>/cache/<key>`: the key hashes the compiled store-format modules, so stores
 * generated for an older format are never reused.
 */
export function cacheDir(): string {
  const h = createHash('sha256').update('ff-bench-fixtures-v1');
  for (const m of ['journal.js', 'id-index.js', 'batch-store.js', 'layout.js']) {
    h.update(fs.readFileSync(path.join(PROJECT_ROOT, 'dist/plugins/aggregation', m)));
  }
  const dir = path.join(benchRoot(), 'cache', h.digest('hex').slice(0, 16));
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Returns `<cache>/<name>`, building it with `build(tmpPath)` first when absent (atomic rename). */
export function cached(name: string, build: (target: string) => void): { path: string; built: boolean; ms: number } {
  const target = path.join(cacheDir(), name);
  if (fs.existsSync(target)) return { path: target, built: false, ms: 0 };
  const started = performance.now();
  const tmp = `${target}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  build(tmp);
  fs.renameSync(tmp, target);
  return { path: target, built: true, ms: performance.now() - started };
}

// ---- stores -------------------------------------------------------------------------------

const batchIdOf = (ts: number, i: number) => `batch_${String(ts).padStart(13, '0')}_${(i >>> 0).toString(16).padStart(8, '0')}`;

function journalRecord(record: object): string {
  const json = JSON.stringify(record);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

function mkdir700(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/**
 * A data root holding `batches` completed batch files of `perBatch` entries each, every entry id
 * in the id index, and a compacted journal (header only) whose totals count them — what a store
 * looks like after that much history, with nothing pending.
 */
export function generateHistoryStore(dataRoot: string, batches: number, perBatch: number): void {
  const layout = storeLayout(dataRoot);
  for (const d of [layout.aggregated, layout.journal, layout.index]) mkdir700(d);
  const shards = new Map<string, string[]>();
  const t0 = Date.UTC(2025, 0, 1);
  let seq = 0;
  for (let b = 0; b < batches; b++) {
    const ts = t0 + b * 60_000;
    const batchId = batchIdOf(ts, b);
    const entries: Entry[] = [];
    for (let j = 0; j < perBatch; j++) {
      const e = benchEntry('hist', seq++, t0);
      entries.push(e);
      const shard = shardOf(e.entryId);
      let lines = shards.get(shard);
      if (!lines) shards.set(shard, (lines = []));
      lines.push(`${e.entryId}\t${batchId}`);
    }
    fs.writeFileSync(path.join(layout.aggregated, `${batchId}.json`), JSON.stringify(makeBatch(batchId, ts, entries)), { mode: 0o600 });
  }
  for (const [shard, lines] of shards) fs.writeFileSync(path.join(layout.index, `ids-${shard}.tsv`), '\n' + lines.join('\n'), { mode: 0o600 });
  const header = {
    t: 'h',
    committedTo: seq,
    nextSeq: seq + 1,
    totals: { batches, batchEntries: seq, failedBatches: 0, lastFlushAt: t0 + (batches - 1) * 60_000 },
  };
  fs.writeFileSync(path.join(layout.journal, 'journal.log'), journalRecord(header), { mode: 0o600 });
}

/**
 * A data root whose `aggregated/recovery/` holds `count` failed batches of `perBatch` entries in
 * the Failed Batch Format (batch-store.ts FailedBatchFile), all due now, none retried yet.
 */
export function generateRecoveryStore(dataRoot: string, count: number, perBatch: number): void {
  const layout = storeLayout(dataRoot);
  for (const d of [layout.aggregated, layout.journal, layout.recovery]) mkdir700(d);
  const t0 = Date.UTC(2026, 0, 1);
  let seq = 0;
  for (let b = 0; b < count; b++) {
    const ts = t0 + b * 1000;
    const batchId = batchIdOf(ts, 0x10000000 + b);
    const entries: Entry[] = [];
    for (let j = 0; j < perBatch; j++) entries.push(benchEntry('failed', seq++, t0));
    const failed: FailedBatchFile = { ...makeBatch(batchId, ts, entries), failedAt: ts, retryCount: 0, lastRetryAt: null, lastError: 'EIO: simulated by the benchmark', nextRetryAt: ts };
    fs.writeFileSync(path.join(layout.recovery, `${batchId}.failed.json`), JSON.stringify(failed), { mode: 0o600 });
  }
}

/** Copies a cached template store to `dest` (the measured commands mutate it). */
export function copyStore(template: string, dest: string): void {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(template, dest, { recursive: true });
}
