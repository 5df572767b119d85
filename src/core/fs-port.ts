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
 * Directories are created 0700 and files 0600 (SPEC §2). All calls are synchronous: every
 * invocation is a short-lived process doing a handful of small writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

/**
 * write-file-atomic, loaded on first use with require() (CommonJS: +7 ms per process, against
 * +12 ms for import()), so a call that writes no whole file never pays for it.
 */
let writeFileAtomicSync: typeof import('write-file-atomic').sync | undefined;
function atomicWriteSync(): typeof import('write-file-atomic').sync {
  writeFileAtomicSync ??= (createRequire(import.meta.url)('write-file-atomic') as typeof import('write-file-atomic')).sync;
  return writeFileAtomicSync;
}

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** Single operations; errors are Node's `ErrnoException`s, unchanged. */
export interface FsPrimitives {
  /** Whole file as a Buffer; throws ENOENT when missing. */
  readFile(file: string): Buffer;
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
}

/** What the store uses: the primitives plus the durable compositions. */
export interface FsPort extends FsPrimitives {
  /** `mkdir -p` (0700) that fsyncs the parent of every directory it creates. */
  mkdirp(dir: string): void;
  /** atomicReplace + fsync of the directory: the new content is durable under its name. */
  writeFileDurable(file: string, data: string | Buffer): void;
  /** rename + fsync of both directories. */
  renameDurable(from: string, to: string): void;
  /** unlink (ENOENT ignored) + fsync of the directory. */
  removeDurable(file: string): void;
}

/** Composes the durable operations over `p` (see the module comment for the rules). */
export function withDurability(p: FsPrimitives): FsPort {
  const mkdirp = (dir: string): void => {
    if (p.stat(dir)) return;
    const parent = path.dirname(dir);
    if (parent !== dir) mkdirp(parent);
    try {
      p.mkdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw error;
    }
    p.fsyncDir(parent);
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
  };
}

/** The real primitives over `node:fs` and write-file-atomic. */
export function createNodePrimitives(): FsPrimitives {
  return {
    readFile: (file) => fs.readFileSync(file),
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
  };
}

/** The real port: node:fs primitives with the durable compositions. */
export function createNodeFsPort(): FsPort {
  return withDurability(createNodePrimitives());
}
