/**
 * A simulated disk for power-loss tests (issue 4 item 2). It implements the file-system
 * primitives in memory and keeps two views: what a running system sees, and what would
 * survive a power cut. Only the primitives that make things durable move changes into the
 * second view:
 * - `fsync(fd)` makes that file's bytes durable (not its name);
 * - `fsyncDir(dir)` makes the names in `dir` durable — files created, replaced, renamed or
 *   unlinked there, and subdirectories created there;
 * - `atomicReplace` models write-file-atomic: the new bytes are fsynced, the rename is not;
 * - `atomicReplaceConcurrent` models group-write.ts: a group smaller than
 *   `groupTuning.syncfsMinFiles` is atomicReplace item by item; a larger one is renamed with its
 *   bytes NOT synced, then one syncfs (a mutating call of its own) makes the group's bytes
 *   durable (not its names);
 * - `syncFilesConcurrent` makes the bytes of existing files durable (not their names).
 * `powerLoss()` throws away everything else; `crashAt` stops the "machine" just before the
 * n-th mutating call, after which every call fails until `reboot()`.
 */
import * as path from 'node:path';
import type { Stats, StatsFs } from 'node:fs';
import { withDurability, type FsPort, type FsPrimitives } from '../../src/core/fs-port.js';
import { groupTuning } from '../../src/core/group-write.js';

interface Inode {
  data: Buffer;
  synced: Buffer;
}

/** Thrown when the simulated machine stops; nothing after it reaches the disk. */
export class MachineStopped extends Error {
  constructor() {
    super('simulated crash');
  }
}

const errno = (code: string, file: string) => Object.assign(new Error(`${code}: ${file}`), { code, path: file });

export class SimulatedDisk {
  private files = new Map<string, Inode>();
  private dirs = new Set<string>();
  private durableFiles = new Map<string, Inode>();
  private durableDirs = new Set<string>();
  private fds = new Map<number, Inode>();
  private nextFd = 100;
  /** Inode numbers for stat's `ino` (a file replaced by a rename has a new one, as on a real disk). */
  private inodeNumbers = new WeakMap<Inode, number>();
  private nextIno = 1;
  private inoOf(inode: Inode): number {
    let ino = this.inodeNumbers.get(inode);
    if (ino === undefined) this.inodeNumbers.set(inode, (ino = this.nextIno++));
    return ino;
  }
  /** Mutating calls made so far. */
  calls = 0;
  /** Stop just before this mutating call (1-based); Infinity never. */
  crashAt = Infinity;
  stopped = false;
  /** Return true to make an atomicReplace of `file` fail with EIO (a failing batch write). */
  failReplace: (file: string) => boolean = () => false;

  constructor(root: string) {
    for (let d = path.resolve(root); ; d = path.dirname(d)) {
      this.dirs.add(d);
      this.durableDirs.add(d);
      if (path.dirname(d) === d) break;
    }
  }

  /** For debugging a failing cut: set to an array to record each mutating call and its callers. */
  trace: string[] | undefined;
  private mutate(what = ''): void {
    if (this.stopped) throw new MachineStopped();
    this.calls++;
    if (this.trace) this.trace.push(`${this.calls} ${what || (new Error().stack ?? '').split('\n').slice(2, 6).map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/(dist\/[^)]*)\)/, '$1')).join(' < ')}`);
    if (this.calls >= this.crashAt) {
      this.stopped = true;
      throw new MachineStopped();
    }
  }

  private read(): void {
    if (this.stopped) throw new MachineStopped();
  }

  private parentMustExist(file: string): void {
    if (!this.dirs.has(path.dirname(file))) throw errno('ENOENT', file);
  }

  /** The power goes out: only durable names and synced bytes remain. */
  powerLoss(): void {
    const alive = (p: string): boolean => {
      for (let d = path.dirname(p); ; d = path.dirname(d)) {
        if (!this.durableDirs.has(d)) return false;
        if (path.dirname(d) === d) return true;
      }
    };
    this.dirs = new Set([...this.durableDirs].filter((d) => path.dirname(d) === d || alive(d)));
    this.durableDirs = new Set(this.dirs);
    this.files = new Map([...this.durableFiles].filter(([p]) => alive(p)));
    this.durableFiles = new Map(this.files);
    for (const inode of this.files.values()) inode.data = Buffer.from(inode.synced);
    this.fds.clear();
  }

  /** The machine starts again (after a process crash, everything written is still there). */
  reboot(): void {
    this.stopped = false;
    this.crashAt = Infinity;
    this.fds.clear();
  }

  primitives(): FsPrimitives {
    return {
      readFile: (file) => {
        this.read();
        const inode = this.files.get(file);
        if (!inode) throw errno(this.dirs.has(file) ? 'EISDIR' : 'ENOENT', file);
        return Buffer.from(inode.data);
      },
      readFileFrom: (file, offset) => {
        this.read();
        const inode = this.files.get(file);
        if (!inode) throw errno(this.dirs.has(file) ? 'EISDIR' : 'ENOENT', file);
        return Buffer.from(inode.data.subarray(offset));
      },
      readdir: (dir) => {
        this.read();
        const names: string[] = [];
        for (const p of [...this.files.keys(), ...this.dirs]) if (path.dirname(p) === dir && p !== dir) names.push(path.basename(p));
        return names.sort();
      },
      stat: (file) => {
        this.read();
        const inode = this.files.get(file);
        const base = { mtimeMs: 0, uid: process.getuid?.() ?? 0, isSymbolicLink: () => false };
        if (inode) return { ...base, ino: this.inoOf(inode), size: inode.data.length, isFile: () => true, isDirectory: () => false } as unknown as Stats;
        if (this.dirs.has(file)) return { ...base, size: 0, isFile: () => false, isDirectory: () => true } as unknown as Stats;
        return undefined;
      },
      lstat: (file) => this.primitives().stat(file),
      realpath: (file) => file,
      statfs: () => ({ type: 0, bsize: 4096, blocks: 1 << 20, bfree: 1 << 19, bavail: 1 << 19, files: 0, ffree: 0 }) as StatsFs,
      mkdir: (dir) => {
        this.mutate();
        if (this.dirs.has(dir) || this.files.has(dir)) throw errno('EEXIST', dir);
        this.parentMustExist(dir);
        this.dirs.add(dir);
      },
      openAppend: (file) => {
        this.mutate();
        let inode = this.files.get(file);
        if (!inode) {
          this.parentMustExist(file);
          inode = { data: Buffer.alloc(0), synced: Buffer.alloc(0) };
          this.files.set(file, inode);
        }
        const fd = this.nextFd++;
        this.fds.set(fd, inode);
        return fd;
      },
      writeAll: (fd, data) => {
        this.mutate();
        const inode = this.fds.get(fd);
        if (!inode) throw errno('EBADF', String(fd));
        inode.data = Buffer.concat([inode.data, data]);
      },
      fsync: (fd) => {
        this.mutate();
        const inode = this.fds.get(fd);
        if (!inode) throw errno('EBADF', String(fd));
        inode.synced = Buffer.from(inode.data);
      },
      close: (fd) => {
        this.fds.delete(fd);
      },
      atomicReplace: (file, data, options) => {
        this.mutate();
        this.parentMustExist(file);
        if (this.failReplace(file)) throw errno('EIO', file);
        const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
        this.files.set(file, { data: bytes, synced: options?.fsync === false ? Buffer.alloc(0) : Buffer.from(bytes) });
      },
      rename: (from, to) => {
        this.mutate();
        const inode = this.files.get(from);
        if (!inode) throw errno('ENOENT', from);
        this.parentMustExist(to);
        this.files.delete(from);
        this.files.set(to, inode);
      },
      createExclusive: (file, data) => {
        this.mutate();
        this.parentMustExist(file);
        if (this.files.has(file)) throw errno('EEXIST', file);
        const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
        this.files.set(file, { data: bytes, synced: Buffer.from(bytes) });
      },
      unlink: (file) => {
        this.mutate();
        if (!this.files.delete(file)) throw errno('ENOENT', file);
      },
      atomicReplaceConcurrent: async (items) => {
        const outcome: Array<Error | undefined> = [];
        const viaSyncfs = items.length >= groupTuning.syncfsMinFiles;
        const written: Inode[] = [];
        for (const item of items) {
          try {
            this.mutate();
            this.parentMustExist(item.file);
            if (this.failReplace(item.file)) throw errno('EIO', item.file);
            const data = typeof item.data === 'function' ? item.data() : item.data;
            const bytes = Buffer.from(data);
            const inode = { data: bytes, synced: viaSyncfs ? Buffer.alloc(0) : Buffer.from(bytes) };
            this.files.set(item.file, inode);
            written.push(inode);
            outcome.push(undefined);
          } catch (error) {
            if (error instanceof MachineStopped) throw error;
            outcome.push(error as Error);
          }
        }
        if (viaSyncfs) {
          this.mutate();
          for (const inode of written) inode.synced = Buffer.from(inode.data);
        }
        return outcome;
      },
      syncFilesConcurrent: async (files) => {
        this.mutate();
        for (const file of files) {
          const inode = this.files.get(file);
          if (!inode) throw errno('ENOENT', file);
          inode.synced = Buffer.from(inode.data);
        }
      },
      fsyncDir: (dir) => {
        this.mutate();
        if (!this.dirs.has(dir)) throw errno('ENOENT', dir);
        for (const p of [...this.durableFiles.keys()]) if (path.dirname(p) === dir && !this.files.has(p)) this.durableFiles.delete(p);
        for (const [p, inode] of this.files) if (path.dirname(p) === dir) this.durableFiles.set(p, inode);
        for (const d of [...this.durableDirs]) if (path.dirname(d) === dir && d !== dir && !this.dirs.has(d)) this.durableDirs.delete(d);
        for (const d of this.dirs) if (path.dirname(d) === dir && d !== dir) this.durableDirs.add(d);
      },
    };
  }

  port(): FsPort {
    return withDurability(this.primitives());
  }

  /** Every file's current content under `dir` (recursive), for checks. */
  filesUnder(dir: string): Array<{ file: string; data: Buffer }> {
    return [...this.files].filter(([p]) => p.startsWith(dir + path.sep)).map(([file, inode]) => ({ file, data: inode.data }));
  }
}

/**
 * Runs `step` on a simulated disk that may stop mid-way: true when it finished, false when the
 * machine stopped during it ({@link MachineStopped}); any other error propagates.
 */
export async function finishedBeforeStop(step: () => Promise<unknown>): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (error) {
    if (!(error instanceof MachineStopped)) throw error;
    return false;
  }
}

/**
 * Entry id → in how many batch, failed and abandoned files under `<dataRoot>/aggregated` it is,
 * on the simulated disk as it is now (every such file must parse).
 */
export function storedEntryCounts(disk: SimulatedDisk, dataRoot: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { file, data } of disk.filesUnder(path.join(dataRoot, 'aggregated'))) {
    if (!/\/aggregated\/(recovery\/(abandoned\/)?)?batch_[^/]+\.(json|failed\.json|abandoned\.json)$/.test(file)) continue;
    for (const e of JSON.parse(data.toString('utf8')).entries as Array<{ entryId: string }>) counts.set(e.entryId, (counts.get(e.entryId) ?? 0) + 1);
  }
  return counts;
}
