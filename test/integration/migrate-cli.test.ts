import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/store.js';

const LEGACY = 'batch_1700000000000_k3j4h5g6f';
const NEWER = 'batch_1800000000000_0000abcd';

/** A data root the older product wrote: one batch file without version, checksum or entry ids. */
function oldDataRoot(t: Parameters<typeof tempDir>[0]): { dir: string; dataRoot: string; legacy: string; bytes: Buffer } {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const dataRoot = path.join(dir, '.flowforge');
  fs.mkdirSync(path.join(dataRoot, 'aggregated'), { recursive: true });
  const legacy = path.join(dataRoot, 'aggregated', `${LEGACY}.json`);
  const bytes = Buffer.from(JSON.stringify({ batchId: LEGACY, timestamp: 1700000050, entries: [{ userId: 'ana', action: 'work', timestamp: 1700000000 }, { userId: 'bo', action: 'review', timestamp: '2023-11-14T22:13:20Z' }] }));
  fs.writeFileSync(legacy, bytes);
  return { dir, dataRoot, legacy, bytes };
}

test('aggregate-migrate through the CLI: a dry run (exit 0, nothing written), --apply (exit 0), then status counts the batch', (t) => {
  const { dir, legacy, bytes } = oldDataRoot(t);
  const dry = runCli(['aggregate-migrate'], { cwd: dir });
  t.is(dry.code, 0);
  t.like(dry.json, { ok: true, action: 'aggregate-migrate', result: { dryRun: true, ok: true, current: 0 } });
  t.like(dry.json.result.migrated[0], { file: `aggregated/${LEGACY}.json`, from: null, to: '2.0.0', entries: 2, derivedIds: 2, convertedTimestamps: 2, addedChecksum: true });
  t.deepEqual(fs.readFileSync(legacy), bytes);
  t.deepEqual(fs.readdirSync(path.dirname(legacy)), [`${LEGACY}.json`]);

  const apply = runCli(['aggregate-migrate', '--apply', '--format=text'], { cwd: dir });
  t.is(apply.code, 0, apply.stderr);
  t.is(
    apply.stdout,
    `upgraded aggregated/${LEGACY}.json: no version → 2.0.0, 2 entries, 2 derived ids, 2 timestamps converted; original kept as aggregated/recovery/migrated/${LEGACY}.json.orig\n` +
      '1 file upgraded, 0 already current\n',
  );
  const upgraded = JSON.parse(fs.readFileSync(legacy, 'utf8'));
  t.like(upgraded, { batchId: LEGACY, version: '2.0.0', entryCount: 2, timestamp: 1700000050000 });
  t.like(runCli(['aggregate-status'], { cwd: dir }).json.result, { batches: { count: 1, entries: 2 } });
  t.like(runCli(['aggregate-migrate', '--apply'], { cwd: dir }).json.result, { migrated: [], current: 1 });
});

test('aggregate-migrate --apply with a batch of a newer major version: exit 1, the message names the file and both versions, nothing changed', (t) => {
  const { dir, dataRoot, legacy, bytes } = oldDataRoot(t);
  const newer = path.join(dataRoot, 'aggregated', `${NEWER}.json`);
  const newerBytes = Buffer.from(JSON.stringify({ batchId: NEWER, version: '3.0.0', entries: [] }));
  fs.writeFileSync(newer, newerBytes);
  const run = runCli(['aggregate-migrate', '--apply'], { cwd: dir });
  t.is(run.code, 1);
  t.is(run.json.error.code, 'E_CORRUPT');
  const message = `aggregated/${NEWER}.json has version 3.0.0; this FlowForge Aggregation reads batch format 2.x — upgrade the product`;
  t.deepEqual(run.json.error.details, [{ path: `aggregated/${NEWER}.json`, message, value: '3.0.0' }]);
  t.true(run.stderr.includes(message));
  t.deepEqual(fs.readFileSync(newer), newerBytes);
  t.deepEqual(fs.readFileSync(legacy), bytes);
});
