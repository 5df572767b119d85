import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireLock } from '../../src/core/lock.js';
import { LockedError } from '../../src/core/errors.js';
import { runCli } from '../helpers/cli.js';
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

/**
 * A lock directory without a valid owner record: `owner` is owner.json's content (undefined: no
 * file), and the file and folder were last modified `ageMs` ago (ms).
 */
function plantOwnerlessLock(lockDir: string, owner: string | undefined, ageMs: number): void {
  const at = new Date(Date.now() - ageMs);
  fs.mkdirSync(lockDir);
  if (owner !== undefined) {
    fs.writeFileSync(path.join(lockDir, 'owner.json'), owner);
    fs.utimesSync(path.join(lockDir, 'owner.json'), at, at);
  }
  fs.utimesSync(lockDir, at, at);
}

const DAY_MS = 86_400_000;

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

for (const [what, owner, ageMs] of [
  ['an empty owner file, a minute old (a power cut before its data reached the disk)', '', 60_000],
  ['an empty owner file, 2 days old', '', 2 * DAY_MS],
  ['a garbage owner file ("xx{")', 'xx{', 60_000],
  ['an owner file that is JSON but no owner record (null)', 'null', 60_000],
] as const) {
  test(`a store lock with ${what} is taken over: the next aggregate stores its entry in the journal, not the inbox`, (t) => {
    const dir = tempDir(t);
    const at = Date.UTC(2026, 0, 15, 8, 0);
    const entry = (minute: number) => `--entry=${JSON.stringify({ userId: 'u', action: 'w', timestamp: at + minute * 60_000 })}`;
    t.is(runCli(['--data-path=root', 'aggregate', entry(0)], { cwd: dir }).code, 0);
    const lockDir = path.join(dir, 'root/aggregated/journal/store.lock');
    plantOwnerlessLock(lockDir, owner, ageMs);

    const next = runCli(['--data-path=root', 'aggregate', entry(1)], { cwd: dir });
    t.is(next.code, 0);
    t.deepEqual(next.json, { ok: true, action: 'aggregate', result: { accepted: 1, duplicates: 0, pending: 2, batchAgeMs: next.json?.result?.batchAgeMs, flushed: [], failed: [], skipped: [] } });
    t.false(fs.existsSync(lockDir), 'the lock was taken over and released');
    t.deepEqual(fs.existsSync(path.join(dir, 'root/aggregated/inbox')) ? fs.readdirSync(path.join(dir, 'root/aggregated/inbox')) : [], [], 'nothing went to the inbox');

    const force = runCli(['--data-path=root', 'aggregate-force'], { cwd: dir });
    t.is(force.code, 0);
    t.is(force.json.result.flushed.length, 1);
    t.is(force.json.result.flushed[0].entryCount, 2);
    const batch = JSON.parse(fs.readFileSync(path.join(dir, 'root', force.json.result.flushed[0].file), 'utf8'));
    t.deepEqual(
      batch.entries.map((e: { userId: string; action: string; timestamp: number }) => [e.userId, e.action, e.timestamp]),
      [
        ['u', 'w', at],
        ['u', 'w', at + 60_000],
      ],
    );
  });
}

for (const [what, owner] of [
  ['no owner file yet', undefined],
  ['an empty owner file', ''],
] as const) {
  test(`a lock folder just made by a live process (${what}) is not taken over: E_LOCKED says what is wrong and names the folder; once 10 s unchanged it is taken over`, async (t) => {
    const dir = tempDir(t);
    const target = path.join(dir, 'store');
    const lockDir = `${target}.lock`;
    plantOwnerlessLock(lockDir, owner, 0);

    const error = await t.throwsAsync(acquireLock(target, { timeoutMs: 300 }), { instanceOf: LockedError });
    t.is(error?.exitCode, 1);
    t.is(
      error?.message.replace(/\(now \d+ ms\)/, '(now N ms)'),
      `Timed out after 300 ms waiting for the store lock ${lockDir}: its owner file owner.json ${owner === undefined ? 'is missing' : 'is empty'}, so its holder is unknown; ` +
        `the lock is taken over once that file (or the folder, without one) is 10000 ms unchanged (now N ms). ` +
        `If this persists, make sure no provider-bridge process is running and remove the folder ${lockDir}; nothing from this call was written, try again`,
    );
    t.deepEqual(fs.readdirSync(dir), ['store.lock'], 'left in place: no tombstone, no lock of ours');
    t.deepEqual(fs.readdirSync(lockDir), owner === undefined ? [] : ['owner.json']);

    // The same folder, unchanged for longer than the stale threshold (its maker died).
    const old = new Date(Date.now() - 11_000);
    if (owner !== undefined) fs.utimesSync(path.join(lockDir, 'owner.json'), old, old);
    fs.utimesSync(lockDir, old, old);
    const lock = await acquireLock(target, { timeoutMs: 5000 });
    lock.assertHeld();
    t.like(JSON.parse(fs.readFileSync(path.join(lockDir, 'owner.json'), 'utf8')), { pid: process.pid, host: os.hostname() });
    await lock.release();
    t.deepEqual(fs.readdirSync(dir), []);
  });
}

test('an old lock with an empty owner file is taken over by exactly one of several contenders at a time', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  const log = path.join(dir, 'log');
  plantOwnerlessLock(`${target}.lock`, '', 2 * DAY_MS);
  const codes = await Promise.all(Array.from({ length: 6 }, () => contender(target, log, 50)));
  t.deepEqual(codes, new Array(6).fill(0));
  assertNoOverlap(t, log, 6);
  t.deepEqual(fs.readdirSync(dir), ['log'], 'no lock, temp or tombstone directory left');
});

test('a takeover lock left with an empty owner file does not block taking over a dead holder\'s lock', async (t) => {
  const dir = tempDir(t);
  const target = path.join(dir, 'store');
  plantStaleLock(target);
  plantOwnerlessLock(`${target}.lock.takeover`, '', 60_000);
  const lock = await acquireLock(target, { timeoutMs: 5000 });
  lock.assertHeld();
  t.like(JSON.parse(fs.readFileSync(`${target}.lock/owner.json`, 'utf8')), { pid: process.pid, host: os.hostname() });
  await lock.release();
  t.deepEqual(fs.readdirSync(dir), []);
});
