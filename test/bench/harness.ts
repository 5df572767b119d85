/**
 * Benchmark harness: whole-process timing, interleaved repetition against a floor, order
 * statistics, a bounded-concurrency process pool and peak-RSS measurement. Nothing here knows
 * about FlowForge; `bench.ts` composes it into the figures of issue 5.
 *
 * Timing is wall-clock `performance.now()` around a whole child process (spawn → exit), the
 * same way for the measured command and for its floor, so the fixed cost of spawning from this
 * process cancels out in the ratio.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export type Env = NodeJS.ProcessEnv;

/** One command line to run as a child process. */
export interface Cmd {
  file: string;
  args: string[];
  cwd: string;
  env: Env;
  /** Bytes for stdin; without it stdin is /dev/null. */
  input?: string | Buffer;
}

export interface RunResult {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `cmd` to completion and times it (wall clock, ms). */
export function runTimed(cmd: Cmd, timeoutMs = 120_000): RunResult {
  const started = performance.now();
  const r = spawnSync(cmd.file, cmd.args, {
    cwd: cmd.cwd,
    env: cmd.env,
    input: cmd.input,
    stdio: [cmd.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  const ms = performance.now() - started;
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (r.error && !timedOut) throw r.error;
  return { ms, code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut };
}

/** Like {@link runTimed} but throws when the process did not exit 0. */
export function runOk(cmd: Cmd, what: string, timeoutMs?: number): RunResult {
  const r = runTimed(cmd, timeoutMs);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).slice(0, 600)}`);
  return r;
}

// ---- statistics ---------------------------------------------------------------------------

const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);

/** Median (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank quantile, q in [0, 1]. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface Summary {
  n: number;
  median: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function summarize(xs: readonly number[]): Summary {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    n: xs.length,
    median: round(median(xs)),
    p90: round(quantile(xs, 0.9)),
    p99: round(quantile(xs, 0.99)),
    min: round(Math.min(...xs)),
    max: round(Math.max(...xs)),
    mean: round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)),
  };
}

// ---- interleaving -------------------------------------------------------------------------

/** One thing measured in an interleaved loop. */
export interface Variant {
  name: string;
  /** Untimed preparation before each timed run (e.g. make a fresh commit). */
  prepare?: () => void;
  /** One timed run; returns milliseconds (and may throw when its result is wrong). */
  run: () => number;
}

/**
 * Runs every variant once per iteration, in an order rotated each iteration (so no variant
 * always runs right after another's disk writes), after `warmup` untimed iterations.
 * Returns the timed samples per variant name.
 */
export function interleave(iterations: number, variants: readonly Variant[], warmup = 1): Record<string, number[]> {
  const samples: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.name, [] as number[]]));
  for (let i = -warmup; i < iterations; i++) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(k + Math.max(0, i)) % variants.length]!;
      variant.prepare?.();
      const ms = variant.run();
      if (i >= 0) samples[variant.name]!.push(ms);
    }
  }
  return samples;
}

// ---- concurrency --------------------------------------------------------------------------

export interface PoolResult {
  wallMs: number;
  runs: Array<{ ms: number; code: number | null; stdout: string; stderr: string }>;
}

/** Runs `total` commands, at most `concurrency` at a time; wall time from first spawn to last exit. */
export function runPool(total: number, concurrency: number, make: (i: number) => Cmd): Promise<PoolResult> {
  return new Promise((resolve, reject) => {
    const runs: PoolResult['runs'] = new Array(total);
    let next = 0;
    let done = 0;
    const started = performance.now();
    const launch = (): void => {
      const i = next++;
      const cmd = make(i);
      const t0 = performance.now();
      const child = spawn(cmd.file, cmd.args, { cwd: cmd.cwd, env: cmd.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (code) => {
        runs[i] = { ms: performance.now() - t0, code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
        done++;
        if (done === total) resolve({ wallMs: performance.now() - started, runs });
        else if (next < total) launch();
      });
    };
    for (let k = 0; k < Math.min(concurrency, total); k++) launch();
  });
}

// ---- peak memory --------------------------------------------------------------------------

export const GNU_TIME = '/usr/bin/time';

export interface RssResult extends RunResult {
  /** Peak resident set size of the measured process, KiB (undefined when it could not be read). */
  peakRssKb: number | undefined;
  /** How the peak was read. */
  rssSource: 'gnu-time' | 'proc-vmhwm' | 'none';
}

/**
 * Runs `cmd` (optionally with a file streamed into its stdin through a pipe) and reads its peak
 * RSS: through GNU `time -v` ("Maximum resident set size") when present, else by polling
 * `/proc/<pid>/status` VmHWM. On timeout the whole process group is killed (it was started
 * detached, in its own group, so only our own processes are hit).
 */
export function runWithPeakRss(cmd: Cmd, opts: { stdinFile?: string; timeoutMs: number }): Promise<RssResult> {
  const useTime = fs.existsSync(GNU_TIME);
  const file = useTime ? GNU_TIME : cmd.file;
  const args = useTime ? ['-v', cmd.file, ...cmd.args] : cmd.args;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { cwd: cmd.cwd, env: cmd.env, stdio: [opts.stdinFile ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.stdinFile) {
      child.stdin!.on('error', () => {}); // EPIPE when the child stops reading early
      fs.createReadStream(opts.stdinFile).pipe(child.stdin!);
    }
    let hwm: number | undefined;
    const poll = useTime
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
            if (m) hwm = Math.max(hwm ?? 0, Number(m[1]));
          } catch {
            /* exited */
          }
        }, 20);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      const stderr = Buffer.concat(err).toString('utf8');
      let peak = hwm;
      if (useTime) {
        const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
        peak = m ? Number(m[1]) : undefined;
      }
      resolve({
        ms: performance.now() - started,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
        timedOut,
        peakRssKb: peak,
        rssSource: peak === undefined ? 'none' : useTime ? 'gnu-time' : 'proc-vmhwm',
      });
    });
  });
}
