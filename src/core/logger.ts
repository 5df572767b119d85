/**
 * Structured logs: JSON lines appended to `<dataRoot>/logs/<name>.log` (SPEC §2). Logging never
 * throws: a log that cannot be written is dropped, because losing a diagnostic must never fail
 * an acknowledged write. One line per call: `{"ts":<epoch ms>,"level":"…","msg":"…",…fields}`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Rotate a log file once it exceeds this many bytes (keeps `<name>.log.1` … `.3`). */
export const LOG_ROTATE_BYTES = 1_048_576;
const LOG_KEEP = 3;

/** `<dataRoot>/.gitignore`: the data root ignores itself, so `git add -A` never commits it. */
export const DATA_ROOT_GITIGNORE = '# FlowForge Aggregation data: never committed\n*\n';

/**
 * A logger appending to `<logsDir>/<name>.log`; `now` is the injected clock (epoch ms). When
 * it creates `logsDir` (a hook that failed before the store was opened, say), it also writes
 * the data root's `.gitignore` ({@link DATA_ROOT_GITIGNORE}) into the parent folder if missing.
 */
export function createFileLogger(logsDir: string, name: string, now: () => number): Logger {
  const file = path.join(logsDir, `${name}.log`);
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    try {
      if (fs.mkdirSync(logsDir, { recursive: true, mode: 0o700 }) !== undefined) {
        try {
          fs.writeFileSync(path.join(path.dirname(logsDir), '.gitignore'), DATA_ROOT_GITIGNORE, { mode: 0o600, flag: 'wx' });
        } catch {
          /* already there, or not writable: the store writes it durably when it opens */
        }
      }
      const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
      if (size > LOG_ROTATE_BYTES) {
        for (let i = LOG_KEEP - 1; i >= 1; i--) {
          try {
            fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`);
          } catch {
            /* missing generation */
          }
        }
        fs.renameSync(file, `${file}.1`);
      }
      const line = JSON.stringify({ ts: now(), level, msg, ...fields }) + '\n';
      fs.appendFileSync(file, line, { mode: 0o600 });
    } catch {
      /* logging is best effort by design */
    }
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that keeps lines in memory (tests). */
export function createMemoryLogger(): Logger & { lines: Array<{ level: LogLevel; msg: string; fields?: Record<string, unknown> }> } {
  const lines: Array<{ level: LogLevel; msg: string; fields?: Record<string, unknown> }> = [];
  const push = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}
