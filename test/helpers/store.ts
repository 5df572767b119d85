/**
 * Test helpers: a temp data root with a fake clock and a context built like the host's, a
 * file port that fails on demand, and a guard that refuses to run in the project's own folder.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import * as v from 'valibot';
import { ConfigSchema, type FlowForgeConfigInput } from '../../src/config/schema.js';
import type { HandlerContext } from '../../src/core/context.js';
import { createNodeFsPort, type FsPort } from '../../src/core/fs-port.js';
import { createMemoryLogger } from '../../src/core/logger.js';

/** A settable clock, epoch ms. */
export interface FakeClock {
  now(): number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function createFakeClock(start = Date.UTC(2026, 10, 1, 12, 0, 0)): FakeClock {
  let t = start;
  return { now: () => t, set: (ms) => void (t = ms), advance: (ms) => void (t += ms) };
}

/** Creates a temp folder removed at teardown; throws if it would be inside the project. */
export function tempDir(t: ExecutionContext, prefix = 'ff-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const project = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
  if (dir.startsWith(project + path.sep)) throw new Error(`refusing to use ${dir} inside the project ${project}`);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export type FaultyOp = keyof FsPort;
/** Decides whether a call fails: return an errno code to throw it, or undefined to proceed. */
export type FaultRule = (op: FaultyOp, args: unknown[]) => string | undefined;

/** Wraps the real port; `rule` can make any call throw an ErrnoException with the given code. */
export function createFaultyFsPort(rule: FaultRule): FsPort & { calls: Array<{ op: FaultyOp; file?: string }> } {
  const real = createNodeFsPort();
  const calls: Array<{ op: FaultyOp; file?: string }> = [];
  const wrapped = {} as FsPort & { calls: typeof calls };
  for (const op of Object.keys(real) as FaultyOp[]) {
    (wrapped as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
      calls.push({ op, file: typeof args[0] === 'string' ? args[0] : undefined });
      const code = rule(op, args);
      if (code) throw Object.assign(new Error(`${code}: injected fault on ${op} ${typeof args[0] === 'string' ? args[0] : ''}`), { code, path: typeof args[0] === 'string' ? args[0] : undefined });
      return (real[op] as (...a: unknown[]) => unknown)(...args);
    };
  }
  wrapped.calls = calls;
  return wrapped;
}

export interface TempStore {
  ctx: HandlerContext;
  clock: FakeClock;
  dataRoot: string;
  logs: ReturnType<typeof createMemoryLogger>;
  /** Replace the file port (e.g. with createFaultyFsPort). */
  setFs(port: FsPort): void;
  /** Parsed batch files in aggregated/, sorted by name. */
  batches(): Array<{ batchId: string; entries: Array<{ entryId: string }>; entryCount: number; recovered: boolean; checksum: string }>;
}

/** A temp data root and a handler context over it (fake clock, memory logger, instant sleep). */
export function withTempStore(t: ExecutionContext, config: FlowForgeConfigInput = {}): TempStore {
  const root = tempDir(t);
  const dataRoot = path.join(root, '.flowforge');
  const clock = createFakeClock();
  const logs = createMemoryLogger();
  const ctx: HandlerContext = {
    now: clock.now,
    cwd: root,
    env: {},
    projectRoot: root,
    dataRoot,
    config: v.parse(ConfigSchema, config),
    configFile: undefined,
    fs: createNodeFsPort(),
    log: logs,
    logFor: () => logs,
    git: () => Promise.reject(new Error('no git in this test')),
    sleep: async () => {},
    readStdin: async () => Buffer.alloc(0) as Buffer | undefined,
  };
  return {
    ctx,
    clock,
    dataRoot,
    logs,
    setFs(port) {
      ctx.fs = port;
    },
    batches() {
      const dir = path.join(dataRoot, 'aggregated');
      if (!fs.existsSync(dir)) return [];
      return fs
        .readdirSync(dir)
        .filter((n) => /^batch_.*\.json$/.test(n))
        .sort()
        .map((n) => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')));
    },
  };
}

/** A valid raw entry for user `u` at epoch ms `ts`, with optional extra metadata. */
export function rawEntry(i: number, ts: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { entryId: `id-${i}`, userId: `user-${i % 3}`, action: 'work', timestamp: ts, metadata: { taskId: `T-${i % 5}`, ...extra } };
}
