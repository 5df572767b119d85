/**
 * Group commit of whole files (the node primitive behind FsPort `atomicReplaceConcurrent`):
 * many files each replaced atomically — a temp file beside it, written, made durable, renamed
 * over it — with the file system's work overlapped. A bulk import writes 2,000 batch files
 * this way for 100,000 entries.
 *
 * - **In the caller's thread.** A worker thread for the file-system calls' callbacks (~0.1 ms
 *   per file) was tried for a 100k import: no faster on 2 cores (the callbacks' CPU only moved),
 *   and 40 MB more peak memory.
 * - **Durability.** A small group fdatasyncs each temp file before its rename. A group of
 *   `groupTuning.syncfsMinFiles` or more on Linux renames without it and then runs
 *   `sync -f <dir>` (syncfs(2): every file of that file system, data and names) once: on the
 *   benchmark machine 2,000 files of 12 KB took 211–275 ms that way against 264–362 ms with
 *   2,000 fdatasyncs. Should `sync -f` be missing or fail, each file is reopened and fdatasynced
 *   instead. An item is durable when its outcome is `undefined` (its name too, once the caller
 *   fsyncs the directory). A power loss before that may leave a renamed file cut short: the
 *   store's open intent then finds it damaged, and it was never acknowledged.
 * - The steps of write-file-atomic without those a fresh batch file does not need (realpath,
 *   stat/chmod/chown to copy an old file's owner and mode, the exit hook), on plain callbacks
 *   (FileHandle promises cost ~0.1 ms more per file). The temp name has write-file-atomic's
 *   form, so aggregate-cleanup removes one left by a kill.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';

/** Whole-file writes or fsyncs in flight at once in a group. */
export const GROUP_CONCURRENCY = 32;
/** Mode of every file the store creates (SPEC §2). */
export const FILE_MODE = 0o600;
/** A group of at least this many files is made durable with one `sync -f` (Linux). */
export const SYNCFS_MIN_FILES = 64;

/**
 * Module state in one place (STYLE §8): tests lower the threshold to reach each path with a few
 * files, or name another `sync` command, and call {@link resetGroupTuning} afterwards.
 */
export const groupTuning: { syncfsMinFiles: number; syncCommand: string | undefined } = { syncfsMinFiles: SYNCFS_MIN_FILES, syncCommand: undefined };
export function resetGroupTuning(): void {
  groupTuning.syncfsMinFiles = SYNCFS_MIN_FILES;
  groupTuning.syncCommand = undefined;
}

/**
 * One file of a group write: its bytes, or a function returning them, called when the item's
 * turn comes (building the bytes of later files then overlaps the writes of earlier ones).
 */
export interface GroupItem {
  file: string;
  data: string | Buffer | (() => string | Buffer);
}

export const itemData = (item: GroupItem): string | Buffer => (typeof item.data === 'function' ? item.data() : item.data);

/**
 * Replaces every item atomically and durably (see the module comment).
 *
 * @returns per item, `undefined` when it is durable under its name (once the caller fsyncs its
 *   directory), else the error it failed with (a Node errno error: `code`, `path`…)
 */
export async function replaceGroup(items: ReadonlyArray<GroupItem>): Promise<Array<Error | undefined>> {
  const outcome: Array<Error | undefined> = new Array(items.length).fill(undefined);
  if (items.length === 0) return outcome;
  const viaSyncfs = items.length >= groupTuning.syncfsMinFiles && process.platform === 'linux';
  await writeGroup(items, outcome, !viaSyncfs);
  if (viaSyncfs) await syncWritten(items.map((item) => item.file), outcome);
  return outcome;
}

/**
 * Writes and renames every item, at most GROUP_CONCURRENCY at a time: temp file opened exclusive,
 * written, fdatasynced when `fdatasync`, closed, renamed over the target. A failure is recorded
 * in `outcome[i]` and its temp file removed.
 */
function writeGroup(items: ReadonlyArray<GroupItem>, outcome: Array<Error | undefined>, fdatasync: boolean): Promise<void> {
  return new Promise((resolve) => {
    // One random draw per group (a draw per file cost ~14 µs each): distinct within the group.
    const base = randomBytes(4).readUInt32BE(0);
    let next = 0;
    let settled = 0;
    const startNext = (): void => {
      if (next >= items.length) return;
      const i = next++;
      writeOne(i, (error) => {
        if (error) outcome[i] = error;
        if (++settled === items.length) resolve();
        else startNext();
      });
    };
    const writeOne = (i: number, done: (error?: Error) => void): void => {
      const item = items[i]!;
      const tmp = `${item.file}.${(base + i) >>> 0}`;
      const fail = (error: Error, fd?: number): void => {
        const cleanUp = (): void => fs.unlink(tmp, () => done(error));
        if (fd === undefined) cleanUp();
        else fs.close(fd, cleanUp);
      };
      let data: string | Buffer;
      try {
        data = itemData(item);
      } catch (error) {
        done(error as Error);
        return;
      }
      fs.open(tmp, 'wx', FILE_MODE, (openError, fd) => {
        if (openError) return done(openError);
        fs.writeFile(fd, data, (writeError) => {
          if (writeError) return fail(writeError, fd);
          const closeAndRename = (): void =>
            fs.close(fd, (closeError) => {
              if (closeError) return fail(closeError);
              fs.rename(tmp, item.file, (renameError) => (renameError ? fail(renameError) : done()));
            });
          if (!fdatasync) return closeAndRename();
          fs.fdatasync(fd, (syncError) => (syncError ? fail(syncError, fd) : closeAndRename()));
        });
      });
    };
    for (let k = 0; k < Math.min(GROUP_CONCURRENCY, items.length); k++) startNext();
  });
}

/** After a group written without fdatasync: one `sync -f` per directory, else an fdatasync per written file. */
async function syncWritten(files: readonly string[], outcome: Array<Error | undefined>): Promise<void> {
  const written = files.map((file, i) => (outcome[i] === undefined ? file : undefined));
  const dirs = new Set(written.filter((f): f is string => f !== undefined).map((f) => path.dirname(f)));
  let synced = true;
  for (const dir of dirs) if (synced) synced = await syncFileSystem(dir);
  if (!synced) await fdatasyncEach(written, outcome);
}

/**
 * Makes the bytes of existing files durable, as a group write does for its own (one `sync -f`
 * per folder from `groupTuning.syncfsMinFiles` files on Linux, else or on failure an fdatasync
 * of each). For files a killed process renamed into place before its syncfs.
 *
 * @throws the first file's error (ENOENT when it is gone) after all settled
 */
export async function syncExistingFiles(files: readonly string[]): Promise<void> {
  const outcome: Array<Error | undefined> = new Array(files.length).fill(undefined);
  if (files.length >= groupTuning.syncfsMinFiles && process.platform === 'linux') await syncWritten(files, outcome);
  else await fdatasyncEach(files, outcome);
  const failed = outcome.find((e) => e !== undefined);
  if (failed) throw failed;
}

/** coreutils' `sync` by its absolute path where it is (a `sync` earlier on PATH is not trusted), else from PATH. */
let syncPath: string | undefined;
function syncCommand(): string {
  if (groupTuning.syncCommand !== undefined) return groupTuning.syncCommand;
  syncPath ??= ['/usr/bin/sync', '/bin/sync'].find((p) => fs.existsSync(p)) ?? 'sync';
  return syncPath;
}

/** `sync -f <dir>`: syncfs(2) of the file system holding `dir`. Resolves false when it could not run or failed. */
function syncFileSystem(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      execFile(syncCommand(), ['-f', dir], { timeout: 120_000 }, (error) => resolve(!error));
    } catch {
      resolve(false);
    }
  });
}

/** Reopens each named file and fdatasyncs it (GROUP_CONCURRENCY at once); a failure is recorded in `outcome`. */
function fdatasyncEach(files: ReadonlyArray<string | undefined>, outcome: Array<Error | undefined>): Promise<void> {
  const todo = files.flatMap((file, i) => (file === undefined ? [] : [i]));
  if (todo.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let next = 0;
    let settled = 0;
    const finish = (i: number, error: Error | null): void => {
      if (error) outcome[i] = error;
      if (++settled === todo.length) resolve();
      else startNext();
    };
    const startNext = (): void => {
      if (next >= todo.length) return;
      const i = todo[next++]!;
      fs.open(files[i]!, 'r', (openError, fd) => {
        if (openError) return finish(i, openError);
        fs.fdatasync(fd, (syncError) => fs.close(fd, (closeError) => finish(i, syncError ?? closeError)));
      });
    };
    for (let k = 0; k < Math.min(GROUP_CONCURRENCY, todo.length); k++) startNext();
  });
}
