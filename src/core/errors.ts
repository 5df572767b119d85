/**
 * The error tree. Every error the product raises on purpose is a {@link FlowForgeError}
 * with a stable `code`; the host (src/bridge) maps codes to exit codes (SPEC §3):
 * usage/input/config errors exit 2 ("nothing from this call was accepted"), the others exit 1
 * ("everything accepted earlier is still safe").
 */

/**
 * One problem in a rejected input: `path` is a JSON-ish path such as `[3].metadata.duration`.
 * `source`, for an entry read from NDJSON text, names where it was: `--input=f.ndjson:line 5`
 * (1-based physical line), so a problem can be found in the file although `[i]` counts entries.
 */
export interface ErrorDetail {
  path: string;
  message: string;
  value?: unknown;
  source?: string;
}

/** Stable error codes, part of the CLI contract (`error.code` in the JSON output). */
export type ErrorCode =
  | 'E_USAGE'
  | 'E_INPUT'
  | 'E_CONFIG'
  | 'E_RATE_LIMIT'
  | 'E_LOCKED'
  | 'E_CORRUPT'
  | 'E_IO'
  | 'E_GIT'
  | 'E_FLUSH'
  | 'E_SYNC'
  | 'E_INTERNAL';

/** Base error: `code` is stable, `details` lists every problem, `cause` keeps the origin. */
export class FlowForgeError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[];
  /** Exit code the host uses: 2 for caller mistakes, 1 for operational failures. */
  readonly exitCode: 1 | 2;
  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? [];
    this.exitCode = code === 'E_USAGE' || code === 'E_INPUT' || code === 'E_CONFIG' || code === 'E_RATE_LIMIT' ? 2 : 1;
  }
}

/** Thrown for an unknown action/option or a malformed flag value. Exit 2; nothing was accepted. */
export class UsageError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_USAGE', message, options);
  }
}

/** Thrown when entries fail validation; `details` has one item per problem (index + field path). Exit 2. */
export class InputError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_INPUT', message, options);
  }
}

/** Thrown when the config file is invalid (unknown key, bad value). `details` names each key path. Exit 2. */
export class ConfigError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_CONFIG', message, options);
  }
}

/** Thrown when a call would take a user over `rateLimit.entriesPerMinute`. Exit 2; nothing accepted. */
export class RateLimitError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_RATE_LIMIT', message, options);
  }
}

/** Thrown when the store lock could not be taken within its timeout. Exit 1; retry later. */
export class LockedError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_LOCKED', message, options);
  }
}

/** Thrown when a stored file is unreadable in a way that could not be quarantined. Exit 1. */
export class CorruptError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_CORRUPT', message, options);
  }
}

/** Thrown for file-system failures (ENOSPC, EACCES, EIO, EROFS…); message names the path. Exit 1. */
export class IoError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_IO', message, options);
  }
}

/** Thrown when git could not answer (not a repository, git missing). Exit 1. */
export class GitError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_GIT', message, options);
  }
}

/** Thrown by `aggregate-force` when a flush failed every attempt (the batch went to recovery/). Exit 1. */
export class FlushError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_FLUSH', message, options);
  }
}

/**
 * Thrown by `aggregate-sync` when the remote could not be reached or refused the push. Exit 1.
 * What could be done was done first: local batches are committed to the clone's own ref
 * (`details` names it and its commit), so nothing is lost and the next sync pushes them.
 */
export class SyncError extends FlowForgeError {
  constructor(message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super('E_SYNC', message, options);
  }
}
