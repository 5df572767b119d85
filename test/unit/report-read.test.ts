/**
 * The report reads without the lock while entries move: inbox → journal → (failed batch →)
 * batch file, and a compaction drops flushed entries from the journal. These tests take real
 * snapshots of a store at each step and let the reader see the store move on after any one of
 * its file-system calls (or one step after every call), so every interleaving of a flush, a
 * merge, a compaction or a recovery with the reader's reads is tried: each entry counts once.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createNodeFsPort, type FsPort } from '../../src/core/fs-port.js';
import type { HandlerContext } from '../../src/core/context.js';
import { resetStoreTuning, storeTuning, withStore } from '../../plugins/aggregation/aggregator.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { queueInInbox } from '../../plugins/aggregation/inbox.js';
import { storeLayout } from '../../plugins/aggregation/layout.js';
import { readReportEntries } from '../../plugins/aggregation/report/read.js';
import { createReportAccumulator } from '../../plugins/aggregation/report/summarize.js';
import { parseReportZone } from '../../plugins/aggregation/report/time.js';
import { commit, session, writeBatch } from '../helpers/report-store.js';
import { createFaultyFsPort, tempDir, withTempStore } from '../helpers/store.js';

const H = 3_600_000;
const HISTORY = [commit('h1', 'ana', '2026-03-01T10:00:00Z'), session('ana', 'h2', '2026-03-01T08:00:00Z', H)];
const MOVING = [commit('m1', 'ana', '2026-03-02T10:00:00Z'), session('bob', 'm2', '2026-03-02T08:00:00Z', 2 * H), session('bob', 'm3', '2026-03-02T11:00:00Z', H, 'T-1')];
const EXPECTED = { entries: 5, commits: 2, trackedMs: 4 * H };

/** Store snapshots, each a full data root: the moving entries in the inbox, the journal, a failed batch, a batch file. */
async function snapshots(t: Parameters<typeof tempDir>[0]) {
  const s = withTempStore(t, { batchSize: 500 });
  const root = tempDir(t);
  const ctxAt = (dir: string, fsPort: FsPort = createNodeFsPort()): HandlerContext => ({ ...s.ctx, dataRoot: dir, fs: fsPort });
  const step = async (name: string, from: string | undefined, change: (ctx: HandlerContext) => Promise<unknown>) => {
    const dir = path.join(root, name);
    if (from) fs.cpSync(from, dir, { recursive: true });
    await change(ctxAt(dir));
    return dir;
  };
  const inbox = await step('inbox', undefined, async (ctx) => {
    await withStore(ctx, async () => {}); // an empty store: journal and lock folder
    writeBatch(ctx.dataRoot, HISTORY);
    queueInInbox(ctx, storeLayout(ctx.dataRoot), MOVING);
  });
  const journal = await step('journal', inbox, (ctx) => withStore(ctx, async () => {})); // merges the inbox
  const failed = await step('failed', journal, (ctx) => {
    const faulty = ctxAt(ctx.dataRoot, createFaultyFsPort((op, args) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'EIO' : undefined)));
    return withStore(faulty, (store) => store.flush({ manual: true }));
  });
  const recovered = await step('recovered', failed, (ctx) => aggregateRecover.run({}, ctx));
  const flushed = await step('flushed', journal, async (ctx) => {
    storeTuning.compactAfterEntries = 1; // compact right after the flush: the journal forgets the entries
    try {
      await withStore(ctx, (store) => store.flush({ manual: true }));
    } finally {
      resetStoreTuning();
    }
  });
  return { inbox, journal, failed, recovered, flushed };
}

/** A file port over `virtualRoot` that serves snapshot `pick(call)` at the reader's call number `call`. */
function movingStore(virtualRoot: string, states: string[], pick: (call: number) => number): FsPort {
  const real = createNodeFsPort();
  let call = 0;
  const map = (file: string) => {
    const state = states[Math.min(states.length - 1, pick(call++))]!;
    return file.startsWith(virtualRoot) ? state + file.slice(virtualRoot.length) : file;
  };
  return {
    ...real,
    readFile: (file) => real.readFile(map(file)),
    readdir: (dir) => real.readdir(map(dir)),
    stat: (file) => real.stat(map(file)),
    lstat: (file) => real.lstat(map(file)),
  };
}

function report(virtualRoot: string, fsPort: FsPort, base: HandlerContext) {
  const accumulator = createReportAccumulator({ by: 'user', zone: parseReportZone(undefined), redactKeys: [] });
  const read = readReportEntries({ ...base, dataRoot: virtualRoot, fs: fsPort }, 'local', (entry) => accumulator.add(entry));
  return { read, summary: accumulator.finish() };
}

test('each snapshot on its own reports the same totals', async (t) => {
  const s = await snapshots(t);
  const base = withTempStore(t).ctx;
  for (const [name, dir] of Object.entries(s)) {
    const { read, summary } = report(dir, createNodeFsPort(), base);
    t.deepEqual(summary.totals, EXPECTED, name);
    t.deepEqual(read.problems, [], name);
  }
  t.is(fs.readdirSync(path.join(s.failed, 'aggregated/recovery')).filter((n) => n.endsWith('.failed.json')).length, 1);
  t.is(fs.readdirSync(path.join(s.recovered, 'aggregated/recovery')).filter((n) => n.endsWith('.failed.json')).length, 0);
});

test('an entry moving at any point of the read (merge, flush + compaction, park, recovery) is counted exactly once', async (t) => {
  const s = await snapshots(t);
  const base = withTempStore(t).ctx;
  const virtualRoot = path.join(tempDir(t), 'store');
  const paths = [
    [s.inbox, s.journal, s.flushed],
    [s.inbox, s.journal, s.failed, s.recovered],
  ];
  let runs = 0;
  for (const states of paths) {
    for (let k = 0; k <= 30; k++) {
      // One move after call k, between each pair of neighbouring states…
      for (let i = 0; i + 1 < states.length; i++) {
        const { summary } = report(virtualRoot, movingStore(virtualRoot, states, (call) => (call < k ? i : i + 1)), base);
        t.deepEqual(summary.totals, EXPECTED, `${states.map((d) => path.basename(d)).join(' → ')}: ${path.basename(states[i]!)} → ${path.basename(states[i + 1]!)} after call ${k}`);
        runs++;
      }
      // …and the store racing ahead one state per call from call k on.
      const { summary } = report(virtualRoot, movingStore(virtualRoot, states, (call) => Math.max(0, call - k)), base);
      t.deepEqual(summary.totals, EXPECTED, `${states.map((d) => path.basename(d)).join(' → ')}: one step per call from call ${k}`);
      runs++;
    }
  }
  t.is(runs, 2 * 31 + 3 * 31 + 2 * 31);
});
