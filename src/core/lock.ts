/**
 * Cross-process mutual exclusion for one data root (SPEC §5), through proper-lockfile: an
 * atomic `mkdir` of `<file>.lock` whose mtime the holder refreshes; a lock not refreshed for
 * `staleMs` (a holder that was SIGKILLed) is taken over. proper-lockfile is loaded lazily.
 *
 * A compromised lock (our lock directory was removed or taken over while we held it) must never
 * surface as an uncaught exception from proper-lockfile's timer: we record it, and
 * {@link StoreLock.assertHeld} throws {@link LockedError} before the next durable step, so the
 * operation aborts cleanly and nothing half-done is committed.
 */
import { LockedError } from './errors.js';

export interface StoreLock {
  /** Throws LockedError when the lock was compromised since it was taken. */
  assertHeld(): void;
  release(): Promise<void>;
}

export interface LockOptions {
  /** Give up after this long, milliseconds (default 10 000). */
  timeoutMs?: number;
  /** A lock not refreshed for this long is stale and taken over, milliseconds (default 5 000, min 2 000). */
  staleMs?: number;
}

/**
 * Takes the lock on `file` (the file itself need not exist). Throws LockedError naming the
 * lock path after `timeoutMs`; rethrows other errors (EACCES, EROFS…) unchanged.
 */
export async function acquireLock(file: string, options: LockOptions = {}): Promise<StoreLock> {
  const lockfile = (await import('proper-lockfile')).default;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = Math.max(2_000, options.staleMs ?? 5_000);
  let compromised: Error | undefined;
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (;;) {
    try {
      const release = await lockfile.lock(file, {
        realpath: false,
        stale: staleMs,
        update: Math.floor(staleMs / 2),
        retries: 0,
        onCompromised: (error) => {
          compromised = error;
        },
      });
      return {
        assertHeld() {
          if (compromised) throw new LockedError(`Lost the store lock ${file}.lock while working: ${compromised.message}`, { cause: compromised });
        },
        async release() {
          try {
            await release();
          } catch (error) {
            // Already released or compromised: nothing of ours is left to clean.
            if (!compromised) compromised = error as Error;
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
      if (Date.now() >= deadline) {
        throw new LockedError(`Timed out after ${timeoutMs} ms waiting for the store lock ${file}.lock (another provider-bridge is working on this data root)`, { cause: error });
      }
      // Jittered backoff keeps 50 contenders from waking in lock-step.
      await new Promise((resolve) => setTimeout(resolve, wait + Math.random() * wait));
      wait = Math.min(wait * 2, 50);
    }
  }
}
