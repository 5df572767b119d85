import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as v from 'valibot';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { resetStreamTuning, streamTuning } from '../../plugins/aggregation/stream-input.js';
import { InputError, IoError } from '../../src/core/errors.js';
import { runHost } from '../../src/bridge/host.js';
import { createRegistry } from '../../src/bridge/registry.js';
import type { HandlerDefinition } from '../../src/core/handler.js';
import { rawEntry, tempDir, withTempStore } from '../helpers/store.js';

// Streaming is tested on small inputs by lowering the thresholds; serial, since they are module state.
test.beforeEach(() => {
  streamTuning.afterBytes = 200;
  streamTuning.chunkEntries = 7;
});
test.afterEach.always(() => resetStreamTuning());

const ndjson = (items: unknown[]) => items.map((i) => JSON.stringify(i)).join('\n') + '\n';
/** Runs `action` once, when the store first opens its journal for an append (the first chunk being stored). */
function onFirstJournalAppend(s: ReturnType<typeof withTempStore>, action: () => void): void {
  const port = { ...s.ctx.fs };
  const openAppend = port.openAppend;
  let done = false;
  port.openAppend = (f) => {
    if (!done && f.endsWith('journal.log')) {
      done = true;
      action();
    }
    return openAppend(f);
  };
  s.setFs(port);
}

const journalLines = (dataRoot: string) => {
  const file = path.join(dataRoot, 'aggregated', 'journal', 'journal.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"t":"e"')).length : 0;
};

test.serial('a large NDJSON file is stored in chunks: every entry exactly once, duplicates across chunks counted', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now() - 1000;
  const items = Array.from({ length: 50 }, (_, i) => rawEntry(i, now));
  // BOM, CRLF line ends, blank lines, and a repeat of entry 3 in a later chunk.
  const text = '\uFEFF' + ndjson(items.slice(0, 20)).replace(/\n/g, '\r\n') + '\n\n' + ndjson([...items.slice(20), items[3]]);
  const file = path.join(s.dataRoot, '..', 'big.ndjson');
  fs.writeFileSync(file, text);
  const r = await aggregate.run({ entry: [], source: [], input: file }, s.ctx);
  t.is(r.accepted, 50);
  t.is(r.duplicates, 1);
  // 50 in chunks of 7 under batchSize 10 / threshold 9: 49 flushed, the last one pending.
  t.is(r.pending, 1);
  const stored = s.batches().flatMap((b) => b.entries.map((e) => e.entryId));
  t.is(stored.length, 49);
  t.is(new Set(stored).size, 49);
  t.true(s.batches().every((b) => b.entryCount <= 10));
  t.is(r.flushed.reduce((n, f) => n + f.entryCount, 0), 49);
  const forced = await aggregateForce.run({}, s.ctx);
  t.is(forced.pending, 0);
  t.deepEqual(s.batches().flatMap((b) => b.entries.map((e) => e.entryId)).sort(), items.map((i) => String(i.entryId)).sort());
});

test.serial('a streamed input with a bad line and an invalid entry is rejected whole, naming the line and the index; nothing stored', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now() - 1000;
  const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify(rawEntry(i, now)));
  lines[9] = JSON.stringify({ ...rawEntry(9, now), userId: '' }); // line 10, item 9: found only when its chunk is validated
  lines[24] = '{"userId": "ana", "action": '; // line 25: not JSON
  lines[27] = JSON.stringify({ ...rawEntry(27, now), timestamp: 'yesterday' }); // item 26 (line 25 is not an item)
  const file = path.join(s.dataRoot, '..', 'bad.ndjson');
  fs.writeFileSync(file, lines.join('\n'));
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: file }, s.ctx), { instanceOf: InputError });
  t.deepEqual(
    error!.details.map((d) => [d.path, d.source]),
    [
      ['[9].userId', `--input=${file}:line 10`],
      [`--input=${file}:line 25`, undefined],
      ['[26].timestamp', `--input=${file}:line 28`],
    ],
  );
  t.is(error!.message, `--input=${file}: 1 line is not valid JSON and 2 entries are invalid: nothing was accepted`);
  t.deepEqual(s.batches(), []);
  t.is(journalLines(s.dataRoot), 0);
});

test.serial('invalid UTF-8 and an over-long line in a streamed input are named by line', async (t) => {
  const s = withTempStore(t);
  const now = s.clock.now() - 1000;
  const good = Buffer.from(ndjson(Array.from({ length: 10 }, (_, i) => rawEntry(i, now))));
  const bad = Buffer.concat([good, Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), Buffer.from('x'.repeat(1024 * 1024 + 10) + '\n'), Buffer.from(JSON.stringify(rawEntry(99, now)))]);
  const file = path.join(s.dataRoot, '..', 'utf.ndjson');
  fs.writeFileSync(file, bad);
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: file }, s.ctx), { instanceOf: InputError });
  t.deepEqual(
    error!.details.map((d) => [d.path, d.message]),
    [
      [`--input=${file}:line 11`, 'invalid UTF-8 byte sequence'],
      [`--input=${file}:line 12`, 'line longer than 1048576 bytes'],
    ],
  );
  t.deepEqual(s.batches(), []);
});

test.serial('a large JSON array is not streamed: refused with advice to send NDJSON', async (t) => {
  const s = withTempStore(t);
  streamTuning.afterBytes = 100;
  const file = path.join(s.dataRoot, '..', 'big.json');
  // Over the whole-read limit is 64 MiB; a sparse file reports that size without writing it.
  fs.writeFileSync(file, '[');
  fs.truncateSync(file, 64 * 1024 * 1024 + 1);
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: file }, s.ctx), { instanceOf: InputError });
  t.regex(error!.message, /is a JSON array larger than 67108864 bytes \(64 MiB\): send it as NDJSON/);
});

test.serial('stdin larger than the limit is validated while read; only validated, redacted entries reach the scratch file, removed afterwards', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now() - 1000;
  const items = Array.from({ length: 25 }, (_, i) => rawEntry(i, now, { password: `hunter${i}` }));
  // A scratch file a killed process left: pid 4194303 is not running here (the highest pid Linux allows).
  fs.mkdirSync(path.join(s.dataRoot, 'cache'), { recursive: true });
  fs.writeFileSync(path.join(s.dataRoot, 'cache', 'stdin-4194303-0badc0de.ndjson'), '{}\n');
  let scratch: string[] = [];
  let scratchText = '';
  s.ctx.readStdin = async (limit, overflow) => {
    const bytes = Buffer.from(ndjson(items));
    t.true(bytes.length > limit);
    const sink = overflow!();
    // In pieces that cut lines and multi-byte characters anywhere.
    for (let i = 0; i < bytes.length; i += 37) await sink.write(bytes.subarray(i, i + 37));
    scratch = fs.readdirSync(path.join(s.dataRoot, 'cache'));
    scratchText = scratch.map((f) => fs.readFileSync(path.join(s.dataRoot, 'cache', f), 'utf8')).join('');
    await sink.end();
    return { overflowed: bytes.length };
  };
  const r = await aggregate.run({ entry: [], source: [], input: '-' }, s.ctx);
  t.is(r.accepted, 25);
  t.is(scratch.length, 1);
  t.regex(scratch[0]!, /^stdin-\d+-[0-9a-f]{8}\.ndjson$/);
  t.false(scratchText.includes('hunter'), 'raw secrets never reach the scratch file');
  t.deepEqual(fs.readdirSync(path.join(s.dataRoot, 'cache')), []);
  t.is(s.batches().reduce((n, b) => n + b.entryCount, 0), 20);
  t.is(r.pending, 5);
});

test.serial('an invalid entry in a long stdin: exit 2 naming it, nothing stored, no scratch file left', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now() - 1000;
  const items: unknown[] = Array.from({ length: 25 }, (_, i) => rawEntry(i, now));
  items[17] = { ...rawEntry(17, now), timestamp: 'soon' };
  s.ctx.readStdin = async (_limit, overflow) => {
    const sink = overflow!();
    await sink.write(Buffer.from(ndjson(items)));
    await sink.end();
    return { overflowed: 1 };
  };
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: '-' }, s.ctx), { instanceOf: InputError });
  t.deepEqual(error!.details.map((d) => d.path), ['[17].timestamp']);
  t.deepEqual(s.batches(), []);
  t.is(journalLines(s.dataRoot), 0);
  t.deepEqual(fs.readdirSync(path.join(s.dataRoot, 'cache')), []);
});

test.serial('a rate limit is checked for a whole streamed input before any of it is stored', async (t) => {
  const s = withTempStore(t, { batchSize: 10, rateLimit: { entriesPerMinute: 20 } });
  const now = s.clock.now() - 1000;
  // rawEntry spreads entries over 3 users: 30 entries = 10 each (fits); 70 = 24/23/23 (does not).
  const fits = path.join(s.dataRoot, '..', 'fits.ndjson');
  fs.writeFileSync(fits, ndjson(Array.from({ length: 30 }, (_, i) => rawEntry(i, now))));
  t.is((await aggregate.run({ entry: [], source: [], input: fits }, s.ctx)).accepted, 30);
  const over = path.join(s.dataRoot, '..', 'over.ndjson');
  fs.writeFileSync(over, ndjson(Array.from({ length: 70 }, (_, i) => rawEntry(100 + i, now))));
  const before = { batches: s.batches().length, journal: journalLines(s.dataRoot) };
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: over }, s.ctx));
  t.is((error as { code?: string }).code, 'E_RATE_LIMIT');
  t.deepEqual({ batches: s.batches().length, journal: journalLines(s.dataRoot) }, before);
});

test.serial('a file replaced after it was opened (sed -i): the opened file is stored whole, then exit 1 says it changed', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now() - 1000;
  const file = path.join(s.dataRoot, '..', 'replaced.ndjson');
  fs.writeFileSync(file, ndjson(Array.from({ length: 20 }, (_, i) => rawEntry(i, now))));
  // Replace the file (a new inode, like sed -i) when its first chunk is being stored: after pass 1.
  onFirstJournalAppend(s, () => {
    const tmp = `${file}.new`;
    fs.writeFileSync(tmp, ndjson(Array.from({ length: 20 }, (_, i) => rawEntry(i, now, { who: 'someone else' }))));
    fs.renameSync(tmp, file);
  });
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: file }, s.ctx), { instanceOf: IoError });
  t.regex(error!.message, /changed while it was being stored: 20 entries were stored before the change and are safe/);
  // What was stored is what pass 1 validated: the file as it was opened, never the replacement.
  const stored = s.batches().flatMap((b) => b.entries as Array<{ metadata?: { who?: string } }>);
  t.is(stored.length, 20);
  t.false(stored.some((e) => e.metadata?.who !== undefined));
});

test.serial('an input changed between the two readings stops with exit 1; what was stored stays, once', async (t) => {
  const s = withTempStore(t, { batchSize: 10 });
  const now = s.clock.now() - 1000;
  const items = Array.from({ length: 21 }, (_, i) => rawEntry(i, now));
  const file = path.join(s.dataRoot, '..', 'moving.ndjson');
  fs.writeFileSync(file, ndjson(items));
  // The call's --entry is stored before the second reading starts: change the file right then.
  onFirstJournalAppend(s, () => fs.writeFileSync(file, ndjson(items).replace(/^.*"id-12".*$/m, '{not json')));
  const extra = rawEntry(100, now);
  const error = await t.throwsAsync(aggregate.run({ entry: [JSON.stringify(extra)], source: [], input: file }, s.ctx), { instanceOf: IoError });
  // The change is seen when pass 2 reads the block holding it: only the --entry was stored.
  t.regex(error!.message, /changed while it was being stored: 1 entries were stored before the change and are safe/);
  const again = await aggregate.run({ entry: [JSON.stringify([extra, ...items.slice(0, 7)])], source: [] }, s.ctx);
  t.is(again.duplicates, 1);
  t.is(again.accepted, 7);
});

test('the host hands stdin over the limit, held bytes first, to the overflow sink', async (t) => {
  const dir = tempDir(t);
  let seen: unknown;
  const received: Buffer[] = [];
  let ended = false;
  const probe: HandlerDefinition = {
    name: 'probe',
    summary: 'reads stdin',
    help: 'probe',
    options: {},
    input: v.object({}),
    needsStore: false,
    run: async (_input, ctx) => {
      seen = await ctx.readStdin(10, () => ({ write: (b) => void received.push(Buffer.from(b)), end: () => void (ended = true) }));
      return {};
    },
  };
  const registry = createRegistry();
  registry.register({ name: 'demo', handlers: { probe: { summary: 'reads stdin', load: async () => probe } }, hooks: [] });
  const io = { stdout: { write: () => true }, stderr: { write: () => true }, stdin: Readable.from([Buffer.from('0123456789'), Buffer.from('abcdef'), Buffer.from('XYZ')]), env: {}, cwd: dir };
  t.is(await runHost(['probe'], io, registry), 0);
  t.deepEqual(seen, { overflowed: 19 });
  t.is(Buffer.concat(received).toString(), '0123456789abcdefXYZ');
  t.true(ended);
});

test.serial('a file changed in place during pass 2 (same size, mtime put back): no changed chunk is stored', async (t) => {
  const s = withTempStore(t, { batchSize: 50 });
  streamTuning.chunkEntries = 2000;
  const now = s.clock.now() - 1000;
  const file = path.join(s.dataRoot, '..', 'inplace.ndjson');
  const text = ndjson(Array.from({ length: 12_000 }, (_, i) => rawEntry(i, now)));
  t.true(text.length > 1024 * 1024 + 100_000, 'longer than one 1 MiB read');
  fs.writeFileSync(file, text);
  const opened = fs.statSync(file);
  // When the first chunk is being stored, rewrite bytes past the first 1 MiB read, in place.
  onFirstJournalAppend(s, () => {
    const fd = fs.openSync(file, 'r+');
    const at = 1024 * 1024 + 50_000;
    const tail = Buffer.from(text.slice(at)).toString().replace(/"user-1"/g, '"EVIL-1"');
    fs.writeSync(fd, Buffer.from(tail), 0, Buffer.byteLength(tail), at);
    fs.closeSync(fd);
    fs.utimesSync(file, opened.atime, opened.mtime);
  });
  const error = await t.throwsAsync(aggregate.run({ entry: [], source: [], input: file }, s.ctx), { instanceOf: IoError });
  const stored = Number(/: (\d+) entries were stored before the change/.exec(error!.message)?.[1]);
  t.true(stored > 0 && stored < 12_000 && stored % 2000 === 0, error!.message);
  const all = JSON.stringify(s.batches()) + fs.readFileSync(path.join(s.dataRoot, 'aggregated', 'journal', 'journal.log'), 'utf8');
  t.false(all.includes('EVIL'));
});
