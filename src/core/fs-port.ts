/**
 * The file-system port: the only module that touches `node:fs` for the store. Handlers, the
 * journal and the batch store receive an {@link FsPort} through the context, so tests can
 * inject faults (ENOSPC, EIO, a failing rename…) at any step, or run the whole store on a
 * simulated disk that loses everything not made durable (test/helpers/power-loss-fs.ts).
 *
 * The port is built in two layers. {@link FsPrimitives} are single file-system operations
 * with no durability of their own; {@link withDurability} composes them into the durable
 * operations the store uses, in one place, for the real disk and for the simulated one alike:
 * - a file's bytes are durable after `fsync` of its descriptor;
 * - a create, rename or unlink is durable after an fsync of the directory holding the name
 *   (both directories for a rename), and a new directory after an fsync of its parent.
 * Directories are created 0700 and files 0600 (SPEC §2). Single-file calls are synchronous
 * (every invocation is a short-lived process doing a handful of small writes); the group
 * operations (writeFilesDurable, appendAllDurable, syncFilesDurable) are async so their
 * file-system work overlaps.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { FILE_MODE, itemData, replaceGroup, syncExistingFiles, type GroupItem } from './group-write.js';

/**
 * write-file-atomic, loaded on first use with require() (CommonJS: +7 ms per process, against
 * +12 ms for import()), so a call that writes no whole file never pays for it.
 */
let writeFileAtomic: typeof import('write-file-atomic') | undefined;
function atomicWriteSync(): typeof import('write-file-atomic').sync {
  writeFileAtomic ??= createRequire(import.meta.url)('write-file-atomic') as typeof import('write-file-atomic');
  return writeFileAtomic.sync;
}

export { GROUP_CONCURRENCY, FILE_MODE, type GroupItem } from './group-write.js';

export const DIR_MODE = 0o700;
/** How many levels of parents mkdirp fsyncs above a directory it finds already there (see FsPort.mkdirp). */
export const EXISTING_DIR_LEVELS = 3;

/** Single operations; errors are Node's `ErrnoException`s, unchanged. */
export interface FsPrimitives {
  /** Whole file as a Buffer; throws ENOENT when missing. */
  readFile(file: string): Buffer;
  /** The file's bytes from byte `offset` to its end (empty when shorter); throws ENOENT when missing. */
  readFileFrom(file: string, offset: number): Buffer;
  /** Names in a directory (not paths); [] when the directory is missing. */
  readdir(dir: string): string[];
  /** `stat`, or undefined when the path does not exist. */
  stat(file: string): fs.Stats | undefined;
  /** `lstat` (a symlink itself, not its target), or undefined when the path does not exist. */
  lstat(file: string): fs.Stats | undefined;
  /** The canonical path (symlinks resolved); throws ENOENT when missing. */
  realpath(file: string): string;
  /**
   * `statfs` of the file system holding `dir` (Node's `fs.statfsSync`): block size `bsize` in
   * bytes, `blocks` total, `bavail` free for unprivileged users. Used by the health check
   * (disk space of the data root). Throws the errno error (ENOENT when `dir` is missing).
   */
  statfs(dir: string): fs.StatsFs;
  /** Creates one directory (mode 0700); throws EEXIST when it exists, ENOENT without a parent. */
  mkdir(dir: string): void;
  /** Opens for appending (created 0600 when missing); returns a descriptor. */
  openAppend(file: string): number;
  /** Writes the whole buffer at the descriptor's position (loops over short writes). */
  writeAll(fd: number, data: Buffer): void;
  /** fdatasync: the file's bytes are durable when it returns (not its name). */
  fsync(fd: number): void;
  close(fd: number): void;
  /**
   * Replaces `file` with `data` atomically with write-file-atomic: a temp file beside it,
   * written, fsynced (unless `fsync: false`), then renamed over `file`. The rename itself is
   * not yet durable.
   */
  atomicReplace(file: string, data: string | Buffer, options?: { fsync?: boolean }): void;
  rename(from: string, to: string): void;
  /** Creates `file` with `data` only if it does not exist (EEXIST otherwise), 0600, fsynced. */
  createExclusive(file: string, data: string | Buffer): void;
  /** unlink; ENOENT propagates. */
  unlink(file: string): void;
  /** fsync of a directory: creates, renames and unlinks in it become durable. */
  fsyncDir(dir: string): void;
  /**
   * Optional group commit: an atomic replace of every item (temp file beside it, written,
   * renamed over it), run concurrently (at most GROUP_CONCURRENCY at once), each item's bytes
   * durable when it settles: an fdatasync per file, or for a large group one syncfs of the file
   * system (group-write.ts). An item's data given as a function is built when its turn comes.
   * Settles every item: resolves to one entry per item, undefined when it succeeded or the
   * error it failed with. Without it, the durable layer runs `atomicReplace` item by item.
   */
  atomicReplaceConcurrent?(items: ReadonlyArray<GroupItem>): Promise<Array<Error | undefined>>;
  /** Optional group commit: `fsync` of every descriptor, concurrently; rejects with the first error after all settled. */
  fsyncConcurrent?(fds: readonly number[]): Promise<void>;
  /**
   * Optional: makes the bytes of existing files durable — one syncfs of their file system for
   * many files (Linux), else an fdatasync of each. Rejects with the first error after all
   * settled. Without it, the durable layer fsyncs each file through `openAppend`.
   */
  syncFilesConcurrent?(files: readonly string[]): Promise<void>;
}

/** What the store uses: the primitives plus the durable compositions. */
export interface FsPort extends FsPrimitives {
  /**
   * `mkdir -p` (0700) that fsyncs the parent of every directory it creates. A directory found
   * already there may have been created by a process killed before it fsynced the parent (a
   * power loss would then undo the directory and every file written into it since): the first
   * time this port meets it, the parents of it and of up to EXISTING_DIR_LEVELS - 1 ancestors
   * are fsynced (a parent that cannot be opened, EACCES/EPERM, ends the walk).
   */
  mkdirp(dir: string): void;
  /** atomicReplace + fsync of the directory: the new content is durable under its name. */
  writeFileDurable(file: string, data: string | Buffer): void;
  /** rename + fsync of both directories. */
  renameDurable(from: string, to: string): void;
  /** unlink (ENOENT ignored) + fsync of the directory. */
  removeDurable(file: string): void;
  /**
   * Group commit of whole files in one directory `dir`: each item replaced atomically with its
   * bytes fsynced (concurrently where the primitives allow), then ONE fsync of `dir`. Resolves
   * to one entry per item: undefined when that file is durable under its name, else the error
   * (when the directory fsync fails, every item that was written gets that error; its new
   * content may still be visible, so a caller checks before writing it elsewhere).
   */
  writeFilesDurable(dir: string, items: ReadonlyArray<GroupItem>): Promise<Array<Error | undefined>>;
  /**
   * Group commit of appends: `data` appended to each file (created 0600 when missing), then all
   * fsynced (concurrently where the primitives allow). Names of newly created files are NOT
   * made durable here (the caller fsyncs their directory). Throws the first error after every
   * descriptor was closed.
   */
  appendAllDurable(items: ReadonlyArray<{ file: string; data: Buffer }>): Promise<void>;
  /**
   * The bytes of files that already exist made durable (not their names: the caller fsyncs
   * their directories) — for files another process wrote and may not have synced, e.g. the
   * batch files of a group write killed before its syncfs. Throws the port's error (ENOENT
   * for a file that is gone).
   */
  syncFilesDurable(files: readonly string[]): Promise<void>;
}

/** Composes the durable operations over `p` (see the module comment for the rules). */
export function withDurability(p: FsPrimitives): FsPort {
  /** Directories whose own name this port made durable (created here, or their parent fsynced). */
  const durableNames = new Set<string>();
  const makeNameDurable = (dir: string): void => {
    for (let d = dir, level = 0; level < EXISTING_DIR_LEVELS && !durableNames.has(d); level++) {
      const parent = path.dirname(d);
      if (parent === d) return;
      try {
        p.fsyncDir(parent);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'EPERM') return;
        throw error;
      }
      durableNames.add(d);
      d = parent;
    }
  };
  const mkdirp = (dir: string): void => {
    if (p.stat(dir)) {
      makeNameDurable(dir);
      return;
    }
    const parent = path.dirname(dir);
    if (parent !== dir) mkdirp(parent);
    try {
      p.mkdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return makeNameDurable(dir);
      throw error;
    }
    p.fsyncDir(parent);
    durableNames.add(dir);
  };
  return {
    ...p,
    mkdirp,
    writeFileDurable(file, data) {
      p.atomicReplace(file, data);
      p.fsyncDir(path.dirname(file));
    },
    renameDurable(from, to) {
      p.rename(from, to);
      p.fsyncDir(path.dirname(to));
      if (path.dirname(from) !== path.dirname(to)) p.fsyncDir(path.dirname(from));
    },
    removeDurable(file) {
      try {
        p.unlink(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      p.fsyncDir(path.dirname(file));
    },
    async writeFilesDurable(dir, items) {
      let outcome: Array<Error | undefined>;
      if (p.atomicReplaceConcurrent) outcome = await p.atomicReplaceConcurrent(items);
      else {
        outcome = items.map((item) => {
          try {
            p.atomicReplace(item.file, itemData(item));
            return undefined;
          } catch (error) {
            return error as Error;
          }
        });
      }
      if (outcome.some((e) => e === undefined)) {
        try {
          p.fsyncDir(dir);
        } catch (error) {
          outcome = outcome.map((e) => e ?? (error as Error));
        }
      }
      return outcome;
    },
    async syncFilesDurable(files) {
      if (files.length === 0) return;
      if (p.syncFilesConcurrent) {
        await p.syncFilesConcurrent(files);
        return;
      }
      for (const file of files) {
        if (!p.stat(file)) throw Object.assign(new Error(`ENOENT: no such file, sync '${file}'`), { code: 'ENOENT', path: file });
        const fd = p.openAppend(file);
        try {
          p.fsync(fd);
        } finally {
          p.close(fd);
        }
      }
    },
    async appendAllDurable(items) {
      const fds: number[] = [];
      try {
        for (const { file, data } of items) {
          const fd = p.openAppend(file);
          fds.push(fd);
          p.writeAll(fd, data);
        }
        if (p.fsyncConcurrent) await p.fsyncConcurrent(fds);
        else for (const fd of fds) p.fsync(fd);
      } finally {
        for (const fd of fds) p.close(fd);
      }
    },
  };
}

/** The real primitives over `node:fs` and write-file-atomic. */
export function createNodePrimitives(): FsPrimitives {
  return {
    readFile: (file) => fs.readFileSync(file),
    readFileFrom: (file, offset) => {
      const fd = fs.openSync(file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const out = Buffer.allocUnsafe(Math.max(0, size - offset));
        let got = 0;
        while (got < out.length) {
          const n = fs.readSync(fd, out, got, out.length - got, offset + got);
          if (n === 0) break;
          got += n;
        }
        return out.subarray(0, got);
      } finally {
        fs.closeSync(fd);
      }
    },
    readdir: (dir) => {
      try {
        return fs.readdirSync(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
    },
    stat: (file) => fs.statSync(file, { throwIfNoEntry: false }),
    lstat: (file) => fs.lstatSync(file, { throwIfNoEntry: false }),
    realpath: (file) => fs.realpathSync(file),
    statfs: (dir) => fs.statfsSync(dir),
    mkdir: (dir) => fs.mkdirSync(dir, { mode: DIR_MODE }),
    openAppend: (file) => fs.openSync(file, 'a', FILE_MODE),
    writeAll: (fd, data) => {
      let offset = 0;
      while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
    },
    fsync: (fd) => fs.fdatasyncSync(fd),
    close: (fd) => fs.closeSync(fd),
    atomicReplace: (file, data, options) => atomicWriteSync()(file, data, { mode: FILE_MODE, fsync: options?.fsync ?? true }),
    rename: (from, to) => fs.renameSync(from, to),
    createExclusive: (file, data) => {
      const fd = fs.openSync(file, 'wx', FILE_MODE);
      try {
        const bytes = typeof data === 'string' ? Buffer.from(data) : data;
        let offset = 0;
        while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    unlink: (file) => fs.unlinkSync(file),
    fsyncDir: (dir) => {
      const fd = fs.openSync(dir, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    atomicReplaceConcurrent: (items) => replaceGroup(items),
    syncFilesConcurrent: (files) => syncExistingFiles(files),
    fsyncConcurrent: async (fds) => {
      const results = await Promise.allSettled(fds.map((fd) => new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())))));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}

/** The real port: node:fs primitives with the durable compositions. */
export function createNodeFsPort(): FsPort {
  return withDurability(createNodePrimitives());
}
