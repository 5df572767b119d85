import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptError } from '../../src/core/errors.js';
import { parseCatFileBatch } from '../../src/core/git-client.js';
import { aggregateCleanup } from '../../plugins/aggregation/handlers/aggregate-cleanup.js';
import { storeLayout } from '../../plugins/aggregation/layout.js';
import { gitFailure, loadOrCreateCloneId } from '../../plugins/aggregation/team-sync.js';
import { withTempStore } from '../helpers/store.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

test('parseCatFileBatch splits objects by byte size (multi-byte text, a newline inside) and skips missing ones', (t) => {
  const first = Buffer.from('{"userId":"Zoë Ørsted"}\n{"x":1}');
  const out = Buffer.concat([
    Buffer.from(`${A} blob ${first.length}\n`),
    first,
    Buffer.from(`\n${'c'.repeat(40)} missing\n${B} commit 4\ntree\n`),
  ]);
  const objects = parseCatFileBatch(out);
  t.deepEqual([...objects.keys()], [A, B]);
  t.is(objects.get(A)!.type, 'blob');
  t.is(objects.get(A)!.data.toString('utf8'), '{"userId":"Zoë Ørsted"}\n{"x":1}');
  t.is(objects.get(B)!.data.toString('utf8'), 'tree');
  t.is(parseCatFileBatch(Buffer.alloc(0)).size, 0);
});

test('parseCatFileBatch refuses output that is not the batch format (short object, odd header)', (t) => {
  t.throws(() => parseCatFileBatch(Buffer.from(`${A} blob 10\nshort\n`)), { message: new RegExp(`output for ${A} is shorter than its 10 bytes`) });
  t.throws(() => parseCatFileBatch(Buffer.from('hello world\n')), { message: /Unexpected git cat-file header "hello world"/ });
});

test('gitFailure picks the line that says what failed and hides credentials in URLs', (t) => {
  const pushRejected = Object.assign(new Error('git push failed'), {
    cause: new Error("To https://ana:s3cret@example.com/team.git\n ! [rejected]        refs/flowforge/aggregated/x -> refs/flowforge/aggregated/x (fetch first)\nerror: failed to push some refs to 'https://ana:s3cret@example.com/team.git'\n"),
  });
  t.is(gitFailure(pushRejected), '! [rejected]        refs/flowforge/aggregated/x -> refs/flowforge/aggregated/x (fetch first)');
  const fatal = Object.assign(new Error('x'), { cause: new Error("remote: hello\nfatal: unable to access 'https://ana:s3cret@example.com/team.git/': Could not resolve host: example.com\n") });
  t.is(gitFailure(fatal), "fatal: unable to access 'https://***@example.com/team.git/': Could not resolve host: example.com");
  t.is(gitFailure(new Error('only line')), 'only line');
});

test('the clone id is created once per data root (32 hex, file 0600) and read back after', (t) => {
  const s = withTempStore(t);
  const id = loadOrCreateCloneId(s.ctx);
  t.regex(id, /^[0-9a-f]{32}$/);
  t.is(loadOrCreateCloneId(s.ctx), id);
  const file = path.join(s.dataRoot, 'sync/clone.json');
  t.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { cloneId: id });
  t.is((fs.statSync(file).mode & 0o777).toString(8), '600');
  t.is((fs.statSync(path.dirname(file)).mode & 0o777).toString(8), '700');
  t.deepEqual(storeLayout(s.dataRoot).sync, path.dirname(file));
  t.deepEqual(storeLayout(s.dataRoot).team, path.join(s.dataRoot, 'team'));
});

test('a clone.json without a valid id is an error naming the file, never silently replaced', (t) => {
  const s = withTempStore(t);
  const file = path.join(s.dataRoot, 'sync/clone.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '{"cloneId":"Alice"}');
  const error = t.throws(() => loadOrCreateCloneId(s.ctx), { instanceOf: CorruptError });
  t.true(error!.message.startsWith(`${file} does not hold a clone id`));
  t.is(fs.readFileSync(file, 'utf8'), '{"cloneId":"Alice"}');
});

test('aggregate-cleanup never removes team/ or sync/ files, however old', async (t) => {
  const s = withTempStore(t);
  const old = new Date(Date.UTC(2020, 0, 1));
  const files = ['team/0123456789abcdef0123456789abcdef/batch_1768469400000_0000000a.json', 'team/0123456789abcdef0123456789abcdef/batch_1768469400000_0000000a.json.123456', 'sync/clone.json'];
  for (const rel of files) {
    const file = path.join(s.dataRoot, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{}');
    fs.utimesSync(file, old, old);
  }
  const result = await aggregateCleanup.run({ age: '0', 'dry-run': false }, s.ctx);
  t.deepEqual(result.removed, []);
  for (const rel of files) t.true(fs.existsSync(path.join(s.dataRoot, rel)), rel);
});
