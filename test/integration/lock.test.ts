import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireLock } from '../../src/core/lock.js';
import { LockedError } from '../../src/core/errors.js';
import { PROJECT_ROOT } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/store.js';

const LOCK_JS = path.join(PROJECT_ROOT, 'dist/src/core/lock.js');

/** A contender process: takes the lock, logs start/end with hrtime-free wall ms, holds `holdMs`. */
function contender(target: string, log: string, holdMs: number): Promise<number | null> {
  const script = `
    import { acquireLock } from ${JSON.stringify(LOCK_JS)};
    import { appendFileSync } from 'node:fs';
    const lock = await acquireLock(${JSON.stringify(target)}, { timeoutMs: 20000 });
    appendFileSync(${JSON.stringify(log)}, 'start ' + process.pid + ' ' + performance.timeOrigin + performance.now() + '\\n');
    lock.assertHeld();
    await new Promise((r) => setTimeout(r, ${holdMs}));
    lock.assertHeld();
    appendFileSync(${JSON.stringify(log)}, 'end ' + process.pid + ' ' + (performance.timeOrigin + performance.now()) + '\\n');
    await lock.release();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  return new Promise((resolve) => child.on('exit', resolve));
}

/** Checks the log has strictly alternating start/end pairs of the same pid (no two holders). */
function assertNoOverlap(t: Parameters<typeof tempDir>[0], log: string, expected: number): void {
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
  t.is(lines.length, expected * 2);
  for (let i = 0; i < lines.length; i += 2) {
    t.is(lines[i]![0], 'start');
    t.is(lines[i + 1]![0], 'end');
    t.is(lines[i]![1], lines[i + 1]![1], 'the same process started and ended before anyone else started');
  }
}

/** A lock directory left by a process that no longer exists. */
function plantStaleLock(target: string): number {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(dead.stdout);
  fs.mkdirSync(`${target}.lock`);
  fs.writeFileSync(`${target}.lock/owner.json`, JSON.stringify({ pid, host: os.hostname(), token: 'dead0000dead0000', acquiredAt: 1 }));
  return pid;
}

test('twelve processes contending: each holds the lock alone', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  const log = path.join(dir, 'log');
  const codes = await Promise.all(Array.from({ length: 12 }, () => contender(target, log, 20)));
  t.deepEqual(codes, new Array(12).fill(0));
  assertNoOverlap(t, log, 12);
  t.deepEqual(fs.readdirSync(dir).sort(), ['log'], 'no lock, temp or tombstone directory left');
});

test('a lock left by a SIGKILLed holder is taken over at once, by exactly one of several contenders at a time', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  const log = path.join(dir, 'log');
  plantStaleLock(target);
  const started = Date.now();
  const codes = await Promise.all(Array.from({ length: 6 }, () => contender(target, log, 50)));
  t.deepEqual(codes, new Array(6).fill(0));
  assertNoOverlap(t, log, 6);
  t.true(Date.now() - started < 8000, 'no stale-period wait for a dead pid');
});

test('a real holder SIGKILLed while holding: the next caller gets the lock without waiting for staleness', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `import { acquireLock } from ${JSON.stringify(LOCK_JS)}; await acquireLock(${JSON.stringify(target)}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  holder.kill('SIGKILL');
  await new Promise((r) => holder.on('exit', r));
  const started = Date.now();
  const lock = await acquireLock(target, { timeoutMs: 5000, staleMs: 60_000 });
  t.true(Date.now() - started < 1000);
  lock.assertHeld();
  await lock.release();
  t.false(fs.existsSync(`${target}.lock`));
});

test('a lock taken over mid-operation makes assertHeld throw LockedError, and release leaves the new owner alone', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  const lock = await acquireLock(target);
  lock.assertHeld();
  // Another owner replaces ours (what a wrong stale judgement would do).
  fs.renameSync(`${target}.lock`, path.join(dir, 'moved'));
  fs.mkdirSync(`${target}.lock`);
  fs.writeFileSync(`${target}.lock/owner.json`, JSON.stringify({ pid: process.pid, host: 'x', token: 'someone-else', acquiredAt: 1 }));
  const error = t.throws(() => lock.assertHeld(), { instanceOf: LockedError });
  t.regex(error?.message ?? '', /Lost the store lock/);
  await lock.release();
  t.is(JSON.parse(fs.readFileSync(`${target}.lock/owner.json`, 'utf8')).token, 'someone-else');
});

test('a live holder is never taken over before the timeout: the caller gets LockedError naming the holder', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  const held = await acquireLock(target);
  const error = await t.throwsAsync(acquireLock(target, { timeoutMs: 300 }), { instanceOf: LockedError });
  t.regex(error?.message ?? '', new RegExp(`held by pid ${process.pid}`));
  t.is(error?.exitCode, 1);
  await held.release();
});
