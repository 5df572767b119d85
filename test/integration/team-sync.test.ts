/**
 * Team sync through git with real git: a bare remote on disk and clones with different authors,
 * each with its own data root (`<clone>/.flowforge`), running the compiled CLI.
 */
import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, runCli, type CliRun } from '../helpers/cli.js';
import { withGitRepo, type GitRepo } from '../helpers/git-repo.js';

const PAST = Date.UTC(2026, 0, 15, 9, 30);

interface Author {
  name: string;
  email: string;
}
const ALICE: Author = { name: 'Alice Able', email: 'alice@example.com' };
const BOB: Author = { name: 'Bob Brown', email: 'bob@example.com' };
const CAROL: Author = { name: 'Carol Curie', email: 'carol@example.com' };

interface Clone {
  dir: string;
  dataRoot: string;
  git(args: string[]): string;
  cli(args: string[]): CliRun;
  /** Commits a file as this clone's author and records it through the hook's path. */
  commitAndRecord(file: string): string;
  /** Adds one entry and flushes everything pending into a batch; returns the batch id. */
  batch(entries: Array<Record<string, unknown>>): string;
  /** Local batch ids, sorted. */
  localBatches(): string[];
  /** team/<cloneId>/ batch ids, sorted. */
  teamBatches(cloneId: string): string[];
  /** Every ref under refs/ with its id (the user's and ours). */
  refs(): string;
}

interface Team {
  base: GitRepo;
  remote: string;
  remoteGit(args: string[]): string;
  clone(name: string, author: Author): Clone;
}

function setUpTeam(t: Parameters<typeof withGitRepo>[0]): Team {
  const base = withGitRepo(t, { init: false });
  const remote = path.join(base.root, 'remote.git');
  base.git(['init', '-q', '--bare', '-b', 'main', remote], { cwd: base.root });
  // The first history, so clones share commits like a real team.
  const seed = path.join(base.root, 'seed');
  base.git(['init', '-q', '-b', 'main', seed], { cwd: base.root });
  fs.writeFileSync(path.join(seed, 'README.md'), 'project\n');
  base.git(['add', '-A'], { cwd: seed });
  base.git(['-c', 'user.name=Seed', '-c', 'user.email=seed@example.com', 'commit', '-q', '-m', 'start'], { cwd: seed });
  base.git(['push', '-q', remote, 'main'], { cwd: seed });
  let n = 0;
  const clone = (name: string, author: Author): Clone => {
    const dir = path.join(base.root, name);
    base.git(['clone', '-q', remote, dir], { cwd: base.root });
    const git = (args: string[]) => base.git(args, { cwd: dir });
    git(['config', 'user.name', author.name]);
    git(['config', 'user.email', author.email]);
    git(['config', 'commit.gpgsign', 'false']);
    const dataRoot = path.join(dir, '.flowforge');
    const cli = (args: string[]) => runCli(args, { cwd: dir, env: base.env });
    const ids = (dir2: string) =>
      fs.existsSync(dir2)
        ? fs
            .readdirSync(dir2)
            .filter((f) => /^batch_\d{13}_[0-9a-f]{8}\.json$/.test(f))
            .map((f) => f.slice(0, -5))
            .sort()
        : [];
    return {
      dir,
      dataRoot,
      git,
      cli,
      commitAndRecord(file) {
        fs.writeFileSync(path.join(dir, file), `${file} ${++n}\n`);
        git(['add', file]);
        base.git(['commit', '-q', '-m', `work on ${file}`], { cwd: dir, env: { ...base.env, GIT_AUTHOR_DATE: `${PAST / 1000 + n} +0100`, GIT_COMMITTER_DATE: `${PAST / 1000 + n} +0100` } });
        const r = cli(['aggregate', '--source=git-commit']);
        if (r.code !== 0) throw new Error(r.stdout + r.stderr);
        return git(['rev-parse', 'HEAD']);
      },
      batch(entries) {
        if (entries.length > 0) {
          const r = cli(['aggregate', ...entries.map((e) => `--entry=${JSON.stringify(e)}`)]);
          if (r.code !== 0) throw new Error(r.stdout + r.stderr);
        }
        const force = cli(['aggregate-force']);
        if (force.code !== 0 || force.json.result.flushed.length !== 1) throw new Error(force.stdout + force.stderr);
        return force.json.result.flushed[0].batchId;
      },
      localBatches: () => ids(path.join(dataRoot, 'aggregated')),
      teamBatches: (cloneId) => ids(path.join(dataRoot, 'team', cloneId)),
      refs: () => git(['for-each-ref', '--format=%(objectname) %(refname)']),
    };
  };
  return { base, remote, remoteGit: (args) => base.git(args, { cwd: remote }), clone };
}

const entry = (id: string, userId: string, minutes = 0) => ({ entryId: id, userId, action: 'review', timestamp: PAST + minutes * 60_000, metadata: { duration: 1_800_000 } });

/** The raw bytes of every object reachable from `ref` in `gitDir` (commits, trees, blobs). */
function reachableObjects(team: Team, ref: string): Buffer {
  const ids = team
    .remoteGit(['rev-list', '--objects', ref])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
  return execFileSync('git', ['cat-file', '--batch'], { cwd: team.remote, env: team.base.env, input: ids.join('\n') + '\n', maxBuffer: 64 * 1024 * 1024 });
}

/** Loose objects and packed objects of a repository (`git count-objects -v`). */
function objectCount(clone: Clone): string {
  return clone
    .git(['count-objects', '-v'])
    .split('\n')
    .filter((l) => /^(count|in-pack):/.test(l))
    .join(' ');
}

test('three clones share batches through their own refs; offline sync catches up; a second sync changes nothing; anonymized users stay anonymous', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  const b = team.clone('bob', BOB);
  const c = team.clone('carol', CAROL);

  // Alice: two batches (an entry; a commit recorded through the hook's path).
  a.batch([entry('a-1', ALICE.name)]);
  a.commitAndRecord('a.txt');
  a.batch([]);
  // Bob: one batch with an entry and a commit.
  b.commitAndRecord('b.txt');
  b.batch([entry('b-1', BOB.name, 5)]);
  // Carol: one batch before she turns anonymizeUsers on, one after.
  const carolLegacy = c.batch([entry('c-1', CAROL.name, 10)]);
  fs.writeFileSync(path.join(c.dir, 'flowforge.config.json'), JSON.stringify({ privacy: { anonymizeUsers: true } }));
  c.commitAndRecord('c.txt');
  c.batch([entry('c-2', CAROL.name, 20)]);
  t.true(fs.readFileSync(path.join(c.dataRoot, 'aggregated', `${carolLegacy}.json`), 'utf8').includes(CAROL.name), 'the legacy batch holds the clear name locally');

  // Alice syncs first: her working tree, index, HEAD and branches stay as they were.
  const before = { head: a.git(['rev-parse', 'HEAD']), status: a.git(['status', '--porcelain']), branches: a.git(['for-each-ref', 'refs/heads', 'refs/remotes']) };
  const a1 = a.cli(['aggregate-sync']);
  t.is(a1.code, 0, a1.stdout + a1.stderr);
  const aliceId: string = a1.json.result.cloneId;
  t.regex(aliceId, /^[0-9a-f]{32}$/);
  t.like(a1.json.result, { remote: 'origin', published: { ref: `refs/flowforge/aggregated/${aliceId}`, batches: 2, total: 2, committed: true }, pushed: true, fetched: { clones: 0, batches: 0, entries: 0 }, problems: [] });
  t.deepEqual({ head: a.git(['rev-parse', 'HEAD']), status: a.git(['status', '--porcelain']), branches: a.git(['for-each-ref', 'refs/heads', 'refs/remotes']) }, before);
  t.is(a.git(['cat-file', '-p', a1.json.result.published.commit]).split('\n').filter((l) => /^(author|committer) /.test(l)).map((l) => l.replace(/ \d+ \+0000$/, '')).join('\n'), 'author FlowForge Aggregation <flowforge@localhost>\ncommitter FlowForge Aggregation <flowforge@localhost>');

  const b1 = b.cli(['aggregate-sync']);
  t.is(b1.code, 0, b1.stdout + b1.stderr);
  const bobId: string = b1.json.result.cloneId;
  t.like(b1.json.result, { published: { batches: 1, total: 1 }, pushed: true, fetched: { clones: 1, batches: 2, entries: 2 } });

  // Carol is offline: the remote's path is missing.
  c.git(['remote', 'set-url', 'origin', path.join(team.base.root, 'moved-away.git')]);
  const c1 = c.cli(['aggregate-sync']);
  t.is(c1.code, 1);
  t.is(c1.json.error.code, 'E_SYNC');
  const carolId = fs.readFileSync(path.join(c.dataRoot, 'sync/clone.json'), 'utf8').match(/[0-9a-f]{32}/)![0];
  const carolRef = `refs/flowforge/aggregated/${carolId}`;
  t.regex(c1.json.error.message, /^Could not reach the git remote "origin": fatal: .*moved-away\.git/);
  t.true(c1.json.error.message.includes(`Local batches are committed to the local ref ${carolRef}`), c1.json.error.message);
  t.regex(c1.json.error.message, /2 batch\(es\), 2 new\) and nothing is lost: the next aggregate-sync pushes them/);
  const carolOffline = c.git(['rev-parse', carolRef]);
  t.deepEqual(c1.json.error.details.find((d: { path: string }) => d.path === carolRef)?.value, carolOffline);
  t.is(c.git(['ls-tree', '--name-only', `${carolRef}:batches`]).split('\n').length, 2);
  t.deepEqual(team.remoteGit(['for-each-ref', '--format=%(refname)', 'refs/flowforge/']).split('\n').sort(), [`refs/flowforge/aggregated/${aliceId}`, `refs/flowforge/aggregated/${bobId}`].sort());

  // Back online: the next sync pushes what was committed offline and fetches the others.
  c.git(['remote', 'set-url', 'origin', team.remote]);
  const c2 = c.cli(['aggregate-sync']);
  t.is(c2.code, 0, c2.stdout + c2.stderr);
  t.like(c2.json.result, { cloneId: carolId, published: { commit: carolOffline, batches: 0, total: 2, committed: false }, pushed: true, fetched: { clones: 2, batches: 3, entries: 4 } });
  t.is(team.remoteGit(['rev-parse', carolRef]), carolOffline);

  // Alice and Bob catch up with Carol (and Alice with Bob).
  t.like(a.cli(['aggregate-sync']).json.result, { pushed: false, fetched: { clones: 2, batches: 3, entries: 5 } });
  t.like(b.cli(['aggregate-sync']).json.result, { pushed: false, fetched: { clones: 2, batches: 2, entries: 3 } });

  // Everyone has synced twice: another round changes no ref and writes no object anywhere.
  const clones = [a, b, c];
  const refsBefore = clones.map((x) => x.refs());
  const objectsBefore = clones.map(objectCount);
  const remoteRefs = team.remoteGit(['for-each-ref']);
  for (const x of clones) {
    const again = x.cli(['aggregate-sync']);
    t.is(again.code, 0, again.stdout + again.stderr);
    t.like(again.json.result, { published: { batches: 0, committed: false }, pushed: false, fetched: { clones: 2, batches: 0, entries: 0 }, problems: [] });
  }
  t.deepEqual(clones.map((x) => x.refs()), refsBefore);
  t.deepEqual(clones.map(objectCount), objectsBefore);
  t.is(team.remoteGit(['for-each-ref']), remoteRefs);

  // Three refs on the remote, named by clone ids only.
  const lsRemote = a.git(['ls-remote', 'origin', 'refs/flowforge/*']).split('\n').map((l) => l.split('\t')[1]).sort();
  t.deepEqual(lsRemote, [aliceId, bobId, carolId].map((id) => `refs/flowforge/aggregated/${id}`).sort());

  // Each clone's team/ holds the others' batches exactly once, and never its own.
  const ids = { [aliceId]: a, [bobId]: b, [carolId]: c };
  for (const [ownId, x] of Object.entries(ids)) {
    t.deepEqual(fs.readdirSync(path.join(x.dataRoot, 'team')).sort(), Object.keys(ids).filter((id) => id !== ownId).sort());
    for (const [otherId, y] of Object.entries(ids)) if (otherId !== ownId) t.deepEqual(x.teamBatches(otherId), y.localBatches());
    // Local + team: every entry once.
    const all = [path.join(x.dataRoot, 'aggregated'), ...Object.keys(ids).filter((id) => id !== ownId).map((id) => path.join(x.dataRoot, 'team', id))].flatMap((d) =>
      fs
        .readdirSync(d)
        .filter((f) => f.startsWith('batch_'))
        .flatMap((f) => JSON.parse(fs.readFileSync(path.join(d, f), 'utf8')).entries.map((e: { entryId: string }) => e.entryId)),
    );
    t.is(all.length, 7);
    t.is(new Set(all).size, 7);
    t.is((fs.statSync(path.join(x.dataRoot, 'team')).mode & 0o777).toString(8), '700');
  }
  // Bob's batches reach Alice byte for byte.
  for (const id of b.localBatches()) t.deepEqual(fs.readFileSync(path.join(a.dataRoot, 'team', bobId, `${id}.json`)), fs.readFileSync(path.join(b.dataRoot, 'aggregated', `${id}.json`)));
  t.is((fs.statSync(path.join(a.dataRoot, 'team', bobId, `${b.localBatches()[0]}.json`)).mode & 0o777).toString(8), '600');

  // Privacy: nothing reachable from Carol's ref on the remote names her, commits included…
  const carolObjects = reachableObjects(team, carolRef).toString('utf8');
  t.true(carolObjects.includes('FlowForge Aggregation <flowforge@localhost>'));
  for (const needle of [CAROL.name, CAROL.email, 'Carol', 'carol']) t.false(carolObjects.includes(needle), needle);
  // …her legacy batch went out with pseudonyms (a valid batch), while Alice's objects do name Alice.
  const legacyCopy = JSON.parse(fs.readFileSync(path.join(a.dataRoot, 'team', carolId, `${carolLegacy}.json`), 'utf8'));
  t.regex(legacyCopy.entries[0].userId, /^u_[0-9a-f]{24}$/);
  t.is(legacyCopy.entries[0].entryId, 'c-1');
  t.true(reachableObjects(team, `refs/flowforge/aggregated/${aliceId}`).toString('utf8').includes(ALICE.name));
  const carolUsers = new Set(fs.readdirSync(path.join(b.dataRoot, 'team', carolId)).flatMap((f) => JSON.parse(fs.readFileSync(path.join(b.dataRoot, 'team', carolId, f), 'utf8')).entries.map((e: { userId: string }) => e.userId)));
  t.is(carolUsers.size, 1, 'the legacy pseudonym is the same one the hook path stores');
});

test('batches that fail verification are reported with clone and batch id and never written; a ref that is not a clone id or not a commit is reported, not fatal', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  a.batch([entry('a-1', ALICE.name)]);
  // A scratch clone publishes a ref by hand: one good batch, one with a wrong checksum, one from a newer version.
  const x = team.clone('scratch', BOB);
  const good = { batchId: 'batch_1768469400000_0000000a', timestamp: PAST, version: '2.0.0', entries: [entry('x-1', 'bob')], entryCount: 1, recovered: false, checksum: '' };
  const { createHash } = await import('node:crypto');
  const { canonicalJson } = await import('../../plugins/aggregation/entry.js');
  good.checksum = 'sha256:' + createHash('sha256').update(canonicalJson(good.entries)).digest('hex');
  const badChecksum = { ...good, batchId: 'batch_1768469400000_0000000b', entries: [entry('x-2', 'bob')] };
  const newer = { ...good, batchId: 'batch_1768469400000_0000000c', version: '3.0.0' };
  const blob = (doc: unknown) => execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: x.dir, env: team.base.env, input: JSON.stringify(doc) }).toString().trim();
  const lines = [good, badChecksum, newer].map((d) => `100644 blob ${blob(d)}\t${d.batchId}.json\n`).join('') + `100644 blob ${blob({ note: 'not a batch name' })}\tREADME.json\n`;
  const sub = execFileSync('git', ['mktree'], { cwd: x.dir, env: team.base.env, input: lines }).toString().trim();
  const root = execFileSync('git', ['mktree'], { cwd: x.dir, env: team.base.env, input: `040000 tree ${sub}\tbatches\n` }).toString().trim();
  const commit = x.git(['commit-tree', '-m', 'by hand', root]);
  const fakeId = 'f'.repeat(32);
  const blobOnly = blob({ not: 'a commit' });
  x.git(['push', '-q', 'origin', `${commit}:refs/flowforge/aggregated/${fakeId}`, `${commit}:refs/flowforge/aggregated/Not-An-Id`, `${blobOnly}:refs/flowforge/aggregated/${'e'.repeat(32)}`]);

  const r = a.cli(['aggregate-sync']);
  t.is(r.code, 0, r.stdout + r.stderr);
  const expectedProblems = [
    { cloneId: 'Not-An-Id', batchId: '', problem: 'not-a-clone-id', message: 'ref name is not a clone id (16–64 hex digits)' },
    { cloneId: 'e'.repeat(32), batchId: '', problem: 'not-a-sync-commit', message: `ref does not point to a commit git can list: fatal: not a tree object` },
    { cloneId: fakeId, batchId: 'batch_1768469400000_0000000b', problem: 'checksum', message: 'checksum does not match its entries' },
    { cloneId: fakeId, batchId: 'batch_1768469400000_0000000c', problem: 'newer-version', message: 'was written by a newer version of this tool; upgrade to read it' },
  ];
  t.deepEqual(r.json.result.problems, expectedProblems);
  t.like(r.json.result.fetched, { clones: 2, batches: 1, entries: 1 });
  t.deepEqual(a.teamBatches(fakeId), ['batch_1768469400000_0000000a']);
  t.deepEqual(fs.readdirSync(path.join(a.dataRoot, 'team')), [fakeId]);
  // Reported again on the next sync (still not written); the good batch is not written twice.
  const again = a.cli(['aggregate-sync', '--format=text']);
  t.is(again.code, 0);
  t.regex(again.stdout, /left out: clone f{32} batch batch_1768469400000_0000000b: checksum does not match its entries/);
  t.regex(again.stdout, /fetched from origin: 2 other clone\(s\), 0 new batch file\(s\) \(0 entries\) in team\//);
  // Refs deleted on the remote are pruned from refs/flowforge/remotes/ only; team files stay.
  team.remoteGit(['update-ref', '-d', `refs/flowforge/aggregated/${'e'.repeat(32)}`]);
  team.remoteGit(['update-ref', '-d', 'refs/flowforge/aggregated/Not-An-Id']);
  team.remoteGit(['update-ref', '-d', `refs/flowforge/aggregated/${fakeId}`]);
  const pruned = a.cli(['aggregate-sync']);
  t.deepEqual(pruned.json.result.problems, []);
  t.is(pruned.json.result.fetched.clones, 0);
  t.is(a.git(['for-each-ref', '--format=%(refname)', 'refs/flowforge/remotes/']), `refs/flowforge/remotes/origin/${r.json.result.cloneId}`);
  t.deepEqual(a.teamBatches(fakeId), ['batch_1768469400000_0000000a']);
  t.not(a.git(['for-each-ref', 'refs/remotes/origin/main']), '');
  // An unknown remote is a usage error naming the configured ones.
  const unknown = a.cli(['aggregate-sync', '--remote=upstream']);
  t.is(unknown.code, 2);
  t.is(unknown.json.error.message, 'No git remote named "upstream" in this repository (configured: origin). Pass --remote=NAME, or add one with git remote add upstream URL.');
});

test('a checksummed batch whose entries fail input validation is not written; its problems are listed by entry path', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  a.batch([entry('a-1', ALICE.name)]);
  const x = team.clone('scratch', BOB);
  const { createHash } = await import('node:crypto');
  const { canonicalJson } = await import('../../plugins/aggregation/entry.js');
  const sealed = (batchId: string, entries: Array<Record<string, unknown>>) => ({
    batchId,
    timestamp: PAST,
    version: '2.0.0',
    entries,
    entryCount: entries.length,
    recovered: false,
    checksum: 'sha256:' + createHash('sha256').update(canonicalJson(entries)).digest('hex'),
  });
  const withDuration = (id: string, duration: unknown) => ({ ...entry(id, 'bob'), metadata: { duration } });
  const { entryId: _dropped, ...noId } = entry('x-4', 'bob', 4);
  const bad = sealed('batch_1768469400000_0000000d', [
    entry('x-0', 'bob'),
    withDuration('x-1', -36_000_000),
    { ...entry('x-2', 'bob'), timestamp: -5 },
    entry('x-3', 'bob\u202eevil'),
    noId,
    withDuration('x-5', 1e15),
    withDuration('x-6', 'abc'),
    withDuration('x-7', 3_600_000.5),
    // Input forms are not stored forms: a reader would take these for milliseconds.
    { ...entry('x-8', 'bob'), timestamp: '2026-01-15T09:30:00Z' },
    { ...entry('x-10', 'bob'), timestamp: 1_768_469_400 },
  ]);
  const good = sealed('batch_1768469400000_0000000e', [entry('x-9', 'bob', 9)]);
  const blob = (doc: unknown) => execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: x.dir, env: team.base.env, input: JSON.stringify(doc) }).toString().trim();
  const lines = [bad, good].map((d) => `100644 blob ${blob(d)}\t${d.batchId}.json\n`).join('');
  const sub = execFileSync('git', ['mktree'], { cwd: x.dir, env: team.base.env, input: lines }).toString().trim();
  const root = execFileSync('git', ['mktree'], { cwd: x.dir, env: team.base.env, input: `040000 tree ${sub}\tbatches\n` }).toString().trim();
  const fakeId = 'd'.repeat(32);
  x.git(['push', '-q', 'origin', `${x.git(['commit-tree', '-m', 'by hand', root])}:refs/flowforge/aggregated/${fakeId}`]);

  const r = a.cli(['aggregate-sync']);
  t.is(r.code, 0, r.stdout + r.stderr);
  const duration = 'metadata.duration must be an integer number of milliseconds from 0 to 604800000 (7 days)';
  t.deepEqual(r.json.result.problems, [
    {
      cloneId: fakeId,
      batchId: 'batch_1768469400000_0000000d',
      problem: 'invalid-entries',
      message: `9 of 10 entries fail entry validation; first: entries[1].metadata.duration: ${duration}`,
      entries: [
        { path: 'entries[1].metadata.duration', message: duration },
        { path: 'entries[2].timestamp', message: 'timestamp is before 2000-01-01T00:00:00Z' },
        { path: 'entries[3].userId', message: 'userId must not contain control or bidirectional-override characters' },
        { path: 'entries[4].entryId', message: 'entryId is required in a stored entry' },
        { path: 'entries[5].metadata.duration', message: duration },
      ],
    },
  ]);
  t.like(r.json.result.fetched, { clones: 1, batches: 1, entries: 1 });
  t.deepEqual(a.teamBatches(fakeId), ['batch_1768469400000_0000000e']);
  // The text output says which batch and why; a report over the team sees only the good batch.
  const text = a.cli(['aggregate-sync', '--format=text']);
  t.is(text.code, 0);
  t.true(text.stdout.includes(`left out: clone ${fakeId} batch batch_1768469400000_0000000d: 9 of 10 entries fail entry validation; first: entries[1].metadata.duration: ${duration}`), text.stdout);
  const report = a.cli(['aggregate-report', '--scope=team', '--by=user']);
  t.is(report.code, 0, report.stdout + report.stderr);
  t.deepEqual(report.json.result.rows, [
    { key: ALICE.name, entries: 1, commits: 0, trackedMs: 1_800_000 },
    { key: 'bob', entries: 1, commits: 0, trackedMs: 1_800_000 },
  ]);
});

test('a batch stored before anonymizeUsers is published with pseudonymized user id, re-derived entry id and session folder; nothing clear in the pushed blob', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  const b = team.clone('bob', BOB);
  const { createHmac } = await import('node:crypto');
  const { deriveEntryId } = await import('../../plugins/aggregation/entry.js');
  const user = 'dana@example.com';
  const derived = { userId: user, action: 'review', timestamp: PAST, metadata: { duration: 1_800_000 } };
  const clearId = deriveEntryId(derived);
  const session = { entryId: 'session:dana:s-1:3600000', userId: user, action: 'time-tracking', timestamp: PAST + 60_000, metadata: { duration: 3_600_000 } };
  const commit = { entryId: `commit:${'c'.repeat(40)}`, userId: user, action: 'commit', timestamp: PAST + 120_000 };
  const legacy = a.batch([derived, session, commit]);
  const stored = fs.readFileSync(path.join(a.dataRoot, 'aggregated', `${legacy}.json`), 'utf8');
  t.deepEqual(JSON.parse(stored).entries.map((e: { entryId: string }) => e.entryId), [clearId, session.entryId, commit.entryId]);

  fs.writeFileSync(path.join(a.dir, 'flowforge.config.json'), JSON.stringify({ privacy: { anonymizeUsers: true } }));
  const key = 'fedcba9876543210'.repeat(4);
  const pseudonym = (id: string) => 'u_' + createHmac('sha256', key).update(id).digest('hex').slice(0, 24);
  const r = runCli(['aggregate-sync'], { cwd: a.dir, env: { ...team.base.env, FLOWFORGE_PSEUDONYM_KEY: key } });
  t.is(r.code, 0, r.stdout + r.stderr);
  t.like(r.json.result, { published: { batches: 1, total: 1 }, pushed: true, problems: [] });
  const ref = r.json.result.published.ref;

  const pushed = team.remoteGit(['cat-file', 'blob', `${ref}:batches/${legacy}.json`]);
  for (const needle of [user, 'dana', clearId]) t.false(pushed.includes(needle), needle);
  const doc = JSON.parse(pushed);
  const pseudo = pseudonym(user);
  t.deepEqual(doc.entries, [
    { entryId: deriveEntryId({ ...derived, userId: pseudo }), userId: pseudo, action: 'review', timestamp: PAST, metadata: { duration: 1_800_000 } },
    { entryId: `session:${pseudonym('dana')}:s-1:3600000`, userId: pseudo, action: 'time-tracking', timestamp: PAST + 60_000, metadata: { duration: 3_600_000 } },
    { entryId: `commit:${'c'.repeat(40)}`, userId: pseudo, action: 'commit', timestamp: PAST + 120_000 },
  ]);
  t.not(doc.entries[0].entryId, clearId);
  t.regex(doc.entries[0].entryId, /^e_[0-9a-f]{32}$/);
  // Nothing reachable from the ref names Dana; the local file keeps its bytes.
  const objects = reachableObjects(team, ref).toString('utf8');
  for (const needle of [user, 'dana', clearId]) t.false(objects.includes(needle), needle);
  t.is(fs.readFileSync(path.join(a.dataRoot, 'aggregated', `${legacy}.json`), 'utf8'), stored);
  // The copy is a valid batch (checksum recomputed): a teammate verifies and writes it as it is.
  const b1 = b.cli(['aggregate-sync']);
  t.is(b1.code, 0, b1.stdout + b1.stderr);
  t.like(b1.json.result, { fetched: { clones: 1, batches: 1, entries: 3 }, problems: [] });
  t.is(fs.readFileSync(path.join(b.dataRoot, 'team', r.json.result.cloneId, `${legacy}.json`), 'utf8'), pushed);
});

test('a copied data root (same clone id) that diverged is merged by union, never force-pushed away', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  const d = team.clone('alice-laptop', ALICE);
  const first = a.batch([entry('a-1', ALICE.name)]);
  t.is(a.cli(['aggregate-sync']).code, 0);
  fs.cpSync(a.dataRoot, d.dataRoot, { recursive: true });
  // Alice commits a batch while offline…
  const offline = a.batch([entry('a-2', ALICE.name, 1)]);
  a.git(['remote', 'set-url', 'origin', path.join(team.base.root, 'nowhere.git')]);
  t.is(a.cli(['aggregate-sync']).code, 1);
  a.git(['remote', 'set-url', 'origin', team.remote]);
  // …while the copy publishes one of its own.
  const fromCopy = d.batch([entry('d-1', ALICE.name, 2)]);
  const d1 = d.cli(['aggregate-sync']);
  t.is(d1.code, 0, d1.stdout + d1.stderr);
  t.like(d1.json.result, { published: { batches: 1, total: 2, committed: true }, pushed: true });
  const cloneId = d1.json.result.cloneId;
  const ref = `refs/flowforge/aggregated/${cloneId}`;
  // Alice back online: her offline commit and the copy's diverged; the sync merges them.
  const a2 = a.cli(['aggregate-sync']);
  t.is(a2.code, 0, a2.stdout + a2.stderr);
  t.like(a2.json.result, { cloneId, published: { batches: 0, total: 3, committed: true }, pushed: true, fetched: { clones: 0, batches: 1 } });
  const merged = team.remoteGit(['rev-parse', ref]);
  t.is(team.remoteGit(['rev-list', '--parents', '-n', '1', merged]).split(' ').length, 3, 'a merge commit with two parents');
  t.deepEqual(team.remoteGit(['ls-tree', '--name-only', `${ref}:batches`]).split('\n'), [first, offline, fromCopy].map((id) => `${id}.json`).sort());
  t.deepEqual(a.teamBatches(cloneId), [fromCopy]);
  const d2 = d.cli(['aggregate-sync']);
  t.like(d2.json.result, { published: { commit: merged, batches: 0, committed: false }, pushed: false, fetched: { batches: 1 } });
  t.deepEqual(d.teamBatches(cloneId), [offline]);
});

/** Runs the CLI without waiting, so two can run at once. */
function runCliAsync(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; json: any; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code, json, stderr });
    });
  });
}

test('two syncs at once in one data root: both succeed, one commit, every batch published once', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  const batches = [a.batch([entry('a-1', ALICE.name)]), a.batch([entry('a-2', ALICE.name, 1)]), a.batch([entry('a-3', ALICE.name, 2)])];
  const [r1, r2] = await Promise.all([runCliAsync(['aggregate-sync'], a.dir, team.base.env), runCliAsync(['aggregate-sync'], a.dir, team.base.env)]);
  t.is(r1.code, 0, r1.stderr);
  t.is(r2.code, 0, r2.stderr);
  t.deepEqual([r1.json.result.published.batches, r2.json.result.published.batches].sort(), [0, 3]);
  t.deepEqual([r1.json.result.pushed, r2.json.result.pushed].sort(), [false, true]);
  const ref = r1.json.result.published.ref;
  t.is(a.git(['rev-list', '--count', ref]), '1');
  t.is(team.remoteGit(['rev-parse', ref]), a.git(['rev-parse', ref]));
  t.deepEqual(a.git(['ls-tree', '--name-only', `${ref}:batches`]).split('\n'), batches.map((id) => `${id}.json`).sort());
});

test('a batch aggregate-migrate upgraded under its older id is published, materialized in team/ and counted by the team report', async (t) => {
  const team = setUpTeam(t);
  const a = team.clone('alice', ALICE);
  a.batch([entry('a-1', 'alice')]);
  // An older-format batch file (seed format: no version, epoch seconds, a base-36 id).
  const legacyId = 'batch_1700000000000_k3j4h5g6f';
  fs.writeFileSync(path.join(a.dataRoot, 'aggregated', `${legacyId}.json`), JSON.stringify({ batchId: legacyId, timestamp: 1700000000, entries: [{ userId: 'alice', action: 'work', timestamp: 1700000000, metadata: { duration: 3_600_000 } }] }));
  const migrate = a.cli(['aggregate-migrate', '--apply']);
  t.is(migrate.code, 0, migrate.stdout + migrate.stderr);
  const localReport = a.cli(['aggregate-report']);
  t.is(localReport.json.result.sources.batchFiles, 2);
  const published = a.cli(['aggregate-sync']);
  t.is(published.code, 0, published.stdout + published.stderr);
  t.deepEqual(published.json.result.problems, []);
  t.like(published.json.result.published, { batches: 2 });
  const b = team.clone('bob', BOB);
  const fetched = b.cli(['aggregate-sync']);
  t.is(fetched.code, 0, fetched.stdout + fetched.stderr);
  t.deepEqual(fetched.json.result.problems, []);
  t.like(fetched.json.result.fetched, { clones: 1, batches: 2, entries: 2 });
  t.true(fs.existsSync(path.join(b.dataRoot, 'team', published.json.result.cloneId, `${legacyId}.json`)));
  const report = b.cli(['aggregate-report', '--scope=team']);
  t.is(report.json.result.sources.teamBatchFiles, 2);
  t.is(report.json.result.totals.entries, 2);
});

test('aggregate-sync outside a git repository is a usage error (exit 2) saying to run it in one or pass --repo', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ff-norepo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = runCli(['aggregate-sync', `--data-path=${path.join(dir, 'data')}`], { cwd: dir, env: { ...process.env, GIT_CEILING_DIRECTORIES: path.dirname(dir) } });
  t.is(r.code, 2);
  t.is(r.json.error.code, 'E_USAGE');
  t.regex(r.json.error.message, /^aggregate-sync needs a git repository to sync through: run it inside your project's repository, or pass --repo=DIR \(git remote failed in .*: fatal: not a git repository/);
  t.deepEqual(r.json.error.details, [{ path: '--repo', message: 'not in a git repository' }]);
});
