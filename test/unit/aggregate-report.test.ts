import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v from 'valibot';
import { acquireLock } from '../../src/core/lock.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateReport, type AggregateReportResult } from '../../plugins/aggregation/handlers/aggregate-report.js';
import { queueInInbox } from '../../plugins/aggregation/inbox.js';
import { storeLayout } from '../../plugins/aggregation/layout.js';
import { renderCsv, renderHtml, renderText } from '../../plugins/aggregation/report/render.js';
import { createReportAccumulator, sessionGroup } from '../../plugins/aggregation/report/summarize.js';
import { parseBound, parseReportZone } from '../../plugins/aggregation/report/time.js';
import { readPendingSnapshot } from '../../plugins/aggregation/journal.js';
import type { Entry } from '../../plugins/aggregation/types.js';
import { commit, session, writeAbandoned, writeBatch, writeFailed } from '../helpers/report-store.js';
import { createFaultyFsPort, withTempStore, type TempStore } from '../helpers/store.js';
import { createNodeFsPort } from '../../src/core/fs-port.js';
import { BATCH_MESSAGES } from '../../plugins/aggregation/batch-store.js';

const H = 3_600_000;

async function report(s: TempStore, options: Record<string, unknown> = {}): Promise<AggregateReportResult> {
  return aggregateReport.run(v.parse(aggregateReport.input, options), s.ctx);
}

/** Appends entries to the journal (pending: batchSize is large, so no trigger fires). */
async function appendPending(s: TempStore, entries: Entry[]): Promise<void> {
  const r = await aggregate.run({ entry: [JSON.stringify(entries)], source: [] }, s.ctx);
  if (r.accepted !== entries.length || r.pending !== entries.length) throw new Error(`expected ${entries.length} pending, got ${JSON.stringify(r)}`);
}

test('local scope counts batch files, failed batches, journal and inbox entries, each entry id once; abandoned batches are reported, not counted', async (t) => {
  const s = withTempStore(t, { batchSize: 500 });
  const c1 = commit('a1', 'alice', '2026-03-02T10:00:00Z');
  const s1 = session('alice', 's1', '2026-03-02T08:00:00Z', 2 * H, 'T-1');
  writeBatch(s.dataRoot, [c1, s1]);
  writeFailed(s.dataRoot, [session('bob', 's2', '2026-03-02T09:00:00Z', H, 'T-2')]);
  writeAbandoned(s.dataRoot, [session('bob', 's3', '2026-03-02T09:00:00Z', 5 * H), commit('b9', 'bob', '2026-03-02T11:00:00Z')]);
  await appendPending(s, [session('carol', 's4', '2026-03-03T09:00:00Z', 30 * 60_000, 'T-1')]);
  // The inbox repeats the batch file's commit (a hook that queued while a flush was writing it).
  queueInInbox(s.ctx, storeLayout(s.dataRoot), [commit('c1', 'carol', '2026-03-03T12:00:00Z'), c1]);
  s.clock.advance(1_000); // younger than maxAge: the age trigger does not fire

  const r = await report(s);
  t.deepEqual(r.rows, [
    { key: 'alice', entries: 2, commits: 1, trackedMs: 2 * H },
    { key: 'bob', entries: 1, commits: 0, trackedMs: H },
    { key: 'carol', entries: 2, commits: 1, trackedMs: 30 * 60_000 },
  ]);
  t.deepEqual(r.totals, { entries: 5, commits: 2, trackedMs: 3.5 * H });
  t.deepEqual(r.sources, { batchFiles: 1, failedBatches: 1, pendingEntries: 3, teamClones: 0, teamBatchFiles: 0 });
  t.deepEqual(r.excluded, { abandonedBatches: 1, abandonedEntries: 2, quarantinedFiles: 0, duplicates: 1, supersededSessions: 0, outOfRange: 0 });
  t.deepEqual(r.range, { since: null, until: null, firstDay: '2026-03-02', lastDay: '2026-03-03' });
  t.deepEqual(r.flushed, []);
  t.deepEqual(r.warnings, []);
  t.is(r.daily, undefined); // only for html
});

test('--by=day: a commit counts on its author\'s local day (metadata.tz), other entries on the --tz day, across a DST change', async (t) => {
  const s = withTempStore(t);
  writeBatch(s.dataRoot, [
    commit('late', 'alice', '2026-03-01T23:30:00Z', { tz: '+0200' }), // 01:30 on 03-02 for its author, whatever --tz says
    commit('west', 'alice', '2026-03-02T02:00:00Z', { tz: '-0500' }), // 21:00 on 03-01 in New York
    session('alice', 'a', '2026-03-01T23:30:00Z', H), // 00:30 on 03-02 in Berlin (CET), 03-01 in UTC
    session('alice', 'b', '2026-03-29T22:30:00Z', H), // 00:30 CEST on 03-30 in Berlin (DST since 01:00Z on 03-29)
  ]);
  const utc = await report(s, { by: 'day' });
  t.deepEqual(
    utc.rows.map((row) => [row.key, row.entries, row.commits, row.trackedMs]),
    [
      ['2026-03-01', 2, 1, H],
      ['2026-03-02', 1, 1, 0],
      ['2026-03-29', 1, 0, H],
    ],
  );
  t.is(utc.timeZone, 'UTC');
  const berlin = await report(s, { by: 'day', tz: 'Europe/Berlin' });
  t.deepEqual(
    berlin.rows.map((row) => [row.key, row.entries, row.commits, row.trackedMs]),
    [
      ['2026-03-01', 1, 1, 0],
      ['2026-03-02', 2, 1, H],
      ['2026-03-30', 1, 0, H],
    ],
  );
  t.is(berlin.timeZone, 'Europe/Berlin');
  const offset = await report(s, { by: 'day', tz: '+01:00' });
  t.deepEqual(offset.rows.map((row) => row.key), ['2026-03-01', '2026-03-02', '2026-03-29']);
  t.is(offset.timeZone, '+01:00');
});

test('--since/--until: days are inclusive and compared with the entry\'s day; instants with its timestamp', async (t) => {
  const s = withTempStore(t);
  writeBatch(s.dataRoot, [
    session('u', '1', '2026-03-01T23:59:59Z', H),
    session('u', '2', '2026-03-02T00:00:00Z', H),
    session('u', '3', '2026-03-03T12:00:00Z', H),
    session('u', '4', '2026-03-04T00:00:00Z', H),
    commit('x', 'u', '2026-03-04T22:30:00Z', { tz: '-0300' }), // 19:30 on 03-04 for its author
  ]);
  const days = await report(s, { by: 'day', since: '2026-03-02', until: '2026-03-04' });
  t.deepEqual(days.rows.map((row) => [row.key, row.entries]), [['2026-03-02', 1], ['2026-03-03', 1], ['2026-03-04', 2]]);
  t.is(days.excluded.outOfRange, 1);
  t.deepEqual(days.range, { since: '2026-03-02', until: '2026-03-04', firstDay: '2026-03-02', lastDay: '2026-03-04' });
  const instants = await report(s, { by: 'day', since: '2026-03-02T00:00:01Z', until: '2026-03-04T01:00:00+01:00' });
  t.deepEqual(instants.rows.map((row) => [row.key, row.entries]), [['2026-03-03', 1], ['2026-03-04', 1]]);
  t.deepEqual(instants.range, { since: '2026-03-02T00:00:01.000Z', until: '2026-03-04T00:00:00.000Z', firstDay: '2026-03-03', lastDay: '2026-03-04' });
  // In Berlin the first session is on 03-02 (00:59:59 CET): the same bound now includes it.
  const berlin = await report(s, { by: 'day', since: '2026-03-02', until: '2026-03-02', tz: 'Europe/Berlin' });
  t.deepEqual(berlin.rows.map((row) => [row.key, row.entries]), [['2026-03-02', 2]]);
});

test('a session re-imported with a longer duration is stored again and counted once, at its latest duration', async (t) => {
  const s = withTempStore(t, { batchSize: 500 });
  const timeJson = path.join(s.dataRoot, 'user', 'alice', 'time.json');
  fs.mkdirSync(path.dirname(timeJson), { recursive: true });
  const write = (end: string) =>
    fs.writeFileSync(timeJson, JSON.stringify({ userId: 'alice', sessions: [{ id: 's1', taskId: 'T-7', startTime: '2026-03-02T09:00:00Z', endTime: end }, { id: 's2', startTime: '2026-03-02T14:00:00Z', endTime: '2026-03-02T14:30:00Z' }] }));
  const importSessions = () => aggregate.run({ entry: [], source: ['sessions'] }, s.ctx);

  write('2026-03-02T10:00:00Z');
  t.like(await importSessions(), { accepted: 2, duplicates: 0 });
  t.like(await importSessions(), { accepted: 0, duplicates: 2 }); // unchanged: nothing new
  write('2026-03-02T11:15:00Z'); // s1 went on for 1 h 15 min more
  t.like(await importSessions(), { accepted: 1, duplicates: 1 });

  const r = await report(s, { by: 'task' });
  t.deepEqual(r.rows, [
    { key: '(none)', entries: 1, commits: 0, trackedMs: 30 * 60_000 },
    { key: 'T-7', entries: 1, commits: 0, trackedMs: 2.25 * H },
  ]);
  t.deepEqual(r.totals, { entries: 2, commits: 0, trackedMs: 2.75 * H });
  t.is(r.excluded.supersededSessions, 1);
  t.is(r.excluded.duplicates, 0);
});

test('a longer session counts once even when its earlier import is in a batch file and the later one pending; sessions of two users with the same id stay apart', async (t) => {
  const s = withTempStore(t, { batchSize: 500 });
  writeBatch(s.dataRoot, [session('alice', 's1', '2026-03-02T09:00:00Z', H), session('bob', 's1', '2026-03-02T09:00:00Z', H)]);
  await appendPending(s, [session('alice', 's1', '2026-03-02T09:00:00Z', 3 * H)]);
  const r = await report(s);
  t.deepEqual(r.rows, [
    { key: 'alice', entries: 1, commits: 0, trackedMs: 3 * H },
    { key: 'bob', entries: 1, commits: 0, trackedMs: H },
  ]);
  t.is(r.excluded.supersededSessions, 1);
});

test('piped time-tracking entries that share a metadata.sessionId each count: only sessions-source ids are re-imports of one session', async (t) => {
  const s = withTempStore(t, { batchSize: 500 });
  const piped = (taskId: string, iso: string, minutes: number) => ({ userId: 'ana', action: 'time-tracking', timestamp: iso, metadata: { sessionId: 'daily', taskId, duration: minutes * 60_000 } });
  const r0 = await aggregate.run(
    { entry: [JSON.stringify([piped('A', '2026-03-02T09:00:00Z', 25), piped('B', '2026-03-02T10:00:00Z', 25), piped('C', '2026-03-03T09:00:00Z', 20)])], source: [] },
    s.ctx,
  );
  t.like(r0, { accepted: 3, pending: 3 });
  // The same three entries in a batch file too (a flush met while reading): still 3, not 9.
  const { pending } = readPendingSnapshot(storeLayout(s.dataRoot).journal, s.ctx.fs);
  writeBatch(s.dataRoot, pending);
  const r = await report(s, { by: 'task' });
  t.deepEqual(r.rows, [
    { key: 'A', entries: 1, commits: 0, trackedMs: 25 * 60_000 },
    { key: 'B', entries: 1, commits: 0, trackedMs: 25 * 60_000 },
    { key: 'C', entries: 1, commits: 0, trackedMs: 20 * 60_000 },
  ]);
  t.deepEqual(r.totals, { entries: 3, commits: 0, trackedMs: 70 * 60_000 });
  t.is(r.excluded.supersededSessions, 0);
  t.is(r.excluded.duplicates, 3);
  const text = renderText(await report(s, { by: 'user' }));
  t.regex(text, /│ ana +│ +3 │ +0 │ +1\.17 │/);
  t.false(text.includes('earlier import'));
});

test('sessions-source re-imports group by id without the duration: old-format ids, pseudonymized folders; a piped session: id is not grouped', (t) => {
  t.is(sessionGroup('session:alice:s1:3600000'), 'session:alice:s1');
  t.is(sessionGroup('session:alice:start-1772442000000:900000'), 'session:alice:start-1772442000000');
  t.is(sessionGroup('session:u_0123456789abcdef01234567:s1:60000'), 'session:u_0123456789abcdef01234567:s1');
  t.is(sessionGroup('session:alice:s1'), 'session:alice:s1'); // older format: the group as is
  t.is(sessionGroup('session:alice:a:b:5'), 'session:alice:a:b');
  t.is(sessionGroup('ana-daily-1'), undefined);
  t.is(sessionGroup('session:alice'), undefined);
  const acc = createReportAccumulator({ by: 'user', zone: parseReportZone(undefined), redactKeys: [] });
  const old: Entry = { entryId: 'session:alice:s1', userId: 'alice', action: 'time-tracking', timestamp: Date.parse('2026-03-02T09:00:00Z'), metadata: { sessionId: 's1', duration: H } };
  acc.add(old, { at: 1, container: 0 });
  acc.add(session('alice', 's1', '2026-03-02T09:00:00Z', 2 * H), { at: 2, container: 1 });
  // Not a sessions-source id (a note someone piped), though shaped alike in metadata: counts on its own.
  acc.add({ ...old, entryId: 'piped-1', metadata: { sessionId: 's1', duration: H } }, { at: 2, container: 1 });
  const sum = acc.finish();
  t.deepEqual(sum.rows, [{ key: 'alice', entries: 2, commits: 0, trackedMs: 3 * H }]);
  t.is(sum.supersededSessions, 1);
});

test('a session corrected downwards counts at its latest import (the one stored last), not its longest', async (t) => {
  const s = withTempStore(t, { batchSize: 500 });
  const day1 = Date.UTC(2026, 2, 2, 18);
  const day2 = Date.UTC(2026, 2, 3, 18);
  // A forgotten timer: 2 h stored first, corrected to 30 min in a later batch file (listed first by name).
  writeBatch(s.dataRoot, [session('alice', 's1', '2026-03-02T09:00:00Z', 2 * H, 'T-1')], { at: day2 });
  writeBatch(s.dataRoot, [session('alice', 's1', '2026-03-02T09:00:00Z', 30 * 60_000, 'T-1')], { at: day2 + 1 });
  // bob: 3 h in a failed batch, corrected to 1 h, still pending: pending is later than any batch.
  writeFailed(s.dataRoot, [session('bob', 's1', '2026-03-02T09:00:00Z', 3 * H)], day1);
  await appendPending(s, [session('bob', 's1', '2026-03-02T09:00:00Z', H)]);
  // carol: both imports in one batch file, the shorter one stored after the longer one.
  writeBatch(s.dataRoot, [session('carol', 's1', '2026-03-02T09:00:00Z', 4 * H), session('carol', 's1', '2026-03-02T09:00:00Z', 15 * 60_000)], { at: day1 });
  // dave: two batch files with the same flush time: the longer duration.
  writeBatch(s.dataRoot, [session('dave', 's1', '2026-03-02T09:00:00Z', 2 * H)], { at: day1 });
  writeBatch(s.dataRoot, [session('dave', 's1', '2026-03-02T09:00:00Z', H)], { at: day1 });
  s.clock.advance(1_000);
  const r = await report(s);
  t.deepEqual(r.rows, [
    { key: 'alice', entries: 1, commits: 0, trackedMs: 30 * 60_000 },
    { key: 'bob', entries: 1, commits: 0, trackedMs: H },
    { key: 'carol', entries: 1, commits: 0, trackedMs: 15 * 60_000 },
    { key: 'dave', entries: 1, commits: 0, trackedMs: 2 * H },
  ]);
  t.deepEqual(r.totals, { entries: 4, commits: 0, trackedMs: 3.75 * H });
  t.is(r.excluded.supersededSessions, 4);
  t.is(r.excluded.duplicates, 0);
  // Team scope, same rule: the clone's later batch file wins over the local earlier one.
  writeBatch(s.dataRoot, [session('erin', 's9', '2026-03-02T09:00:00Z', 5 * H)], { at: day1 });
  writeBatch(s.dataRoot, [session('erin', 's9', '2026-03-02T09:00:00Z', 45 * 60_000)], { at: day2, clone: 'clone-b' });
  const team = await report(s, { scope: 'team' });
  t.deepEqual(team.rows.find((row) => row.key === 'erin'), { key: 'erin', entries: 1, commits: 0, trackedMs: 45 * 60_000 });
  t.is(team.excluded.supersededSessions, 5);
});

test('--by=task, branch and action: missing values are "(none)"; commits count commit entries only', async (t) => {
  const s = withTempStore(t);
  writeBatch(s.dataRoot, [
    commit('1', 'u', '2026-03-02T10:00:00Z', { branch: 'feature/x' }),
    commit('2', 'u', '2026-03-02T11:00:00Z', { branch: null }),
    session('u', 'a', '2026-03-02T08:00:00Z', H, 'T-1'),
    { entryId: 'co-1', userId: 'u', action: 'checkout', timestamp: Date.parse('2026-03-02T12:00:00Z'), metadata: { branch: 'main', from: 'a', to: 'b' } },
  ]);
  t.deepEqual((await report(s, { by: 'branch' })).rows.map((row) => [row.key, row.entries, row.commits]), [['(none)', 2, 1], ['feature/x', 1, 1], ['main', 1, 0]]);
  t.deepEqual((await report(s, { by: 'task' })).rows.map((row) => [row.key, row.entries]), [['(none)', 3], ['T-1', 1]]);
  t.deepEqual((await report(s, { by: 'action' })).rows.map((row) => [row.key, row.entries, row.commits, row.trackedMs]), [['checkout', 1, 0, 0], ['commit', 2, 2, 0], ['time-tracking', 1, 0, H]]);
});

test('team scope adds other clones\' batch files; the same commit imported by two clones counts once; without team/ it is local scope plus a note', async (t) => {
  const s = withTempStore(t);
  const shared = commit('5ha', 'alice', '2026-03-02T10:00:00Z');
  writeBatch(s.dataRoot, [shared, session('alice', 's1', '2026-03-02T08:00:00Z', H)]);

  const alone = await report(s, { scope: 'team' });
  t.is(alone.sources.teamClones, 0);
  t.deepEqual(alone.totals, { entries: 2, commits: 1, trackedMs: H });
  t.deepEqual(alone.warnings, ["no team data in team/ yet (aggregate-sync materializes other clones' batch files there): team scope shows local data only"]);

  writeBatch(s.dataRoot, [shared, session('bob', 's1', '2026-03-02T08:00:00Z', 2 * H), commit('b0b', 'bob', '2026-03-02T11:00:00Z')], { clone: 'clone-b' });
  writeBatch(s.dataRoot, [session('carol', 's9', '2026-03-03T08:00:00Z', H)], { clone: 'clone-c' });
  fs.writeFileSync(path.join(s.dataRoot, 'team', 'clone-c', 'batch_1773100800001_00000001.json.12345'), 'a temp file: not a batch');

  const team = await report(s, { scope: 'team' });
  t.deepEqual(team.rows, [
    { key: 'alice', entries: 2, commits: 1, trackedMs: H },
    { key: 'bob', entries: 2, commits: 1, trackedMs: 2 * H },
    { key: 'carol', entries: 1, commits: 0, trackedMs: H },
  ]);
  t.deepEqual(team.sources, { batchFiles: 1, failedBatches: 0, pendingEntries: 0, teamClones: 2, teamBatchFiles: 2 });
  t.is(team.excluded.duplicates, 1);
  t.deepEqual(team.warnings, []);
  const local = await report(s, { scope: 'local' });
  t.deepEqual(local.totals, { entries: 2, commits: 1, trackedMs: H });
});

test('a damaged, tampered or newer-version batch file stops the report (exit 1) and every such file is listed', async (t) => {
  const s = withTempStore(t);
  writeBatch(s.dataRoot, [commit('ok', 'u', '2026-03-02T10:00:00Z')]);
  const tampered = writeBatch(s.dataRoot, [session('u', 'a', '2026-03-02T08:00:00Z', H)], {
    mutate: (b) => ({ ...b, entries: b.entries.map((e) => ({ ...e, metadata: { ...e.metadata, duration: 10 * H } })) }),
  });
  const newer = writeBatch(s.dataRoot, [commit('new', 'u', '2026-03-02T10:00:00Z')], { mutate: (b) => ({ ...b, version: '3.0.0' }) });
  const teamBad = path.join(s.dataRoot, 'team', 'clone-b', 'batch_1773100800000_0000abcd.json');
  fs.mkdirSync(path.dirname(teamBad), { recursive: true });
  fs.writeFileSync(teamBad, '{"batchId": "batch_1773100800000_0000abcd", "entries": [');

  // Local scope does not read team/.
  const error = await t.throwsAsync(report(s), { code: 'E_CORRUPT' } as never);
  t.is((error as { exitCode?: number }).exitCode, 1);
  const rel = (f: string) => path.relative(s.dataRoot, f);
  t.deepEqual((error as unknown as { details: unknown[] }).details, [
    { path: rel(tampered), message: 'does not match its checksum (entries changed after it was written)' },
    { path: rel(newer), message: `${rel(newer)} has version 3.0.0; this FlowForge Aggregation reads batch format 2.x — upgrade the product` },
  ].sort((a, b) => (a.path < b.path ? -1 : 1)));
  const teamError = await t.throwsAsync(report(s, { scope: 'team' }));
  t.is((teamError as unknown as { details: unknown[] }).details.length, 3);
  t.true((teamError as unknown as { details: Array<{ path: string; message: string }> }).details.some((d) => d.path === 'team/clone-b/batch_1773100800000_0000abcd.json' && d.message === 'is not valid JSON'));
});

test('a checksummed batch whose entries are not in stored form (ISO timestamp, epoch seconds, negative duration) stops the report instead of crashing or billing nonsense', async (t) => {
  const s = withTempStore(t);
  const base = commit('ok', 'u', '2026-03-02T10:00:00Z');
  const forms: Array<[string, Entry]> = [
    ['iso', { ...base, entryId: 'iso', timestamp: '2026-03-02T10:00:00Z' as unknown as number }],
    ['seconds', { ...base, entryId: 'seconds', timestamp: 1_772_445_600 }],
    ['duration', { ...base, entryId: 'duration', metadata: { ...base.metadata, duration: -5 } }],
  ];
  const rel = (f: string) => path.relative(s.dataRoot, f);
  for (const [name, bad] of forms) {
    const file = writeBatch(s.dataRoot, [base, bad], { clone: `clone-${name}` });
    const error = await t.throwsAsync(report(s, { scope: 'team' }));
    t.is((error as { code?: string }).code, 'E_CORRUPT', name);
    t.deepEqual((error as unknown as { details: unknown[] }).details, [
      { path: rel(file), message: 'entries[1] is not a stored entry (timestamp in integer epoch ms since 2000, metadata.duration 0–7 days in whole ms)' },
    ]);
    fs.rmSync(file);
  }
});

test('an unreadable batch file is E_IO naming the file; an older-format one says to run aggregate-migrate, in the headline', async (t) => {
  const s = withTempStore(t);
  const good = writeBatch(s.dataRoot, [commit('ok', 'u', '2026-03-02T10:00:00Z')]);
  const rel = path.relative(s.dataRoot, good);
  s.setFs(createFaultyFsPort((op, args) => (op === 'readFile' && args[0] === good ? 'EACCES' : undefined)));
  const io = await t.throwsAsync(report(s));
  t.like(io, { code: 'E_IO', exitCode: 1 } as never);
  t.is(
    io!.message,
    `Could not read ${rel} under ${s.dataRoot} (cannot be read: EACCES: injected fault on readFile ${good}), so no report was made and nothing was changed: check the file's permissions and the disk.`,
  );
  t.false(io!.message.includes('aggregate-validate'));
  t.deepEqual((io as unknown as { details: unknown[] }).details, [{ path: rel, message: `cannot be read: EACCES: injected fault on readFile ${good}` }]);

  s.setFs(createNodeFsPort());
  const legacyFile = path.join(storeLayout(s.dataRoot).aggregated, 'batch_1773100800000_00000001.json');
  fs.writeFileSync(legacyFile, JSON.stringify({ batchId: 'batch_1773100800000_00000001', timestamp: 1773100800, entries: [{ userId: 'u', action: 'x', timestamp: 1773100800 }] }));
  const legacyRel = path.relative(s.dataRoot, legacyFile);
  const legacy = await t.throwsAsync(report(s));
  t.like(legacy, { code: 'E_CORRUPT', exitCode: 1 } as never);
  t.is(
    legacy!.message,
    `1 stored file(s) under ${s.dataRoot} could not be trusted, so no report was made (a total without them would be wrong): ${legacyRel} is in the older batch format (no version): run provider-bridge aggregate-migrate to upgrade it.`,
  );
  t.false(legacy!.message.includes('aggregate-validate'));
  t.deepEqual((legacy as unknown as { details: unknown[] }).details, [{ path: legacyRel, message: BATCH_MESSAGES.legacy(legacyRel, null) }]);
});

test('redaction: a field under a redaction key is shown as [REDACTED], and a redacted value appears in no format', async (t) => {
  // Stored before `taskId` was added to the redaction list, and by an old clone that did not redact apiKey.
  const s = withTempStore(t, { privacy: { redactKeys: ['token', 'password', 'secret', 'apiKey', 'authorization', 'cookie', 'taskId'] } });
  const leaky: Entry = { ...session('alice', 's1', '2026-03-02T08:00:00Z', H, 'ACME-merger-4711'), metadata: { apiKey: 'sk-live-0xDEADBEEF', duration: H, sessionId: 's1', taskId: 'ACME-merger-4711' } };
  writeBatch(s.dataRoot, [leaky, session('bob', 's2', '2026-03-03T08:00:00Z', 2 * H, 'ACME-merger-4711'), commit('c', 'bob', '2026-03-03T10:00:00Z')]);
  for (const by of ['task', 'user', 'day', 'branch', 'action']) {
    const r = await report(s, { by, format: 'html' });
    const documents = [JSON.stringify({ ok: true, result: r }), renderText(r), await renderCsv(r), await renderHtml(r)];
    for (const doc of documents) {
      t.false(doc.includes('ACME-merger-4711'), `--by=${by}`);
      t.false(doc.includes('sk-live-0xDEADBEEF'), `--by=${by}`);
    }
    if (by === 'task') t.deepEqual(r.rows.map((row) => [row.key, row.entries, row.trackedMs]), [['(none)', 1, 0], ['[REDACTED]', 2, 3 * H]]);
    t.deepEqual(r.daily?.tasks.map((x) => x.task), ['[REDACTED]']); // the chart's stacks are tasks too
  }
});

test('the age trigger is applied before reading; a held store lock neither stops nor delays the report', async (t) => {
  const s = withTempStore(t, { batchSize: 500, maxAge: 30_000 });
  await appendPending(s, [session('u', 'a', '2026-03-02T08:00:00Z', H), session('u', 'b', '2026-03-02T09:00:00Z', H)]);
  const lock = await acquireLock(storeLayout(s.dataRoot).lockTarget);
  s.clock.advance(60_000);
  const started = performance.now();
  const locked = await report(s);
  await lock.release();
  t.true(performance.now() - started < 5_000); // not the 30 s lock timeout
  t.deepEqual(locked.flushed, []);
  t.deepEqual(locked.totals, { entries: 2, commits: 0, trackedMs: 2 * H });
  t.is(locked.sources.pendingEntries, 2);

  const free = await report(s);
  t.is(free.flushed.length, 1);
  t.like(free.flushed[0], { entryCount: 2, trigger: 'age' });
  t.deepEqual(free.totals, { entries: 2, commits: 0, trackedMs: 2 * H });
  t.deepEqual(free.sources, { batchFiles: 1, failedBatches: 0, pendingEntries: 0, teamClones: 0, teamBatchFiles: 0 });
});

test('a report on a folder with no store is empty and creates nothing', async (t) => {
  const s = withTempStore(t);
  const r = await report(s, { by: 'day' });
  t.deepEqual(r.rows, []);
  t.deepEqual(r.totals, { entries: 0, commits: 0, trackedMs: 0 });
  t.deepEqual(r.range, { since: null, until: null, firstDay: null, lastDay: null });
  t.false(fs.existsSync(s.dataRoot));
});

test('text is an aligned table with a total row; csv has a header and quotes what needs it', async (t) => {
  const s = withTempStore(t);
  writeBatch(s.dataRoot, [
    session('alice', 'a', '2026-03-02T08:00:00Z', 90 * 60_000),
    commit('c', 'bob, the "builder"', '2026-03-02T10:00:00Z'),
    session('=HYPERLINK("http://x")', 'b', '2026-03-02T08:00:00Z', 36_000),
  ]);
  const r = await report(s, { by: 'user' });
  t.is(
    renderText(r),
    [
      'Time report by user: 2026-03-02',
      "days in UTC (commits on their author's local day); local scope",
      '┌────────────────────────┬─────────┬─────────┬─────────────┐',
      '│ user                   │ entries │ commits │ tracked (h) │',
      '├────────────────────────┼─────────┼─────────┼─────────────┤',
      '│ =HYPERLINK("http://x") │       1 │       0 │        0.01 │',
      '│ alice                  │       1 │       0 │        1.50 │',
      '│ bob, the "builder"     │       1 │       1 │        0.00 │',
      '│ (total)                │       3 │       1 │        1.51 │',
      '└────────────────────────┴─────────┴─────────┴─────────────┘',
    ].join('\n'),
  );
  t.is(
    await renderCsv(r),
    ['user,entries,commits,trackedMs,trackedHours', `"'=HYPERLINK(""http://x"")",1,0,36000,0.01`, 'alice,1,0,5400000,1.50', '"bob, the ""builder""",1,1,0,0.00', ''].join('\n'),
  );
});

test('control and bidi characters in a key are shown as \\u escapes in text, csv and html; JSON keeps the raw value; a user called "total" is not the (total) row', async (t) => {
  const s = withTempStore(t);
  const evil = 'line\u202Eevil\tx';
  writeBatch(s.dataRoot, [
    session('total', 'a', '2026-03-02T08:00:00Z', H, evil),
    session('bob', 'b', '2026-03-02T09:00:00Z', 30 * 60_000, 'nl\nbr\u2066\u0085'),
  ]);
  const byTask = await report(s, { by: 'task', format: 'html' });
  t.deepEqual(byTask.rows.map((row) => row.key), ['line\u202Eevil\tx', 'nl\nbr\u2066\u0085']); // raw in the result (JSON)
  t.true(JSON.stringify(byTask.rows).includes('"key":"line\u202Eevil\\tx"')); // JSON: the raw U+202E, the tab as JSON's \t
  const text = renderText(byTask);
  t.is(
    text,
    [
      'Time report by task: 2026-03-02',
      "days in UTC (commits on their author's local day); local scope",
      '┌────────────────────────┬─────────┬─────────┬─────────────┐',
      '│ task                   │ entries │ commits │ tracked (h) │',
      '├────────────────────────┼─────────┼─────────┼─────────────┤',
      '│ line\\u202Eevil\\u0009x  │       1 │       0 │        1.00 │',
      '│ nl\\u000Abr\\u2066\\u0085 │       1 │       0 │        0.50 │',
      '│ (total)                │       2 │       0 │        1.50 │',
      '└────────────────────────┴─────────┴─────────┴─────────────┘',
    ].join('\n'),
  );
  t.is(
    await renderCsv(byTask),
    'task,entries,commits,trackedMs,trackedHours\nline\\u202Eevil\\u0009x,1,0,3600000,1.00\nnl\\u000Abr\\u2066\\u0085,1,0,1800000,0.50\n',
  );
  const html = await renderHtml(byTask);
  t.true(html.includes('<td>line\\u202Eevil\\u0009x</td>'));
  t.true(html.includes('"task":"line\\\\u202Eevil\\\\u0009x"')); // chart label, in the JSON data block
  t.false(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/.test(html.replace(/<script>[\s\S]*?<\/script>/g, '')));

  const byUser = renderText(await report(s, { by: 'user' }));
  const lines = byUser.split('\n');
  t.deepEqual(lines.slice(-4), [
    '│ bob     │       1 │       0 │        0.50 │',
    '│ total   │       1 │       0 │        1.00 │',
    '│ (total) │       2 │       0 │        1.50 │',
    '└─────────┴─────────┴─────────┴─────────────┘',
  ]);
});

test('option values: --tz, --since and --until are checked and named', (t) => {
  t.is(parseReportZone(undefined).name, 'UTC');
  t.is(parseReportZone('-0530').name, '-05:30');
  t.is(parseReportZone('+14:00').name, '+14:00');
  t.is(parseReportZone('America/New_York').dayOf(Date.parse('2026-03-02T04:59:59Z')), '2026-03-01');
  for (const bad of ['+15:00', '+02:60', 'Mars/Olympus', 'CEST+2', '']) {
    t.throws(() => parseReportZone(bad), { code: 'E_USAGE', message: /^--tz / } as never, bad);
  }
  t.deepEqual(parseBound('--since', '2026-03-01'), { day: '2026-03-01' });
  t.deepEqual(parseBound('--until', '2026-03-01T09:00:00.5+01:00'), { instant: Date.parse('2026-03-01T08:00:00.500Z') });
  for (const bad of ['2026-02-30', '2026-3-1', '2026-03-01T09:00', '2026-03-01T25:00:00Z', 'yesterday', '1772323200000']) {
    t.throws(() => parseBound('--until', bad), { code: 'E_USAGE', message: /^--until / } as never, bad);
  }
});

test('--output that cannot be written, or a store folder that cannot be read, is exit 1 naming the file', async (t) => {
  const s = withTempStore(t);
  writeBatch(s.dataRoot, [commit('c', 'u', '2026-03-02T10:00:00Z')]);
  const out = path.join(s.ctx.cwd, 'report.csv');
  s.setFs(createFaultyFsPort((op, args) => (op === 'writeFileDurable' && args[0] === out ? 'ENOSPC' : undefined)));
  const write = await t.throwsAsync(report(s, { format: 'csv', output: 'report.csv' }));
  t.like(write, { code: 'E_IO', exitCode: 1 } as never);
  t.regex(write!.message, new RegExp(`^Could not write the report to ${out}: ENOSPC`));
  t.false(fs.existsSync(out));
  s.setFs(createFaultyFsPort((op, args) => (op === 'readdir' && String(args[0]).endsWith('aggregated') ? 'EACCES' : undefined)));
  const read = await t.throwsAsync(report(s));
  t.like(read, { code: 'E_IO', exitCode: 1 } as never);
  t.regex(read!.message, /^Could not use the data root .*: EACCES on .*aggregated/);
});
