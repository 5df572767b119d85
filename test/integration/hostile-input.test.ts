/**
 * Hostile input (issue 4 item 6): a generated corpus of more than 1,000 malformed inputs, plus
 * huge, deep, invalid-UTF-8 and 100 MB inputs through the CLI. Each is rejected with exit 2 and
 * a precise message, memory stays bounded, and nothing is written. Also: a data root that is a
 * symlink into someone else's folder, redacted values never on disk, and the rate limit.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { FlowForgeError } from '../../src/core/errors.js';
import { CLI, runCli } from '../helpers/cli.js';
import { tempDir, withTempStore } from '../helpers/store.js';

const NOW = Date.UTC(2026, 10, 1, 12, 0, 0);
const valid = () => ({ userId: 'ana', action: 'work', timestamp: NOW - 60_000, metadata: { taskId: 'T-1', duration: 1000 } });

const nest = (depth: number): unknown => (depth === 0 ? 1 : { a: nest(depth - 1) });
const BAD_VALUES: Record<string, unknown[]> = {
  userId: [null, 1, true, [], {}, '', 'x'.repeat(129), 'a\u0000b', 'tab\tbed', '\u007f', 'x'.repeat(1_000_000)],
  action: [null, 2, false, [], {}, '', 'has space', 'semi;colon', 'x'.repeat(65), 'ünïcode', '../../etc'],
  timestamp: [null, true, [], {}, '', 'yesterday', '2026-11-01', '2026-11-01T10:00:00', '1700000000000', -1, 0, 1.5e12 + 0.5, 946_684_799_999, 4102444800000, 1e300, '2026-02-30T10:00:00Z'],
  entryId: [null, 3, [], {}, '', 'x'.repeat(129), 'a\nb'],
  metadata: [null, 'text', 4, [], true],
  'metadata.duration': [-1, 1.5, '60', 604_800_001, null, [], {}],
  'metadata.sessionId': [1, null, [], {}],
  'metadata.taskId': [1.5, null, [], {}, true, 2 ** 60],
  'metadata.deep': [nest(5), nest(50), nest(500)],
  'metadata.big': ['x'.repeat(16_385), Array.from({ length: 5000 }, (_, i) => i)],
  'metadata.__proto__': [{ polluted: true }, 1],
  'metadata.constructor': [{ prototype: {} }, 'x'],
  'metadata.prototype': [1],
  'metadata.nested.__proto__': [{ x: 1 }],
};

/** Builds the corpus: every field × every bad value, in 4 positions in a call, plus shapes. */
function corpus(): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  for (const [field, values] of Object.entries(BAD_VALUES)) {
    values.forEach((value, vi) => {
      for (const position of [0, 1, 2, 3, 5, 7, 11, 15]) {
        const entries: unknown[] = Array.from({ length: Math.max(position + 1, 2) }, () => valid());
        const bad = structuredClone(entries[position]) as Record<string, any>;
        const parts = field.split('.');
        const key = parts[parts.length - 1]!;
        const textOnly = key === '__proto__' || key === 'constructor' || key === 'prototype';
        let target = bad;
        if (!textOnly) for (const p of parts.slice(0, -1)) target = (target[p] ??= {});
        entries[position] = bad;
        let text = JSON.stringify(entries);
        if (textOnly) {
          // JSON text is the only way a caller can send these keys as data.
          text = text.replace('"metadata":{', `"metadata":{"${key}":${JSON.stringify(value)},`);
          if (parts.length === 3) text = text.replace(`"metadata":{"${key}"`, `"metadata":{"nested":{"${key}"`).replace(`${JSON.stringify(value)},`, `${JSON.stringify(value)}},`);
        } else target[key] = value;
        if (!textOnly) text = JSON.stringify(entries);
        out.push({ name: `${field}[${vi}]@${position}`, text });
      }
    });
  }
  // Two bad fields in one entry: both must be listed.
  const fields = ['userId', 'action', 'timestamp', 'entryId', 'metadata.duration', 'metadata.taskId'] as const;
  for (const f1 of fields) {
    for (const f2 of fields) {
      if (f1 >= f2) continue;
      BAD_VALUES[f1]!.slice(0, 4).forEach((v1, i) => {
        const bad: Record<string, any> = valid();
        const put = (field: string, value: unknown) => {
          const [a, b] = field.split('.') as [string, string | undefined];
          if (b) (bad[a] ??= {})[b] = value;
          else bad[a] = value;
        };
        put(f1, v1);
        put(f2, BAD_VALUES[f2]![i % BAD_VALUES[f2]!.length]);
        for (const before of [0, 1, 2, 4]) {
          out.push({ name: `${f1}+${f2}[${i}]@${before}`, text: JSON.stringify([...Array.from({ length: before }, valid), bad]) });
        }
      });
    }
  }
  const shapes = ['', ' ', 'null', '1', '"text"', 'true', '[1]', '[null]', '[[]]', '[{"userId":"a"}]', '{"userId":"a","action":"b","timestamp":1700000000000,"extra":1}', '[', '{', '{"a":', 'NaN', 'Infinity', '[1,2', '}{', '\u0000', '{"userId":"a","action":"b","timestamp":1700000000000}\n{oops}\n'];
  shapes.forEach((text, i) => out.push({ name: `shape[${i}]`, text }));
  // Random truncations of a valid document.
  const doc = JSON.stringify([valid(), valid()]);
  for (let cut = 1; cut < doc.length; cut += 1) out.push({ name: `truncated@${cut}`, text: doc.slice(0, cut) });
  return out;
}

test('more than 1,000 generated malformed inputs: each exit 2 with paths, nothing written', async (t) => {
  const cases = corpus();
  t.true(cases.length >= 1000, `${cases.length} cases`);
  t.log(`${cases.length} malformed inputs`);
  const s = withTempStore(t);
  s.clock.set(NOW);
  const heapBefore = process.memoryUsage().heapUsed;
  for (const c of cases) {
    const error = await aggregate.run({ entry: [c.text], source: [] }, s.ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(error instanceof FlowForgeError)) {
      t.fail(`${c.name}: expected a FlowForgeError, got ${String(error)}`);
      continue;
    }
    if (error.exitCode !== 2 || error.details.length === 0 || error.details.some((d) => d.path === '' || d.message === '')) {
      t.fail(`${c.name}: exit ${error.exitCode}, details ${JSON.stringify(error.details).slice(0, 300)}`);
    }
  }
  t.false(fs.existsSync(s.dataRoot), 'nothing was written');
  t.true(process.memoryUsage().heapUsed - heapBefore < 200 * 1024 * 1024);
  t.pass();
});

test('through the CLI: a 10 MB string, deep nesting and invalid UTF-8 get exit 2 and a short, precise error', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const huge = runCli(['aggregate', '--input=-'], { cwd: dir, input: JSON.stringify({ ...valid(), timestamp: Date.now() - 1000, userId: 'x'.repeat(10_000_000) }) });
  t.is(huge.code, 2);
  t.deepEqual(huge.json.error.details.map((d: { path: string }) => d.path), ['[0].userId']);
  t.true(huge.stdout.length < 2000, `error output is ${huge.stdout.length} bytes`);
  // Built as text: 10,000 and 1,000,000 levels are beyond what JSON.stringify itself can nest.
  const deepText = (levels: number) => JSON.stringify({ ...valid(), timestamp: Date.now() - 1000, metadata: null }).replace('"metadata":null', `"metadata":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);
  const deep = runCli(['aggregate', '--input=-'], { cwd: dir, input: deepText(10_000) });
  t.is(deep.code, 2);
  t.deepEqual(deep.json.error.details.map((d: { path: string }) => d.path), ['[0].metadata.a.a.a.a.a']);
  const deeper = runCli(['aggregate', '--input=-'], { cwd: dir, input: deepText(1_000_000) });
  t.is(deeper.code, 2);
  t.is(deeper.json.error.code, 'E_INPUT');
  const utf8 = runCli(['aggregate', '--input=-'], { cwd: dir, input: Buffer.concat([Buffer.from(`${JSON.stringify(valid())}\n{"userId":"`), Buffer.from([0xc3, 0x28]), Buffer.from('","action":"x","timestamp":1}\n')]) });
  t.is(utf8.code, 2);
  t.deepEqual(utf8.json.error.details, [{ path: '--input=-:line 2', message: 'invalid UTF-8 byte sequence' }]);
  t.false(fs.existsSync(path.join(dir, '.flowforge')));
});

test('a 100 MB input stream of one endless line: spilled and streamed, exit 2 naming the line, memory bounded, nothing stored', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const script = `
    const { spawn } = require('node:child_process');
    const child = spawn(process.execPath, [${JSON.stringify(CLI)}, 'aggregate', '--input=-'], { cwd: ${JSON.stringify(dir)}, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '', peak = 0;
    child.stdout.on('data', (d) => (out += d));
    const poll = setInterval(() => { try { const m = /VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/' + child.pid + '/status', 'utf8')); if (m) peak = Math.max(peak, Number(m[1])); } catch {} }, 5);
    const chunk = Buffer.alloc(1 << 20, 0x78);
    let sent = 0;
    const pump = () => { while (sent < 100) { sent++; if (!child.stdin.write(chunk)) return child.stdin.once('drain', pump); } child.stdin.end(); };
    child.stdin.on('error', () => {});
    pump();
    child.on('close', (code) => { clearInterval(poll); console.log(JSON.stringify({ code, out, peakKiB: peak })); });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  const result = JSON.parse(r.stdout);
  t.is(result.code, 2);
  t.is(JSON.parse(result.out).error.code, 'E_INPUT');
  t.deepEqual(JSON.parse(result.out).error.details, [{ path: '--input=-:line 1', message: 'line longer than 1048576 bytes' }]);
  t.true(result.peakKiB < 200 * 1024, `peak RSS ${result.peakKiB} KiB`);
  // The scratch copy of stdin is gone and nothing was stored.
  t.deepEqual(fs.readdirSync(path.join(dir, '.flowforge', 'cache')), []);
  t.false(fs.existsSync(path.join(dir, '.flowforge', 'aggregated')));
});

(process.getuid?.() === 0 ? test : test.skip)("a data root that is a symlink into someone else's folder is refused; nothing is written there", (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const theirs = path.join(dir, 'someone-else');
  fs.mkdirSync(theirs);
  fs.chownSync(theirs, 4242, 4242);
  fs.symlinkSync(theirs, path.join(dir, '.flowforge'));
  const r = runCli(['aggregate', `--entry=${JSON.stringify({ ...valid(), timestamp: Date.now() - 1000 })}`], { cwd: dir });
  t.is(r.code, 1);
  t.is(r.json.error.code, 'E_IO');
  t.true(r.json.error.message.includes(`a symlink to ${theirs}`));
  t.regex(r.json.error.message, /belongs to uid 4242/);
  t.deepEqual(fs.readdirSync(theirs), []);
});

test('redacted metadata values never reach the disk: journal, batches, index and logs', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  const secret = { ...valid(), timestamp: Date.now() - 1000, metadata: { token: 'tok-SECRET-1', deep: { Password: 'pw-SECRET-2', list: [{ apiKey: 'key-SECRET-3' }] }, cookie: 'c-SECRET-4' } };
  t.is(runCli(['aggregate', `--entry=${JSON.stringify(secret)}`], { cwd: dir }).code, 0);
  t.is(runCli(['aggregate-force'], { cwd: dir }).code, 0);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(path.join(dir, '.flowforge'));
  t.true(files.length >= 3);
  for (const f of files) t.false(/SECRET/.test(fs.readFileSync(f, 'utf8')), `${path.relative(dir, f)} holds a secret`);
  const batch = files.find((f) => /batch_.*\.json$/.test(f))!;
  t.deepEqual(JSON.parse(fs.readFileSync(batch, 'utf8')).entries[0].metadata, {
    cookie: '[REDACTED]',
    deep: { Password: '[REDACTED]', list: [{ apiKey: '[REDACTED]' }] },
    token: '[REDACTED]',
  });
});

test('the per-user rate limit rejects a runaway caller with a message naming the limit; accepted entries untouched', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ rateLimit: { entriesPerMinute: 5 }, batchSize: 100 }));
  const send = (user: string, from: number, n: number) =>
    runCli(['aggregate', `--entry=${JSON.stringify(Array.from({ length: n }, (_, i) => ({ entryId: `${user}-${from + i}`, userId: user, action: 'work', timestamp: Date.now() - 1000 })))}`], { cwd: dir });
  // Stay inside one clock minute, so the window cannot roll over mid-test.
  const msIntoMinute = Date.now() % 60_000;
  if (msIntoMinute > 50_000) spawnSync('sleep', [String((60_000 - msIntoMinute) / 1000 + 0.2)]);
  t.like(send('ana', 0, 3).json.result, { accepted: 3 });
  const over = send('ana', 3, 3);
  t.is(over.code, 2);
  t.is(over.json.error.code, 'E_RATE_LIMIT');
  t.regex(over.json.error.message, /at most 5 entries per user per minute \(rateLimit\.entriesPerMinute\)/);
  t.deepEqual(over.json.error.details, [{ path: 'userId=ana', message: '3 accepted this minute + 3 in this call > 5' }]);
  t.like(send('bob', 0, 5).json.result, { accepted: 5 });
  t.like(send('ana', 3, 2).json.result, { accepted: 2, pending: 10 });
});

test('privacy.anonymizeUsers: user ids are stored as keyed pseudonyms, the same user always the same, the secret 0600', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, '.git'));
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ privacy: { anonymizeUsers: true } }));
  const e = (id: string, user: string) => JSON.stringify({ entryId: id, userId: user, action: 'work', timestamp: Date.now() - 1000 });
  t.is(runCli(['aggregate', `--entry=${e('p1', 'alice@example.com')}`, `--entry=${e('p2', 'bob@example.com')}`], { cwd: dir }).code, 0);
  t.is(runCli(['aggregate', `--entry=${e('p3', 'alice@example.com')}`], { cwd: dir }).code, 0);
  t.is(runCli(['aggregate-force'], { cwd: dir }).code, 0);
  const root = path.join(dir, '.flowforge');
  const secret = path.join(root, 'secret.key');
  t.is((fs.statSync(secret).mode & 0o777).toString(8), '600');
  t.regex(fs.readFileSync(secret, 'utf8'), /^[0-9a-f]{64}\n$/);
  const batch = fs.readdirSync(path.join(root, 'aggregated')).find((n) => n.startsWith('batch_'))!;
  const users = JSON.parse(fs.readFileSync(path.join(root, 'aggregated', batch), 'utf8')).entries.map((x: { userId: string }) => x.userId);
  t.is(users.length, 3);
  t.true(users.every((u: string) => /^u_[0-9a-f]{24}$/.test(u)));
  t.is(users[0], users[2], 'the same user, the same pseudonym');
  t.not(users[0], users[1]);
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((x) => (x.isDirectory() ? walk(path.join(d, x.name)) : [path.join(d, x.name)]));
  for (const f of walk(root)) t.false(fs.readFileSync(f, 'utf8').includes('example.com'), `${path.relative(dir, f)} holds a clear user id`);
});
