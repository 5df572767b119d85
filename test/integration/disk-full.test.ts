/**
 * Disk full and read-only on a real, small file system (a 256 KiB tmpfs mounted for the test;
 * needs root, as on CI — elsewhere the test is skipped and says so). `aggregate` must exit 1
 * naming the data root, keep every acknowledged entry, and resume once space is back.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { storedIds } from '../helpers/torture.js';
import { tempDir } from '../helpers/store.js';

function tryMount(dir: string): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'tmpfs', dir]).status === 0;
}

const probe = fs.mkdtempSync('/tmp/ff-mount-probe-');
const canMount = tryMount(probe);
if (canMount) execFileSync('umount', [probe]);
fs.rmdirSync(probe);

/** A fresh 256 KiB tmpfs holding a `.git` marker (the project root), unmounted at teardown. */
function smallDisk(t: Parameters<typeof tempDir>[0]): string {
  const mnt = path.join(tempDir(t), 'mnt');
  fs.mkdirSync(mnt);
  t.true(tryMount(mnt));
  t.teardown(() => spawnSync('umount', ['-l', mnt]));
  fs.mkdirSync(path.join(mnt, '.git'));
  return mnt;
}

const entry = (i: number) => JSON.stringify({ entryId: `full-${i}`, userId: 'ana', action: 'work', timestamp: Date.now() - 1000, metadata: { note: 'x'.repeat(200) } });

(canMount ? test.serial : test.serial.skip)('a full disk: exit 1 naming the data root, acknowledged entries intact, everything resumes with space', (t) => {
  const mnt = smallDisk(t);
  const cwd = mnt;
  const acked: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = runCli(['aggregate', `--entry=${entry(i)}`], { cwd });
    t.is(r.code, 0);
    acked.push(`full-${i}`);
  }
  // Fill what is left.
  const filler = path.join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
  } catch (error) {
    t.is((error as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const failed = runCli(['aggregate', `--entry=${entry(99)}`], { cwd });
  t.is(failed.code, 1);
  t.is(failed.json.ok, false);
  t.true(['E_IO', 'E_LOCKED'].includes(failed.json.error.code));
  t.true(failed.json.error.message.includes(path.join(mnt, '.flowforge')), failed.json.error.message);
  // Space is back: the acknowledged entries are all there, once; new work goes through.
  fs.rmSync(filler);
  const again = runCli(['aggregate', `--entry=${entry(5)}`], { cwd });
  t.is(again.code, 0);
  acked.push('full-5');
  const force = runCli(['aggregate-force'], { cwd });
  t.is(force.code, 0);
  const { counts } = storedIds(path.join(mnt, '.flowforge'));
  for (const id of acked) t.is(counts.get(id), 1, id);
  t.true((counts.get('full-99') ?? 0) <= 1);
});

(canMount ? test.serial : test.serial.skip)('a read-only file system: exit 1 naming the data root; resumes after remount', (t) => {
  const mnt = smallDisk(t);
  t.is(runCli(['aggregate', `--entry=${entry(1)}`], { cwd: mnt }).code, 0);
  execFileSync('mount', ['-o', 'remount,ro', mnt]);
  const r = runCli(['aggregate', `--entry=${entry(2)}`], { cwd: mnt });
  t.is(r.code, 1);
  t.is(r.json.error.code, 'E_IO');
  t.regex(r.json.error.message, /EROFS/);
  t.true(r.json.error.message.includes(path.join(mnt, '.flowforge')));
  execFileSync('mount', ['-o', 'remount,rw', mnt]);
  t.is(runCli(['aggregate', `--entry=${entry(3)}`], { cwd: mnt }).code, 0);
  t.is(runCli(['aggregate-force'], { cwd: mnt }).code, 0);
  const { counts } = storedIds(path.join(mnt, '.flowforge'));
  t.deepEqual([...counts.keys()].sort(), ['full-1', 'full-3']);
});
