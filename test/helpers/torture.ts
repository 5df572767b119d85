/**
 * The crash-torture harness (issue 4): many concurrent provider-bridge processes append, flush,
 * force, recover and read one data root while the harness SIGKILLs some at random instants and
 * others kill themselves at random durable steps (FLOWFORGE_CRASH_PROBABILITY, see
 * src/core/crash-injection.ts). Every entry id acknowledged (`ok: true` on stdout) is recorded;
 * afterwards one recovery pass and one forced flush must leave every acknowledged id in exactly
 * one place — a batch file, a failed batch or an abandoned batch — and no id anywhere twice.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI } from './cli.js';

export interface TortureOptions {
  /** Folder holding the data root (`<dir>/.flowforge`); must contain a `.git` marker. */
  dir: string;
  /** Processes started at once per wave (≥ 50 for the issue's bar). */
  concurrency: number;
  /** Stop starting waves after this many ms. */
  durationMs: number;
  /** Chance that the harness SIGKILLs a process at a random instant. */
  killProbability: number;
  /** Per durable step chance that a process kills itself there. */
  crashProbability: number;
  /** Per durable step chance of an injected EIO (drives retries, parked batches, recovery). */
  faultProbability: number;
  /** Largest delay before a harness kill, ms. */
  maxKillDelayMs: number;
}

export interface TortureReport {
  waves: number;
  processes: number;
  killedByHarness: number;
  /** Processes that died by SIGKILL (harness or self-inflicted). */
  killed: number;
  exitCodes: Record<string, number>;
  acknowledged: number;
  /** Acknowledged ids found nowhere. Must be 0. */
  lost: string[];
  /** Ids stored in more than one place. Must be 0. */
  duplicated: string[];
  /** For each duplicated id, the files holding it (relative to the data root). */
  duplicatedWhere: Record<string, string[]>;
  stored: number;
  batches: number;
  failedBatches: number;
  finalPending: number;
  /** From the logs: batches parked after failed writes, and recovered by recovery passes. */
  parkedBatches: number;
  recoveredBatches: number;
  wallMs: number;
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
}

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv, killAfterMs?: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    let timer: NodeJS.Timeout | undefined;
    if (killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout });
    });
  });
}

function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_') && !k.startsWith('FLOWFORGE_')) env[k] = v;
  return { ...env, ...extra };
}

/** Every entry id in batch files, failed and abandoned batches, with how many times it is there. */
export function storedIds(dataRoot: string): { counts: Map<string, number>; where: Map<string, string[]>; batches: number; failed: number } {
  const counts = new Map<string, number>();
  const where = new Map<string, string[]>();
  let batches = 0;
  let failed = 0;
  const add = (file: string) => {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries: Array<{ entryId: string }> };
    for (const e of doc.entries) {
      counts.set(e.entryId, (counts.get(e.entryId) ?? 0) + 1);
      where.set(e.entryId, [...(where.get(e.entryId) ?? []), path.relative(dataRoot, file)]);
    }
  };
  const agg = path.join(dataRoot, 'aggregated');
  for (const n of fs.existsSync(agg) ? fs.readdirSync(agg) : []) {
    if (/^batch_\d+_[0-9a-f]+\.json$/.test(n)) {
      add(path.join(agg, n));
      batches++;
    }
  }
  for (const [dir, re] of [
    [path.join(agg, 'recovery'), /\.failed\.json$/],
    [path.join(agg, 'recovery/abandoned'), /\.abandoned\.json$/],
  ] as const) {
    for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (re.test(n)) {
        add(path.join(dir, n));
        failed++;
      }
    }
  }
  return { counts, where, batches, failed };
}

export async function runTorture(options: TortureOptions): Promise<TortureReport> {
  const started = Date.now();
  const { dir } = options;
  const acknowledged = new Set<string>();
  const exitCodes: Record<string, number> = {};
  let waves = 0;
  let processes = 0;
  let killedByHarness = 0;
  let killed = 0;
  let next = 0;
  const ts = Date.now() - 60_000;
  while (Date.now() - started < options.durationMs) {
    waves++;
    const jobs: Array<Promise<void>> = [];
    for (let p = 0; p < options.concurrency; p++) {
      const roll = Math.random();
      let args: string[];
      let ids: string[] = [];
      if (roll < 0.7) {
        // Mostly hook-sized calls; one in seven a bulk call of 10–30 entries, whose whole batches
        // (batchSize 5) go straight to batch files (OpenStore.ingestBulk).
        const n = roll < 0.6 ? 1 + Math.floor(Math.random() * 4) : 10 + Math.floor(Math.random() * 21);
        ids = Array.from({ length: n }, () => `t-${next++}`);
        args = ['aggregate', `--entry=${JSON.stringify(ids.map((id, i) => ({ entryId: id, userId: `u${i % 3}`, action: 'work', timestamp: ts + i })))}`];
      } else if (roll < 0.82) args = ['aggregate-force'];
      else if (roll < 0.92) args = ['aggregate-recover'];
      else args = ['aggregate-status'];
      const harnessKill = Math.random() < options.killProbability;
      const env = cleanEnv({
        ...(Math.random() < 0.5 ? { FLOWFORGE_CRASH_PROBABILITY: String(options.crashProbability) } : {}),
        ...(Math.random() < 0.3 ? { FLOWFORGE_FAULT_PROBABILITY: String(options.faultProbability) } : {}),
      });
      processes++;
      if (harnessKill) killedByHarness++;
      jobs.push(
        run(args, dir, env, harnessKill ? Math.floor(Math.random() * options.maxKillDelayMs) : undefined).then((o) => {
          let key = o.signal ?? String(o.code);
          if (o.code === 1) {
            try {
              key += ` ${(JSON.parse(o.stdout) as { error: { code: string } }).error.code}`;
            } catch {
              /* no JSON */
            }
          }
          exitCodes[key] = (exitCodes[key] ?? 0) + 1;
          if (o.signal === 'SIGKILL') killed++;
          if (o.code === 0 && ids.length > 0) {
            try {
              const doc = JSON.parse(o.stdout) as { ok: boolean };
              if (doc.ok) for (const id of ids) acknowledged.add(id);
            } catch {
              /* killed mid-print: not acknowledged */
            }
          }
        }),
      );
    }
    await Promise.all(jobs);
  }
  // Settle: one recovery pass and one forced flush, without faults.
  const env = cleanEnv({});
  await run(['aggregate-recover'], dir, env);
  const force = await run(['aggregate-force'], dir, env);
  let finalPending = -1;
  try {
    finalPending = (JSON.parse(force.stdout) as { result: { pending: number } }).result.pending;
  } catch {
    /* reported as -1 */
  }
  const { counts, where, batches, failed } = storedIds(path.join(dir, '.flowforge'));
  // Counted from the logs: metrics.json undercounts here, since killed processes never save it.
  const countLines = (file: string, msg: string) =>
    fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).length : 0;
  const logs = path.join(dir, '.flowforge/logs');
  const parkedBatches = countLines(path.join(logs, 'aggregation.log'), 'flush failed; batch parked for recovery');
  const recoveredBatches = countLines(path.join(logs, 'recovery.log'), 'recovered a failed batch');
  const lost = [...acknowledged].filter((id) => !counts.has(id));
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  return {
    waves,
    processes,
    killedByHarness,
    killed,
    exitCodes,
    acknowledged: acknowledged.size,
    lost,
    duplicated,
    duplicatedWhere: Object.fromEntries(duplicated.map((id) => [id, where.get(id) ?? []])),
    stored: counts.size,
    batches,
    failedBatches: failed,
    finalPending,
    parkedBatches,
    recoveredBatches,
    wallMs: Date.now() - started,
  };
}
