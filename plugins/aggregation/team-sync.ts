/**
 * Team sync through git (issue 6 item 3): every clone publishes its batch files to a ref of its
 * own, `refs/flowforge/aggregated/<clone id>`, pushes it, and fetches everyone else's. No two
 * clones ever write the same ref, so pushes never conflict and nothing is ever force-pushed.
 *
 * The sync ref's commit tree is `batches/<batchId>.json`: the exact bytes of each local batch
 * file (batch files are immutable), except that with `privacy.anonymizeUsers` a batch written
 * before the switch, which still holds clear user ids, is published with pseudonyms instead
 * (user ids, entry ids derived from them, session ids' user folders).
 * Everything goes through git plumbing (git-hash-object(1), git-mktree(1), git-commit-tree(1),
 * git-update-ref(1), git-ls-tree(1), git-cat-file(1), git-fetch(1), git-push(1)): the user's
 * working tree, index, HEAD and branches are never touched, and paths inside the git directory
 * are never built by hand.
 *
 * One sync, under the data root's sync lock (never under the store lock: the network can be
 * slow):
 *   1. fetch `+refs/flowforge/aggregated/*` into `refs/flowforge/remotes/<remote>/*` (pruning
 *      only there: a ref deleted on the remote disappears from that namespace, while the batch
 *      files already written to `team/` stay);
 *   2. publish: a new commit on the own ref only when a local batch is not in it yet (so a
 *      second sync makes no commit and writes no object), updated with compare-and-swap;
 *      when the remote's copy of the own ref is not an ancestor of the local one (a copied data
 *      root, a lost local ref), the commit merges both by union;
 *   3. push the own ref (a fast-forward) when the remote's copy differs;
 *   4. materialize each clone's batches into `team/<clone id>/` — only files not there yet,
 *      each verified like a local batch (checksum, entry count, version), every entry checked
 *      with the input rules (validateEntries), and written atomically and durably; a batch
 *      that fails is reported, not written.
 * Offline (fetch or push failed), steps 2 and 4 still run, then a SyncError (exit 1) says the
 * batches are committed to the local ref and the next sync pushes them.
 *
 * Privacy: the ref name is a random clone id; the sync commit's author and committer are the
 * fixed {@link SYNC_IDENTITY} with the newest batch's flush time as date, its message a fixed
 * format, and it is never signed; pushes skip the user's pre-push hook and never send a push
 * certificate. Nothing here reads the user's name or e-mail.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import { CorruptError, GitError, InputError, LockedError, SyncError, UsageError, type ErrorDetail } from '../../src/core/errors.js';
import type { GitClient } from '../../src/core/git.js';
import { acquireLock } from '../../src/core/lock.js';
import { makeBatch, parseBatchBytes, type BatchProblem } from './batch-store.js';
import { validateEntries } from './entry.js';
import { acceptableBatchId, batchIdOfName, storeLayout, type StoreLayout } from './layout.js';
import type { BatchFile, Entry } from './types.js';

/** Namespace of the published refs, one per clone: `refs/flowforge/aggregated/<clone id>`. */
export const SYNC_REF_PREFIX = 'refs/flowforge/aggregated/';
/** Where fetched refs are kept: `refs/flowforge/remotes/<remote>/<clone id>`. */
export const trackingPrefix = (remote: string): string => `refs/flowforge/remotes/${remote}/`;
/** The identity of every sync commit (author and committer), so the user's is never published. */
export const SYNC_IDENTITY = { name: 'FlowForge Aggregation', email: 'flowforge@localhost' } as const;
/** A clone id as we create them (32 hex); ids of 16–64 hex from other versions are accepted. */
export const CLONE_ID_PATTERN = /^[0-9a-f]{16,64}$/;
/** Folder of the batch files in a sync commit's tree. */
export const TREE_DIR = 'batches';
/** A fetched batch larger than this is not materialized (a batch file is ~64 KB), bytes. */
export const MAX_TEAM_BATCH_BYTES = 32 * 1024 * 1024;
/** Objects read per `git cat-file --batch` call, so memory stays bounded. */
const READ_CHUNK = 256;
/** Paths per `git hash-object` call (argument-length limits). */
const HASH_CHUNK = 200;
/** Lock wait for a second sync in the same data root, ms. */
export const SYNC_LOCK_TIMEOUT_MS = 60_000;
const CLONE_FILE = 'clone.json';


/** Why one batch was not published or not materialized. */
export type SyncProblemKind = BatchProblem | 'name-mismatch' | 'too-large' | 'missing-object' | 'not-a-clone-id' | 'not-a-sync-commit' | 'invalid-entries';

/** Entry problems listed per `invalid-entries` batch (the message counts them all). */
export const MAX_LISTED_ENTRY_PROBLEMS = 5;

/** One batch (or ref) that sync left out, with who it came from. */
export interface SyncProblem {
  /** The clone whose batch it is (this clone's id for a local batch). */
  cloneId: string;
  /** Batch id, or "" when the problem is the ref itself. */
  batchId: string;
  problem: SyncProblemKind;
  message: string;
  /**
   * For `invalid-entries`: the first {@link MAX_LISTED_ENTRY_PROBLEMS} problems, `path` like
   * `entries[3].metadata.duration` (index into the batch's `entries`), without the values.
   */
  entries?: Array<{ path: string; message: string }>;
}

/** Result of one sync (`aggregate-sync`). Counts are batch files unless named otherwise. */
export interface SyncOutcome {
  remote: string;
  cloneId: string;
  published: {
    /** This clone's ref, `refs/flowforge/aggregated/<clone id>`. */
    ref: string;
    /** Its commit after this sync; null while this clone has no batch at all. */
    commit: string | null;
    /** Batches added to the ref by this sync. */
    batches: number;
    /** Batches in the ref. */
    total: number;
    /** Whether this sync made a commit (false when nothing was new). */
    committed: boolean;
  };
  /** Whether this sync updated the remote's copy of the own ref. */
  pushed: boolean;
  fetched: {
    /** Other clones with a ref on the remote (as last fetched). */
    clones: number;
    /** Batch files written to `team/` by this sync, and the entries in them. */
    batches: number;
    entries: number;
  };
  /** Batches left out (bad checksum, newer version…), local or fetched. */
  problems: SyncProblem[];
}

const PROBLEM_TEXT: Record<SyncProblemKind, string> = {
  unreadable: 'cannot be read',
  'not-json': 'is not valid JSON',
  'bad-shape': 'is not a batch document (batchId or entries missing)',
  checksum: 'checksum does not match its entries',
  'entry-count': 'entryCount does not match the number of entries',
  'newer-version': 'was written by a newer version of this tool; upgrade to read it',
  legacy: 'is in the older batch format; the clone that wrote it should run provider-bridge aggregate-migrate',
  'name-mismatch': 'file name does not match its batchId',
  'too-large': `is larger than ${MAX_TEAM_BATCH_BYTES} bytes`,
  'missing-object': 'is listed in the ref but git does not have its object',
  'not-a-clone-id': 'ref name is not a clone id (16–64 hex digits)',
  'not-a-sync-commit': 'ref does not point to a commit git can list',
  'invalid-entries': 'holds entries that fail entry validation',
};

const problem = (cloneId: string, batchId: string, kind: SyncProblemKind): SyncProblem => ({ cloneId, batchId, problem: kind, message: PROBLEM_TEXT[kind] });

/**
 * This data root's clone id (32 hex), created once in `sync/clone.json` (0600) with an
 * exclusive create, so two first syncs agree on it. Throws CorruptError when the file exists
 * but never holds a valid id (a person should move it away), or the port's error.
 */
export function loadOrCreateCloneId(ctx: HandlerContext, layout: StoreLayout = storeLayout(ctx.dataRoot)): string {
  const file = path.join(layout.sync, CLONE_FILE);
  for (let attempt = 0; attempt < 50; attempt++) {
    let text: string | undefined;
    try {
      text = ctx.fs.readFile(file).toString('utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text === undefined) {
      ctx.fs.mkdirp(layout.sync);
      try {
        ctx.fs.createExclusive(file, JSON.stringify({ cloneId: randomBytes(16).toString('hex') }) + '\n');
        ctx.fs.fsyncDir(layout.sync);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      continue;
    }
    try {
      const id = (JSON.parse(text) as { cloneId?: unknown }).cloneId;
      if (typeof id === 'string' && CLONE_ID_PATTERN.test(id)) return id;
    } catch {
      /* another process is between its exclusive create and its write: read again */
    }
    const until = Date.now() + 5;
    while (Date.now() < until) {
      /* a few ms for the other writer */
    }
  }
  throw new CorruptError(`${file} does not hold a clone id ({"cloneId": "<32 hex>"}); move it away and sync again to get a new one (batches already published stay under the old id)`, {
    details: [{ path: file, message: 'no valid cloneId' }],
  });
}

/** Ids of the local batch files in `aggregated/` (`<batch id>.json`, either id form: batchIdOfName), sorted. */
function localBatchIds(ctx: HandlerContext, layout: StoreLayout): string[] {
  return ctx.fs
    .readdir(layout.aggregated)
    .map((name) => batchIdOfName(name, '.json'))
    .filter((id): id is string => id !== undefined)
    .sort();
}

/** One `batches/` entry of a sync commit. */
interface TreeEntry {
  blob: string;
  /** Bytes. */
  size: number;
}

/**
 * The `batches/` entries of `commit` by batch id (`git ls-tree -z -l <commit> batches/`). Names
 * that are not `<batch id>.json` blobs (either id form) are ignored: nothing else is ever read from a ref.
 */
async function readTree(git: GitClient, commit: string): Promise<Map<string, TreeEntry>> {
  const out = await git.run(['ls-tree', '-z', '-l', '--full-tree', commit, `${TREE_DIR}/`]);
  const entries = new Map<string, TreeEntry>();
  for (const record of out.split('\0')) {
    // `<mode> SP <type> SP <object> SP+ <size> TAB <path>` (git-ls-tree(1) "OUTPUT FORMAT").
    const m = /^100644 blob ([0-9a-f]{40,64}) +(\d+)\t(.+)$/.exec(record);
    if (!m) continue;
    const id = batchIdOfName(m[3]!.slice(TREE_DIR.length + 1), '.json');
    if (id !== undefined && m[3]!.startsWith(`${TREE_DIR}/`)) entries.set(id, { blob: m[1]!, size: Number(m[2]) });
  }
  return entries;
}

/** The commit a ref points to, or undefined when it does not exist. */
async function resolveRef(git: GitClient, ref: string): Promise<string | undefined> {
  const out = await git.run(['for-each-ref', '--format=%(objectname)', ref]);
  const sha = out.split('\n')[0]?.trim();
  return sha ? sha : undefined;
}

/** Whether `ancestor` is reachable from `descendant` (or equal). */
async function isAncestor(git: GitClient, ancestor: string, descendant: string): Promise<boolean> {
  if (ancestor === descendant) return true;
  // merge-base exits 1 silently when there is none: simple-git then resolves "".
  return (await git.run(['merge-base', ancestor, descendant])).trim() === ancestor;
}

/** git's id of a blob holding `data` (the object format follows the id length git uses). */
function blobId(data: Buffer, idLength: number): string {
  return createHash(idLength === 64 ? 'sha256' : 'sha1')
    .update(`blob ${data.length}\0`)
    .update(data)
    .digest('hex');
}

/** A local batch verified for publishing: its id, the bytes to publish, its flush time (ms). */
interface PublishCandidate {
  batchId: string;
  file: string;
  /** Bytes to publish: the file's own, or the pseudonymized copy. */
  data: Buffer;
  /** True when `data` differs from the file (pseudonymized). */
  rewritten: boolean;
  timestamp: number;
}

/**
 * The bytes to publish for one verified batch: the file's exact bytes, or — with `anonymize`
 * (privacy.ts pseudonymizeStoredEntry under the pseudonym secret) — a copy in which every
 * entry recorded before `privacy.anonymizeUsers` was switched on is pseudonymized: user id,
 * the derived entry id computed from the clear user id, and a session id's user folder;
 * checksum recomputed. A batch with nothing clear is published as it is.
 */
function publishBytes(raw: Buffer, batch: BatchFile, anonymize: ((entry: Entry) => Entry) | undefined): { data: Buffer; rewritten: boolean } {
  if (!anonymize) return { data: raw, rewritten: false };
  let changed = false;
  const entries = batch.entries.map((e) => {
    const out = anonymize(e);
    if (out !== e) changed = true;
    return out;
  });
  if (!changed) return { data: raw, rewritten: false };
  return { data: Buffer.from(JSON.stringify(makeBatch(batch.batchId, batch.timestamp, entries, batch.recovered))), rewritten: true };
}

/** What {@link publishOwnRef} did. */
interface PublishResult {
  commit: string | null;
  added: number;
  total: number;
  committed: boolean;
  problems: SyncProblem[];
}

/**
 * Brings the own ref up to date with the local batch files (step 2 of the module comment).
 * `remoteOwn` is the remote's copy of the own ref as last fetched. Compare-and-swap on the
 * ref; a lost race is retried from the start (3 times). Throws GitError.
 */
async function publishOwnRef(
  ctx: HandlerContext,
  git: GitClient,
  layout: StoreLayout,
  cloneId: string,
  remoteOwn: string | undefined,
): Promise<PublishResult> {
  const ref = SYNC_REF_PREFIX + cloneId;
  let anonymize: Parameters<typeof publishBytes>[2];
  if (ctx.config.privacy.anonymizeUsers) {
    const privacy = await import('./privacy.js');
    const secret = privacy.loadOrCreateSecret(ctx);
    anonymize = (entry) => privacy.pseudonymizeStoredEntry(entry, secret);
  }
  for (let attempt = 1; ; attempt++) {
    const local = await resolveRef(git, ref);
    // Parents of the next commit: the local ref, fast-forwarded to the remote's copy when that is
    // ahead, or both when they diverged (merged by union below).
    let parents: string[];
    if (remoteOwn === undefined || remoteOwn === local) parents = local ? [local] : [];
    else if (local === undefined || (await isAncestor(git, local, remoteOwn))) parents = [remoteOwn];
    else if (await isAncestor(git, remoteOwn, local)) parents = [local];
    else parents = [local, remoteOwn];

    const tree = new Map<string, TreeEntry>();
    for (const parent of parents) {
      for (const [id, entry] of await readTree(git, parent)) if (!tree.has(id)) tree.set(id, entry);
    }
    const problems: SyncProblem[] = [];
    const candidates: PublishCandidate[] = [];
    for (const batchId of localBatchIds(ctx, layout)) {
      if (tree.has(batchId)) continue;
      const file = path.join(layout.aggregated, `${batchId}.json`);
      let raw: Buffer;
      try {
        raw = ctx.fs.readFile(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        problems.push({ ...problem(cloneId, batchId, 'unreadable'), message: `cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
        continue;
      }
      const read = parseBatchBytes(raw);
      if ('problem' in read) {
        problems.push(problem(cloneId, batchId, read.problem));
        continue;
      }
      if (read.batch.batchId !== batchId) {
        problems.push(problem(cloneId, batchId, 'name-mismatch'));
        continue;
      }
      candidates.push({ batchId, file, ...publishBytes(raw, read.batch, anonymize), timestamp: read.batch.timestamp });
    }

    const head = parents[0];
    if (candidates.length === 0 && parents.length <= 1) {
      // Nothing new: no object, no commit. Only a fast-forward to the remote's copy moves the ref.
      if (head !== undefined && head !== local) await updateRef(git, ref, head, local);
      return { commit: head ?? null, added: 0, total: tree.size, committed: false, problems };
    }

    for (const [id, entry] of await hashBatches(git, candidates)) tree.set(id, entry);
    const added = candidates.length;
    const lines = [...tree].map(([id, entry]) => `100644 blob ${entry.blob}\t${id}.json\n`);
    const batchesTree = (await git.run(['mktree'], { input: lines.join('') })).trim();
    const rootTree = (await git.run(['mktree'], { input: `040000 tree ${batchesTree}\t${TREE_DIR}\n` })).trim();
    // The newest flush time among the new batches (or now, for a merge only): a date that says
    // nothing about the user and is the same for the same content.
    const newest = candidates.length > 0 ? Math.max(...candidates.map((c) => c.timestamp)) : ctx.now();
    const date = `${Math.floor(newest / 1000)} +0000`;
    const message = `FlowForge aggregation: ${added} batch(es) added, ${tree.size} in total${parents.length > 1 ? ' (merged)' : ''}\n`;
    const commit = (
      await git.run(['commit-tree', '--no-gpg-sign', ...parents.flatMap((p) => ['-p', p]), '-m', message, rootTree], {
        env: {
          GIT_AUTHOR_NAME: SYNC_IDENTITY.name,
          GIT_AUTHOR_EMAIL: SYNC_IDENTITY.email,
          GIT_AUTHOR_DATE: date,
          GIT_COMMITTER_NAME: SYNC_IDENTITY.name,
          GIT_COMMITTER_EMAIL: SYNC_IDENTITY.email,
          GIT_COMMITTER_DATE: date,
        },
      })
    ).trim();
    try {
      await updateRef(git, ref, commit, local);
    } catch (error) {
      if (attempt >= 3) throw error;
      ctx.log.warn('sync ref changed while publishing; starting over', { ref, attempt, error: String(error) });
      continue;
    }
    const rewritten = candidates.filter((c) => c.rewritten).map((c) => c.batchId);
    if (rewritten.length > 0) ctx.log.info('published pseudonymized copies of batches written before anonymizeUsers', { batches: rewritten });
    return { commit, added, total: tree.size, committed: true, problems };
  }
}

/**
 * Writes the candidates' blobs (`hash-object -w --no-filters`: exact bytes, no attributes or
 * line-ending conversion) and checks each id git returns against the bytes verified here.
 * Files published as they are go by path, in a few calls; rewritten ones one by one on stdin.
 */
async function hashBatches(git: GitClient, candidates: PublishCandidate[]): Promise<Map<string, TreeEntry>> {
  const ids = new Map<string, string>();
  const byPath = candidates.filter((c) => !c.rewritten);
  for (let i = 0; i < byPath.length; i += HASH_CHUNK) {
    const chunk = byPath.slice(i, i + HASH_CHUNK);
    const out = (await git.run(['hash-object', '-w', '--no-filters', '--', ...chunk.map((c) => c.file)])).trim().split('\n');
    chunk.forEach((c, k) => ids.set(c.batchId, out[k]?.trim() ?? ''));
  }
  for (const c of candidates.filter((x) => x.rewritten)) {
    ids.set(c.batchId, (await git.run(['hash-object', '-w', '--no-filters', '--stdin'], { input: c.data })).trim());
  }
  const entries = new Map<string, TreeEntry>();
  for (const c of candidates) {
    const id = ids.get(c.batchId) ?? '';
    // A batch file is immutable: a different id means the bytes git read are not the ones verified.
    if (id !== blobId(c.data, id.length)) throw new GitError(`git stored ${c.file} as ${JSON.stringify(id)}, not the bytes that were verified; nothing was published`);
    entries.set(c.batchId, { blob: id, size: c.data.length });
  }
  return entries;
}

/** `git update-ref ref new old` (old: the zero id when the ref must not exist yet). */
async function updateRef(git: GitClient, ref: string, next: string, previous: string | undefined): Promise<void> {
  await git.run(['update-ref', ref, next, previous ?? '0'.repeat(next.length)]);
}

/** What {@link materialize} did. */
interface MaterializeResult {
  clones: number;
  batches: number;
  entries: number;
  problems: SyncProblem[];
}

/**
 * Writes every clone's batches that are not in `team/<clone id>/` yet (step 4 of the module
 * comment). Fetched refs come from `refs/flowforge/remotes/<remote>/`; for this clone's own id
 * the local ref is read instead, and only batches missing from `aggregated/` are written (those
 * another copy of this data root published). Throws GitError, or the port's error.
 */
async function materialize(ctx: HandlerContext, git: GitClient, layout: StoreLayout, remote: string, cloneId: string, ownCommit: string | null): Promise<MaterializeResult> {
  const result: MaterializeResult = { clones: 0, batches: 0, entries: 0, problems: [] };
  const prefix = trackingPrefix(remote);
  const refs: Array<{ id: string; commit: string }> = [];
  for (const line of (await git.run(['for-each-ref', '--format=%(objectname) %(refname)', prefix])).split('\n')) {
    const m = /^([0-9a-f]{40,64}) (.+)$/.exec(line.trim());
    if (!m || !m[2]!.startsWith(prefix)) continue;
    const id = m[2]!.slice(prefix.length);
    if (id === cloneId) continue;
    if (!CLONE_ID_PATTERN.test(id)) {
      result.problems.push(problem(id, '', 'not-a-clone-id'));
      continue;
    }
    refs.push({ id, commit: m[1]! });
    result.clones++;
  }
  if (ownCommit !== null) refs.push({ id: cloneId, commit: ownCommit });
  const local = new Set(localBatchIds(ctx, layout));

  for (const { id, commit } of refs) {
    const dir = path.join(layout.team, id);
    const present = new Set(ctx.fs.readdir(dir));
    const wanted: Array<[string, TreeEntry]> = [];
    let tree: Map<string, TreeEntry>;
    try {
      tree = await readTree(git, commit);
    } catch (error) {
      // One teammate's broken ref (a blob, a missing commit) must not stop everyone's sync.
      if (!(error instanceof GitError)) throw error;
      result.problems.push({ ...problem(id, '', 'not-a-sync-commit'), message: `${PROBLEM_TEXT['not-a-sync-commit']}: ${gitFailure(error)}` });
      continue;
    }
    for (const [batchId, entry] of tree) {
      if (present.has(`${batchId}.json`) || (id === cloneId && local.has(batchId))) continue;
      if (entry.size > MAX_TEAM_BATCH_BYTES) result.problems.push(problem(id, batchId, 'too-large'));
      else wanted.push([batchId, entry]);
    }
    for (let i = 0; i < wanted.length; i += READ_CHUNK) {
      const chunk = wanted.slice(i, i + READ_CHUNK);
      const objects = await git.readObjects(chunk.map(([, e]) => e.blob));
      for (const [batchId, entry] of chunk) {
        const object = objects.get(entry.blob);
        if (!object || object.type !== 'blob') {
          result.problems.push(problem(id, batchId, 'missing-object'));
          continue;
        }
        const read = parseBatchBytes(object.data);
        if ('problem' in read) {
          result.problems.push(problem(id, batchId, read.problem));
          continue;
        }
        if (read.batch.batchId !== batchId || !acceptableBatchId(batchId, read.batch.migrated)) {
          result.problems.push(problem(id, batchId, 'name-mismatch'));
          continue;
        }
        const invalid = invalidEntries(ctx, read.batch.entries);
        if (invalid) {
          result.problems.push({ ...problem(id, batchId, 'invalid-entries'), ...invalid });
          continue;
        }
        ctx.fs.mkdirp(dir);
        ctx.fs.writeFileDurable(path.join(dir, `${batchId}.json`), object.data);
        result.batches++;
        result.entries += read.batch.entryCount;
      }
    }
  }
  return result;
}

/**
 * Checks a fetched batch's entries with the rules every entry passes on input (SPEC §4,
 * {@link validateEntries}: ids and action text, timestamp from 2000-01-01 to now +
 * `maxClockSkew`, duration 0–7 days in whole ms, metadata shape, size and depth), plus a
 * present `entryId` and a timestamp already in stored form, integer epoch ms (stored entries
 * always have both). A checksum only proves the batch is
 * intact, not that its entries are sane: a teammate's ref is input like any other. Nothing is
 * redacted or changed here (the teammate's redaction applied when they recorded the entries);
 * only the issues count. Returns undefined when every entry passes, else the problem's message
 * (`N of M entries fail validation; first: <path>: <message>`) and its first listed problems.
 */
function invalidEntries(ctx: HandlerContext, entries: readonly unknown[]): { message: string; entries: Array<{ path: string; message: string }> } | undefined {
  const found: Array<{ index: number; path: string; message: string }> = [];
  entries.forEach((e, index) => {
    // A non-object item is reported by validation itself.
    if (e === null || typeof e !== 'object' || Array.isArray(e)) return;
    const entry = e as { entryId?: unknown; timestamp?: unknown };
    if (entry.entryId === undefined) found.push({ index, path: `entries[${index}].entryId`, message: 'entryId is required in a stored entry' });
    // Stored entries hold epoch milliseconds: the input forms (ISO text, epoch seconds) would be
    // read as milliseconds by every reader of the file.
    const ts = entry.timestamp;
    if (typeof ts !== 'number' || !Number.isInteger(ts) || (ts >= 0 && ts < 1e11)) {
      found.push({ index, path: `entries[${index}].timestamp`, message: 'a stored timestamp must be integer epoch milliseconds' });
    }
  });
  try {
    validateEntries(entries as unknown[], { now: ctx.now(), maxClockSkew: ctx.config.maxClockSkew, redactKeys: [] });
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    for (const d of error.details) found.push({ index: Number(/^\[(\d+)\]/.exec(d.path)?.[1] ?? -1), path: `entries${d.path}`, message: d.message });
  }
  if (found.length === 0) return undefined;
  // By entry, in the order validation reports each entry's problems.
  const listed = found
    .map((f, order) => ({ ...f, order }))
    .sort((a, b) => a.index - b.index || a.order - b.order)
    .map(({ path: p, message }) => ({ path: p, message }));
  const count = new Set(found.map((f) => f.index)).size;
  return {
    message: `${count} of ${entries.length} ${entries.length === 1 ? 'entry fails' : 'entries fail'} entry validation; first: ${listed[0]!.path}: ${listed[0]!.message}`,
    entries: listed.slice(0, MAX_LISTED_ENTRY_PROBLEMS),
  };
}

/**
 * The first line of git's output that says what went wrong (`fatal:`, `error:`, a rejected
 * ref), without credentials a remote URL may carry (`https://user:token@host` → `https://***@host`).
 */
export function gitFailure(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const text = String((cause instanceof Error ? cause.message : undefined) ?? (error as Error)?.message ?? error);
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /^(fatal|error):/.test(l) || l.includes('[rejected]') || l.includes('[remote rejected]')) ?? lines[0] ?? 'unknown error';
  return line.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@');
}

/** A remote name safe to use in a ref name and on the command line. */
const REMOTE_NAME = /^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Checks `remote` is a remote of the repository (`git remote`). Throws UsageError (exit 2)
 * naming the configured remotes otherwise, or saying to pass --repo outside a repository.
 */
async function assertRemote(git: GitClient, remote: string): Promise<void> {
  if (!REMOTE_NAME.test(remote)) {
    throw new UsageError(`--remote must be the name of a git remote (letters, digits, ".", "_", "-"), got ${JSON.stringify(remote)}`, {
      details: [{ path: '--remote', message: 'expected a remote name such as origin', value: remote }],
    });
  }
  let listed: string;
  try {
    listed = await git.run(['remote']);
  } catch (error) {
    // Outside a repository: the caller's mistake (exit 2), not git failing (exit 1).
    if (error instanceof GitError && /not a git repository/i.test(error.message)) {
      throw new UsageError(`aggregate-sync needs a git repository to sync through: run it inside your project's repository, or pass --repo=DIR (${error.message})`, {
        cause: error,
        details: [{ path: '--repo', message: 'not in a git repository' }],
      });
    }
    throw error;
  }
  const remotes = listed.split('\n').map((r) => r.trim()).filter(Boolean);
  if (!remotes.includes(remote)) {
    throw new UsageError(
      `No git remote named "${remote}" in this repository (configured: ${remotes.length > 0 ? remotes.join(', ') : 'none'}). Pass --remote=NAME, or add one with git remote add ${remote} URL.`,
      { details: [{ path: '--remote', message: `not a configured remote`, value: remote }] },
    );
  }
}

/** Options of {@link syncTeam}. */
export interface SyncOptions {
  /** Name of the git remote (default origin). */
  remote: string;
}

/**
 * One team sync over the repository of `git` (see the module comment). Takes the data root's
 * sync lock (`sync/sync.lock/`, LockedError after {@link SYNC_LOCK_TIMEOUT_MS}); never takes the
 * store lock. Returns what was published, pushed and fetched.
 *
 * Throws UsageError (exit 2) for an unknown remote; SyncError (exit 1) when the remote could not
 * be reached or refused the push — after committing the local batches to the own ref and
 * writing whatever was fetched earlier to `team/`; GitError when local git fails.
 */
export async function syncTeam(ctx: HandlerContext, git: GitClient, options: SyncOptions): Promise<SyncOutcome> {
  const { remote } = options;
  const layout = storeLayout(ctx.dataRoot);
  await assertRemote(git, remote);
  const cloneId = loadOrCreateCloneId(ctx, layout);
  const ref = SYNC_REF_PREFIX + cloneId;
  const tracking = trackingPrefix(remote) + cloneId;
  let lock;
  try {
    lock = await acquireLock(path.join(layout.sync, 'sync'), { timeoutMs: SYNC_LOCK_TIMEOUT_MS });
  } catch (error) {
    if (!(error instanceof LockedError)) throw error;
    throw new LockedError(`Another aggregate-sync is running on the data root ${ctx.dataRoot} (${path.join(layout.sync, 'sync.lock')}); nothing was synced, try again when it has finished`, { cause: error });
  }
  try {
    let failure: { step: 'fetch' | 'push'; message: string } | undefined;
    let published: PublishResult;
    let pushed = false;
    for (let round = 1; ; round++) {
      try {
        await git.run(
          ['fetch', '--quiet', '--prune', '--no-tags', '--no-write-fetch-head', '--no-auto-gc', '--no-recurse-submodules', remote, `+${SYNC_REF_PREFIX}*:${trackingPrefix(remote)}*`],
          { network: true },
        );
      } catch (error) {
        if (!(error instanceof GitError)) throw error;
        failure = { step: 'fetch', message: gitFailure(error) };
      }
      lock.assertHeld();
      const remoteOwn = await resolveRef(git, tracking);
      published = await publishOwnRef(ctx, git, layout, cloneId, remoteOwn);
      if (failure || published.commit === null || published.commit === remoteOwn) break;
      try {
        lock.assertHeld();
        await git.run(['push', '--quiet', '--no-verify', '--no-signed', '--no-recurse-submodules', remote, `${ref}:${ref}`], { network: true });
        // git updates no tracking ref for a namespace it has no fetch refspec for: do it, so the
        // next sync's fetch finds it current and changes nothing.
        await updateRef(git, tracking, published.commit, remoteOwn);
        pushed = true;
        break;
      } catch (error) {
        if (!(error instanceof GitError)) throw error;
        const message = gitFailure(error);
        // Rejected: the remote's copy moved since the fetch (another copy of this data root).
        // Fetch, merge and push once more; any other failure is reported as it is.
        if (round < 2 && /rejected|fetch first|non-fast-forward/i.test(message)) continue;
        failure = { step: 'push', message };
        break;
      }
    }
    const team = await materialize(ctx, git, layout, remote, cloneId, published.commit);
    const outcome: SyncOutcome = {
      remote,
      cloneId,
      published: { ref, commit: published.commit, batches: published.added, total: published.total, committed: published.committed },
      pushed,
      fetched: { clones: team.clones, batches: team.batches, entries: team.entries },
      problems: [...published.problems, ...team.problems],
    };
    for (const p of outcome.problems) ctx.log.warn('sync left a batch out', { ...p });
    if (failure) {
      ctx.log.warn('sync could not reach the remote', { remote, step: failure.step, error: failure.message, ref, commit: published.commit });
      throw offlineError(ctx, layout, outcome, failure);
    }
    ctx.log.info('team sync', { remote, published: outcome.published.batches, pushed, fetched: outcome.fetched.batches, problems: outcome.problems.length });
    return outcome;
  } finally {
    await lock.release();
  }
}

/** The SyncError of an offline sync: what failed, and where the local batches are. */
function offlineError(ctx: HandlerContext, layout: StoreLayout, outcome: SyncOutcome, failure: { step: 'fetch' | 'push'; message: string }): SyncError {
  const { published } = outcome;
  const what = failure.step === 'fetch' ? `Could not reach the git remote "${outcome.remote}"` : `Could not push ${published.ref} to the git remote "${outcome.remote}"`;
  const where =
    published.commit === null
      ? 'There are no local batches to publish yet.'
      : `Local batches are committed to the local ref ${published.ref} (commit ${published.commit.slice(0, 12)}, ${published.total} batch(es), ${published.batches} new) and nothing is lost: the next aggregate-sync pushes them.`;
  const details: ErrorDetail[] = [{ path: `remote ${outcome.remote}`, message: failure.message }];
  if (published.commit !== null) details.push({ path: published.ref, message: `${published.total} batch(es) committed locally, not pushed`, value: published.commit });
  if (outcome.fetched.batches > 0) details.push({ path: path.relative(ctx.dataRoot, layout.team) || 'team', message: `${outcome.fetched.batches} batch file(s) from earlier fetches written` });
  for (const p of outcome.problems) details.push({ path: `${p.cloneId}/${p.batchId}`, message: p.message });
  return new SyncError(`${what}: ${failure.message}. ${where} Team batches fetched earlier stay in ${layout.team}.`, { details });
}
