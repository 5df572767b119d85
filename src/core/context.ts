/**
 * The injected context every handler receives (STYLE §5): clock, paths, config, file port,
 * logger, git and stdin. Handlers never call `Date.now()` or import `node:fs` themselves, so
 * ava tests run them with a fake clock and a temp folder.
 */
import type { ResolvedConfig } from '../config/schema.js';
import type { FsPort } from './fs-port.js';
import type { GitClient } from './git.js';
import type { Logger } from './logger.js';

/** Where standard input goes once it is too long to hold in memory (see HandlerContext.readStdin). */
export interface StdinSink {
  write(chunk: Buffer): void | Promise<void>;
  end(): void | Promise<void>;
}

export interface HandlerContext {
  /** Wall clock, epoch milliseconds. */
  now(): number;
  /** Working directory of the invocation (absolute). */
  cwd: string;
  /** Environment of the invocation (hooks see git's GIT_DIR/GIT_INDEX_FILE here). */
  env: NodeJS.ProcessEnv;
  /** Project root per SPEC §2 (absolute). */
  projectRoot: string;
  /** Data root per SPEC §2 (absolute), e.g. `<project>/.flowforge`. */
  dataRoot: string;
  /** Validated config with defaults. */
  config: ResolvedConfig;
  /** Absolute path of the config file that was loaded, if any. */
  configFile: string | undefined;
  fs: FsPort;
  /** The aggregation log (`logs/aggregation.log`). */
  log: Logger;
  /** A named log, `logs/<name>.log` (e.g. `recovery`); same rotation as `log`. */
  logFor(name: 'aggregation' | 'recovery'): Logger;
  /** A git client for `repoDir` (default: `cwd`). simple-git is loaded on first use only. */
  git(repoDir?: string): Promise<GitClient>;
  /** Waits `ms` milliseconds (backoff); tests pass an instant fake. */
  sleep(ms: number): Promise<void>;
  /**
   * Reads standard input (for `--input=-`). Within `limitBytes` it returns the bytes. Longer
   * input: without `overflow`, undefined (reading stopped there and what was read is dropped);
   * with `overflow` (called once, then), every byte — what was held and the rest — is passed to
   * the sink it returns, in order (each `write` awaited), then `end()`, and `{overflowed: bytes}`
   * is returned. Memory stays bounded by `limitBytes` either way. Errors of the sink propagate.
   * `source`: read that instead of standard input (a pipe or device named by `--input=PATH`).
   */
  readStdin(limitBytes: number, overflow?: () => StdinSink, source?: AsyncIterable<Buffer | string>): Promise<Buffer | { overflowed: number } | undefined>;
}
