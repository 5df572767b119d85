/**
 * Cross-process mutual exclusion for one data root (SPEC §5).
 *
 * Why our own and not proper-lockfile: the lock is part of the exactly-once guarantee, and
 * proper-lockfile (a) judges staleness by mtime only, so every SIGKILLed holder stalls all
 * callers for the whole stale period, (b) has a known takeover race in which two contenders
 * both remove the stale lock and both "win", and (c) removes its lock directory with `rmdir`,
 * which rules out an owner record inside it. See ../../../shared/DEPENDENCIES.md.
 *
 * Protocol (all steps are single atomic file-system operations):
 * - The lock is the directory `<file>.lock/` holding `owner.json`
 *   `{pid, host, token, acquiredAt}`. To acquire, a contender builds `<file>.lock.<token>.tmp/`
 *   with its owner record, then `rename`s it onto `<file>.lock`: rename onto an existing
 *   non-empty directory fails, so exactly one contender wins and the owner record is never
 *   missing. A contender renames only when it saw no `<file>.lock` (rename would replace an
 *   empty directory). The record is not fsynced before the rename: that cost 2–3 ms per
 *   acquisition (measured on ext4: ~1 ms → 3.5–4.5 ms per acquire + release), on every hook
 *   call and at every hand-over under contention while the lock sits free, and making it
 *   durable would also need an fsync of the temp directory. A power cut can therefore publish
 *   a lock whose `owner.json` is empty or missing; no process survives a power cut, and such a
 *   lock is reclaimed by the ownerless rule below (by then it is normally older than `staleMs`).
 * - Stale: the owner is on this host and its pid is gone (checked with signal 0) — a live
 *   holder on this host is never overtaken, however long a loaded machine stalls it — or its
 *   `owner.json` was not refreshed for `staleMs` (another host) or `10 × staleMs` (a pid reused
 *   by an unrelated process).
 * - Ownerless: a lock directory whose `owner.json` is missing, empty, not JSON, not an owner
 *   record or not readable (a power cut, a disk error, a hand-made folder) names no pid to
 *   check, so it is judged like an owner on another host: stale once `owner.json` — or the
 *   directory itself when there is no file — was not modified for `staleMs`. Our own contenders
 *   never publish a lock without its record (the rename above), so a young ownerless folder is
 *   someone else's lock being made by hand (mkdir, then write): it is left alone, never renamed
 *   over, until it is that old. A live holder heartbeats its file, so it never looks that old;
 *   and a holder whose record became unreadable already fails its next assertHeld (it cannot
 *   read its token), so taking its lock over cannot make a second writer.
 * - Takeover: under a second lock `<file>.lock.takeover/`, re-check that the lock still belongs
 *   to the stale owner, rename it to a unique tombstone, delete it, and compete again.
 * - While held, a heartbeat (an unref'd timer, plus every {@link StoreLock.assertHeld}) touches
 *   `owner.json`; `assertHeld` re-reads the owner token before each durable step, so a holder
 *   whose lock was taken over aborts (LockedError) instead of writing as a second writer.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v from 'valibot';
import { LockedError } from './errors.js';

export interface StoreLock {
  /**
   * Throws LockedError (with `compromised: true`) when this process no longer owns the lock
   * (taken over or removed).
   */
  assertHeld(): void;
  /** Releases the lock if still ours; never throws. */
  release(): Promise<void>;
}

export interface LockOptions {
  /**
   * Give up after this long, milliseconds (default 30 000: under heavy contention a caller
   * waits rather than losing its entries; an uncontended lock is taken in microseconds).
   */
  timeoutMs?: number;
  /**
   * An owner record from another host not refreshed for this long is stale, and so is a lock
   * directory without a valid owner record not modified for this long, milliseconds (default
   * 10 000; on this host a dead pid is stale at once, a live one after 10 × this).
   */
  staleMs?: number;
}

/** `owner.json`: pid and host of the holder, its random token, acquiredAt in epoch ms. */
const OwnerRecordSchema = v.object({ pid: v.number(), host: v.string(), token: v.string(), acquiredAt: v.number() });
type OwnerRecord = v.InferOutput<typeof OwnerRecordSchema>;

const OWNER = 'owner.json';

/** The owner record of lock directory `dir` and its file's mtime (epoch ms); undefined when there is none or it is not valid. */
function readOwner(dir: string): { owner: OwnerRecord; mtimeMs: number } | undefined {
  try {
    const file = path.join(dir, OWNER);
    const owner: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!v.is(OwnerRecordSchema, owner)) return undefined;
    return { owner, mtimeMs: fs.statSync(file).mtimeMs };
  } catch {
    return undefined;
  }
}

/**
 * An existing lock directory without a valid owner record: what is wrong with `owner.json`
 * (for messages), and the last sign of life, epoch ms — the mtime of `owner.json`, or of the
 * directory when the file is missing.
 */
interface Ownerless {
  problem: string;
  mtimeMs: number;
}

/**
 * Looks at lock directory `dir` whose owner record {@link readOwner} could not return. Undefined
 * when `dir` is gone meanwhile (released) or holds a valid record again (only a caller racing a
 * release and a fresh acquisition sees that).
 */
function inspectOwnerless(dir: string): Ownerless | undefined {
  const file = path.join(dir, OWNER);
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    try {
      return { problem: code === 'ENOENT' ? 'is missing' : `cannot be read (${code})`, mtimeMs: fs.statSync(dir).mtimeMs };
    } catch {
      return undefined;
    }
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    return { problem: `cannot be read (${(error as NodeJS.ErrnoException).code})`, mtimeMs };
  }
  if (text.length === 0) return { problem: 'is empty', mtimeMs };
  if (readOwner(dir)) return undefined;
  return { problem: 'is not a valid owner record', mtimeMs };
}

/** Whether an ownerless lock directory is stale: not modified for `staleMs` (ms), as an owner on another host. */
const ownerlessStale = (found: Ownerless, staleMs: number): boolean => Date.now() - found.mtimeMs > staleMs;

/** True when `pid` is a live process on this host (EPERM: alive, someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const removeTree = (dir: string) => fs.rmSync(dir, { recursive: true, force: true });

/**
 * Creates directory `dir` holding `owner.json` atomically: the record is written into a private
 * temp directory which is then renamed onto `dir`. Rename onto an existing non-empty directory
 * fails, so exactly one of any number of callers succeeds. Returns false when `dir` exists.
 */
function createOwned(dir: string, record: OwnerRecord): boolean {
  const tmp = `${dir}.${record.token}.tmp`;
  fs.mkdirSync(tmp, { mode: 0o700 });
  try {
    fs.writeFileSync(path.join(tmp, OWNER), JSON.stringify(record), { mode: 0o600 });
    fs.renameSync(tmp, dir);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    removeTree(tmp);
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Whether an owner record is stale: on this host, only when its process is gone (a live holder
 * is never overtaken, however slow a loaded machine makes it), or when it was not refreshed for
 * `10 × staleMs` (a pid reused by an unrelated process); on another host, when it was not
 * refreshed for `staleMs`.
 */
function isStale(owner: OwnerRecord, mtimeMs: number, host: string, staleMs: number): boolean {
  const age = Date.now() - mtimeMs;
  if (owner.host !== host) return age > staleMs;
  if (owner.pid === process.pid) return false;
  return !pidAlive(owner.pid) || age > 10 * staleMs;
}

/**
 * Takes the lock `<file>.lock` (the file itself need not exist). Throws LockedError naming the
 * lock after `timeoutMs` — naming its holder (pid, host), or, for a lock directory without a
 * valid owner record, saying what is wrong with `owner.json` and how long until it is taken
 * over; rethrows other file-system errors (EACCES, EROFS, ENOSPC…) unchanged.
 */
export async function acquireLock(file: string, options: LockOptions = {}): Promise<StoreLock> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const staleMs = options.staleMs ?? 10_000;
  const lockDir = `${file}.lock`;
  const token = randomBytes(8).toString('hex');
  const host = os.hostname();
  const deadline = Date.now() + timeoutMs;
  let wait = 1;

  for (;;) {
    // A held lock is only looked at (one stat, one read): trying to create it would cost a
    // directory, a file, a failed rename and their removal on every poll of every waiter,
    // which under 50-way contention was a large share of each caller's CPU time.
    const exists = fs.existsSync(lockDir);
    let current = exists ? readOwner(lockDir) : undefined;
    if (!exists) {
      if (createOwned(lockDir, { pid: process.pid, host, token, acquiredAt: Date.now() })) {
        sweepLeftovers(lockDir);
        return holdLock(lockDir, token, staleMs);
      }
      current = readOwner(lockDir);
    }
    // Only a lock directory without a valid record costs the extra look (stats, a read).
    const ownerless = current ? undefined : inspectOwnerless(lockDir);
    if (current ? isStale(current.owner, current.mtimeMs, host, staleMs) : ownerless && ownerlessStale(ownerless, staleMs)) {
      // Compete again at once, unless another contender's takeover is under way: then wait
      // like any waiter (retrying at once would spin, never yielding nor reaching the deadline).
      if (takeOver(lockDir, current?.owner.token, { pid: process.pid, host, token, acquiredAt: Date.now() }, staleMs)) continue;
    }
    if (exists && !current && !ownerless && Date.now() < deadline) continue; // released between our looks
    if (Date.now() >= deadline) {
      const held = current
        ? ` (held by pid ${current.owner.pid} on ${current.owner.host})`
        : ownerless
          ? `: its owner file ${OWNER} ${ownerless.problem}, so its holder is unknown; the lock is taken over once that file (or the folder, without one) is ${staleMs} ms unchanged` +
            ` (now ${Math.max(0, Math.round(Date.now() - ownerless.mtimeMs))} ms). If this persists, make sure no provider-bridge process is running and remove the folder ${lockDir}`
          : '';
      throw new LockedError(`Timed out after ${timeoutMs} ms waiting for the store lock ${lockDir}${held}; nothing from this call was written, try again`);
    }
    // Jittered backoff keeps many contenders from waking in lock-step.
    await new Promise((resolve) => setTimeout(resolve, wait + Math.random() * wait));
    wait = Math.min(wait * 2, 25);
  }
}

/** Age after which a contender's temp, tombstone or released directory is debris, ms. */
export const LEFTOVER_AGE_MS = 60_000;

/**
 * Removes `<lock>.<token>.tmp`, `.stale.<token>` and `.released.<token>` directories that a
 * killed contender left behind (older than LEFTOVER_AGE_MS). Best effort, run by the new holder.
 */
function sweepLeftovers(lockDir: string): void {
  const dir = path.dirname(lockDir);
  const prefix = `${path.basename(lockDir)}.`;
  try {
    for (const name of fs.readdirSync(dir)) {
      if (!name.startsWith(prefix)) continue;
      const full = path.join(dir, name);
      if (Date.now() - fs.statSync(full).mtimeMs > LEFTOVER_AGE_MS) removeTree(full);
    }
  } catch {
    /* debris only */
  }
}

/**
 * Removes a stale lock, serialised by a second lock, `<lock>.takeover/`: only its holder may
 * remove the main lock, and only after re-reading that it still belongs to the stale owner
 * judged by the caller (`staleToken`; undefined: still ownerless and still stale). Without it,
 * two contenders that both judged the same owner stale could each remove "the lock" by path —
 * the second removing a fresh owner's lock. A takeover lock whose holder died, or that has no
 * valid owner record and is stale by the same rule as the main lock, is itself removed (by
 * rename to a tombstone, then checked). Returns false when a live (or not yet stale) contender
 * holds the takeover lock, so nothing changed; true otherwise.
 */
function takeOver(lockDir: string, staleToken: string | undefined, self: OwnerRecord, staleMs: number): boolean {
  const mutex = `${lockDir}.takeover`;
  if (!createOwned(mutex, self)) {
    const holder = readOwner(mutex);
    const ownerless = holder ? undefined : inspectOwnerless(mutex);
    if (!holder && !ownerless) return true; // released meanwhile
    if (holder ? isStale(holder.owner, holder.mtimeMs, self.host, staleMs) : ownerless && ownerlessStale(ownerless, staleMs)) {
      removeIfOwnedBy(mutex, holder?.owner.token, self.token);
      return true;
    }
    return false;
  }
  try {
    const current = readOwner(lockDir);
    const ownerless = current ? undefined : inspectOwnerless(lockDir);
    if (staleToken === undefined ? ownerless && ownerlessStale(ownerless, staleMs) : current?.owner.token === staleToken) {
      removeIfOwnedBy(lockDir, staleToken, self.token);
    }
  } finally {
    removeIfOwnedBy(mutex, self.token, self.token);
  }
  return true;
}

/**
 * Renames `dir` to a tombstone and deletes it if it held `ownerToken`'s record (or, for
 * `ownerToken` undefined, no valid record); else puts it back.
 */
function removeIfOwnedBy(dir: string, ownerToken: string | undefined, token: string): void {
  const tomb = `${dir}.stale.${token}`;
  try {
    fs.renameSync(dir, tomb);
  } catch {
    return; // gone already
  }
  const moved = readOwner(tomb);
  if (moved && moved.owner.token !== ownerToken) {
    try {
      fs.renameSync(tomb, dir);
      return;
    } catch {
      /* replaced meanwhile: the displaced owner's assertHeld fails before it writes */
    }
  }
  try {
    removeTree(tomb);
  } catch {
    /* the lock is free already; a tombstone we may not delete (EACCES) is left to sweepLeftovers */
  }
}

function holdLock(lockDir: string, token: string, staleMs: number): StoreLock {
  const ownerFile = path.join(lockDir, OWNER);
  let released = false;
  let lastTouch = Date.now();
  const touch = () => {
    const now = new Date();
    fs.utimesSync(ownerFile, now, now);
    lastTouch = now.getTime();
  };
  const heartbeat = setInterval(() => {
    try {
      if (readOwner(lockDir)?.owner.token === token) touch();
    } catch {
      /* assertHeld reports it */
    }
  }, Math.max(250, Math.floor(staleMs / 3)));
  heartbeat.unref();
  return {
    assertHeld() {
      const current = readOwner(lockDir);
      if (released || current?.owner.token !== token) {
        throw Object.assign(new LockedError(`Lost the store lock ${lockDir} while working (it was taken over or removed); the operation stopped before its next write`), { compromised: true });
      }
      if (Date.now() - lastTouch > staleMs / 3) touch();
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      try {
        if (readOwner(lockDir)?.owner.token !== token) return;
        // Rename first, so the lock never exists without its owner record.
        const gone = `${lockDir}.released.${token}`;
        fs.renameSync(lockDir, gone);
        removeTree(gone);
      } catch {
        /* nothing of ours left to clean */
      }
    },
  };
}
