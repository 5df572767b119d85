/**
 * The real file port's group write (writeFilesDurable over atomicReplaceConcurrent): what a bulk
 * ingest relies on for its batch files.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { groupTuning, resetGroupTuning } from '../../src/core/group-write.js';
import { TEMP_FILE_PATTERN } from '../../plugins/aggregation/store-files.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ff-fs-port-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('group write: every file has its bytes (data given or built on its turn), mode 0600, no temp file left', async (t) => {
  const dir = tempDir(t);
  const port = createNodeFsPort();
  fs.writeFileSync(path.join(dir, 'old.json'), 'old', { mode: 0o644 });
  let built = 0;
  const items = Array.from({ length: 40 }, (_, i) => ({
    file: path.join(dir, `batch_${i}.json`),
    data: i % 2 === 0 ? `{"n":${i}}` : () => (built++, Buffer.from(`{"n":${i}}`)),
  }));
  items.push({ file: path.join(dir, 'old.json'), data: 'new' });
  const outcome = await port.writeFilesDurable(dir, items);
  t.deepEqual(outcome, items.map(() => undefined));
  t.is(built, 20);
  for (let i = 0; i < 40; i++) t.is(fs.readFileSync(path.join(dir, `batch_${i}.json`), 'utf8'), `{"n":${i}}`);
  t.is(fs.readFileSync(path.join(dir, 'old.json'), 'utf8'), 'new');
  t.is(fs.statSync(path.join(dir, 'batch_1.json')).mode & 0o777, 0o600);
  t.is(fs.statSync(path.join(dir, 'old.json')).mode & 0o777, 0o600);
  t.deepEqual(fs.readdirSync(dir).filter((n) => TEMP_FILE_PATTERN.test(n)), []);
  t.is(fs.readdirSync(dir).length, 41);
});

test('group write: an item that cannot be written gets its error, the others are written, no temp file left', async (t) => {
  const dir = tempDir(t);
  const port = createNodeFsPort();
  const outcome = await port.writeFilesDurable(dir, [
    { file: path.join(dir, 'a.json'), data: 'a' },
    { file: path.join(dir, 'missing', 'b.json'), data: 'b' },
    {
      file: path.join(dir, 'c.json'),
      data: () => {
        throw new Error('cannot build c');
      },
    },
    { file: path.join(dir, 'd.json'), data: 'd' },
  ]);
  t.is(outcome[0], undefined);
  t.is((outcome[1] as NodeJS.ErrnoException).code, 'ENOENT');
  t.is(outcome[2]?.message, 'cannot build c');
  t.is(outcome[3], undefined);
  t.deepEqual(fs.readdirSync(dir).sort(), ['a.json', 'd.json']);
});

/**
 * Runs `body` with a `sync` command on PATH that logs its arguments and exits `status` (0 runs
 * the real one first), and with fs.fdatasync counted; returns what the group write did.
 */
async function withDurabilityProbe(t: { teardown(fn: () => void): void }, status: number, body: () => Promise<void>): Promise<{ syncCalls: string[]; fdatasyncs: number }> {
  const bin = tempDir(t);
  const log = path.join(bin, 'sync.log');
  fs.writeFileSync(path.join(bin, 'sync'), `#!/bin/sh\necho "$*" >> '${log}'\n[ ${status} -eq 0 ] && PATH='${process.env.PATH}' sync "$@"\nexit ${status}\n`, { mode: 0o755 });
  groupTuning.syncCommand = path.join(bin, 'sync');
  const savedPath = process.env.PATH;
  const cjsFs = createRequire(import.meta.url)('node:fs') as typeof fs;
  const realFdatasync = cjsFs.fdatasync;
  let fdatasyncs = 0;
  cjsFs.fdatasync = ((fd: number, cb: (error: NodeJS.ErrnoException | null) => void) => {
    fdatasyncs++;
    realFdatasync(fd, cb);
  }) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  process.env.PATH = `${bin}:${savedPath}`;
  try {
    await body();
  } finally {
    process.env.PATH = savedPath;
    cjsFs.fdatasync = realFdatasync;
    syncBuiltinESMExports();
    resetGroupTuning();
  }
  return { syncCalls: fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [], fdatasyncs };
}

test.serial('group write: a small group fdatasyncs each file; a large one runs `sync -f` once for its folder instead', async (t) => {
  const dir = tempDir(t);
  const port = createNodeFsPort();
  const items = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ file: path.join(dir, `${prefix}_${i}.json`), data: `{"n":${i}}` }));
  const small = await withDurabilityProbe(t, 0, async () => {
    t.deepEqual(await port.writeFilesDurable(dir, items('small', 5)), [undefined, undefined, undefined, undefined, undefined]);
  });
  t.deepEqual(small, { syncCalls: [], fdatasyncs: 5 });
  const large = await withDurabilityProbe(t, 0, async () => {
    groupTuning.syncfsMinFiles = 5;
    t.deepEqual(await port.writeFilesDurable(dir, items('large', 5)), [undefined, undefined, undefined, undefined, undefined]);
  });
  t.deepEqual(large, { syncCalls: [`-f ${dir}`], fdatasyncs: 0 });
  for (let i = 0; i < 5; i++) t.is(fs.readFileSync(path.join(dir, `large_${i}.json`), 'utf8'), `{"n":${i}}`);
  t.deepEqual(fs.readdirSync(dir).filter((n) => TEMP_FILE_PATTERN.test(n)), []);
});

test.serial('group write: when `sync -f` fails, every written file is fdatasynced instead; a failed item is not', async (t) => {
  const dir = tempDir(t);
  const port = createNodeFsPort();
  let outcome: Array<Error | undefined> = [];
  const probe = await withDurabilityProbe(t, 1, async () => {
    groupTuning.syncfsMinFiles = 3;
    outcome = await port.writeFilesDurable(dir, [
      { file: path.join(dir, 'a.json'), data: 'a' },
      { file: path.join(dir, 'missing', 'b.json'), data: 'b' },
      { file: path.join(dir, 'c.json'), data: 'c' },
    ]);
  });
  t.is(outcome[0], undefined);
  t.is((outcome[1] as NodeJS.ErrnoException).code, 'ENOENT');
  t.is(outcome[2], undefined);
  t.deepEqual(probe, { syncCalls: [`-f ${dir}`], fdatasyncs: 2 });
  t.deepEqual(fs.readdirSync(dir).sort(), ['a.json', 'c.json']);
});
