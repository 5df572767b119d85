/**
 * The file-system port: the only module that touches `node:fs`. Handlers, the journal and the
 * batch store receive an {@link FsPort} through the context, so tests can inject faults
 * (ENOSPC, EIO, a failing rename…) at any step. All calls are synchronous: every invocation is a
 * short-lived process doing a handful of small writes, where sync I/O is the fastest path.
 *
 * Durability rules (SPEC §5): a file is durable after `fsync` of its descriptor; a create or
 * rename is durable after `fsyncDir` of its parent directory. Directories are created 0700 and
 * files 0600 (SPEC §2).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import writeFileAtomic from 'write-file-atomic';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** Synchronous file operations used by the store. Errors are Node's `ErrnoException`s, unchanged. */
export interface FsPort {
  /** Whole file as a Buffer; throws ENOENT when missing. */
  readFile(file: string): Buffer;
  /** `mkdir -p` with mode 0700; returns nothing, succeeds when it exists. */
  mkdirp(dir: string): void;
  /** Names in a directory (not paths); [] when the directory is missing. */
  readdir(dir: string): string[];
  /** `stat`, or undefined when the path does not exist. */
  stat(file: string): fs.Stats | undefined;
  /** Opens for appending (created 0600); returns a descriptor. */
  openAppend(file: string): number;
  /** Writes the whole buffer at the descriptor's position (loops over short writes). */
  writeAll(fd: number, data: Buffer): void;
  /** fdatasync: the file's data is durable when it returns. */
  fsync(fd: number): void;
  close(fd: number): void;
  /** Truncates a file to `length` bytes and fsyncs it. */
  truncate(file: string, length: number): void;
  /**
   * Writes a whole file atomically and durably: write-file-atomic (temp file, fsync, rename),
   * then an fsync of the parent directory so the rename itself survives a power loss.
   */
  writeFileDurable(file: string, data: string | Buffer): void;
  /** Writes a new file with `wx` (fails with EEXIST), fsyncs it and its directory. */
  createExclusive(file: string, data: string | Buffer): void;
  /** rename + fsync of both parent directories. */
  renameDurable(from: string, to: string): void;
  /** unlink (ignores ENOENT) + fsync of the parent directory. */
  removeDurable(file: string): void;
  /** fsync of a directory, making creates/renames/unlinks in it durable. */
  fsyncDir(dir: string): void;
  /**
   * `statfs` of the file system holding `dir` (Node's `fs.statfsSync`): block size `bsize` in
   * bytes, `blocks` total, `bavail` free for unprivileged users. Used by the health check
   * (disk space of the data root). Throws the errno error (ENOENT when `dir` is missing).
   */
  statfs(dir: string): fs.StatsFs;
}

function fsyncDirReal(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The real port over `node:fs` and write-file-atomic. */
export function createNodeFsPort(): FsPort {
  return {
    readFile: (file) => fs.readFileSync(file),
    mkdirp: (dir) => {
      fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    },
    readdir: (dir) => {
      try {
        return fs.readdirSync(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
    },
    stat: (file) => {
      try {
        return fs.statSync(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    openAppend: (file) => fs.openSync(file, 'a', FILE_MODE),
    writeAll: (fd, data) => {
      let offset = 0;
      while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
    },
    fsync: (fd) => fs.fdatasyncSync(fd),
    close: (fd) => fs.closeSync(fd),
    truncate: (file, length) => {
      const fd = fs.openSync(file, 'r+');
      try {
        fs.ftruncateSync(fd, length);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    writeFileDurable: (file, data) => {
      writeFileAtomic.sync(file, data, { mode: FILE_MODE, fsync: true });
      fsyncDirReal(path.dirname(file));
    },
    createExclusive: (file, data) => {
      const fd = fs.openSync(file, 'wx', FILE_MODE);
      try {
        const buf = typeof data === 'string' ? Buffer.from(data) : data;
        let offset = 0;
        while (offset < buf.length) offset += fs.writeSync(fd, buf, offset, buf.length - offset);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fsyncDirReal(path.dirname(file));
    },
    renameDurable: (from, to) => {
      fs.renameSync(from, to);
      fsyncDirReal(path.dirname(to));
      if (path.dirname(from) !== path.dirname(to)) fsyncDirReal(path.dirname(from));
    },
    removeDurable: (file) => {
      try {
        fs.unlinkSync(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        return;
      }
      fsyncDirReal(path.dirname(file));
    },
    fsyncDir: fsyncDirReal,
    statfs: (dir) => fs.statfsSync(dir),
  };
}
