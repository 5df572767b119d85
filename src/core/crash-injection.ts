/**
 * Test instrumentation for the crash-torture harness (issue 4): when the environment variable
 * `FLOWFORGE_CRASH_PROBABILITY` or `FLOWFORGE_FAULT_PROBABILITY` is set (a number in [0, 1]),
 * the host wraps the file port so
 * that each mutating call may SIGKILL the process before it, after it, or — for appends — half
 * way through its bytes. This is how the harness lands kills between a batch file's rename and
 * the journal's commit, mid-append and while holding the lock. It is loaded only when the
 * variable is set; normal runs never import it.
 */
import type { FsPort } from './fs-port.js';

const MUTATING: ReadonlySet<keyof FsPort> = new Set(['writeAll', 'fsync', 'writeFileDurable', 'renameDurable', 'removeDurable', 'fsyncDir', 'mkdirp', 'writeFilesDurable', 'appendAllDurable']);

/**
 * Wraps `port`: each mutating call SIGKILLs the process (before, half way, after) with
 * `probability`, and each whole-file write or rename (batch files, failed batches, metrics)
 * fails with EIO before doing anything with `faultProbability` (the
 * `FLOWFORGE_FAULT_PROBABILITY` variable), which drives flushes into retries, parked batches
 * and recovery. `random` in [0, 1) is injectable for tests.
 */
export function withCrashInjection(port: FsPort, probability: number, random: () => number = Math.random, faultProbability = 0): FsPort {
  const die = (): never => {
    process.kill(process.pid, 'SIGKILL');
    throw new Error('unreachable: SIGKILL sent');
  };
  const wrapped = { ...port } as FsPort;
  for (const op of Object.keys(port) as Array<keyof FsPort>) {
    if (!MUTATING.has(op)) continue;
    const original = port[op] as (...args: unknown[]) => unknown;
    (wrapped as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
      if (random() < probability) die();
      if (faultProbability > 0 && (op === 'writeFileDurable' || op === 'renameDurable' || op === 'writeFilesDurable') && random() < faultProbability) {
        throw Object.assign(new Error(`EIO: injected fault on ${op}`), { code: 'EIO', path: typeof args[0] === 'string' ? args[0] : undefined });
      }
      if (op === 'writeAll' && random() < probability) {
        const [fd, data] = args as [number, Buffer];
        port.writeAll(fd, data.subarray(0, Math.max(1, Math.floor(data.length / 2))));
        die();
      }
      const result = original(...args);
      if (random() < probability) die();
      return result;
    };
  }
  return wrapped;
}
