/**
 * History replay through the real git hooks — the engine shared by the demo
 * (`test/demo/demo.ts`) and the integration test (`test/integration/replay.test.ts`).
 *
 * A recorded commit history (the NDJSON format of `shared/data/README.md`, or a repository's own
 * `git log`) is re-created commit by commit in a scratch repository whose `post-commit` and
 * `post-checkout` hooks were installed by the real CLI (`provider-bridge hooks install`), so every
 * `git commit` / `git checkout` below runs the product exactly as a developer's git would:
 *
 * - same authors (`GIT_AUTHOR_NAME` = the pseudonym, e-mail `<name>@example.invalid`), same author
 *   time and offset (`GIT_AUTHOR_DATE=@<authorTime> <tz>`), committer time = `commitTime`;
 * - same parent structure: a root commit after `git checkout --orphan`, a normal commit on top of
 *   its replayed first parent, a merge as `git merge --no-ff --no-commit -s ours <second parent>`
 *   followed by `git commit` (a completed `git merge` fires `post-merge`, not `post-commit`);
 * - synthetic file changes with the recorded numstat (see {@link planChanges});
 * - one branch per line of development (see {@link planLines}), so HEAD is on a branch and moving
 *   between lines is a real `git checkout` that fires `post-checkout`.
 *
 * Everything is synchronous (`execFileSync`): the replay is strictly sequential anyway, and a
 * synchronous spawn makes the per-commit wall time easy to measure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root: the nearest ancestor of this file holding package.json. */
export const PROJECT_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

/** Absolute path of the built CLI (`provider-bridge`). */
export const CLI_PATH = path.join(PROJECT_ROOT, 'dist/src/bridge/cli.js');

/** The shared real-data history (shared/data/README.md), beside the project clone. */
export const DEFAULT_HISTORY_FILE = path.resolve(PROJECT_ROOT, '../shared/data/git-js-history.ndjson');

/** One commit of a recorded history (shared/data/README.md). Times in epoch **seconds**. */
export interface HistoryCommit {
  sha: string;
  parents: string[];
  /** Pseudonym, e.g. `dev-001`. */
  author: string;
  authorTime: number;
  /** UTC offset as git prints it, `+0100`. */
  tz: string;
  commitTime: number;
  /** numstat against the first parent (0 for merges). */
  filesChanged: number;
  insertions: number;
  deletions: number;
  /** Branch names whose tip is this commit. */
  branches: string[];
}

// ---------------------------------------------------------------------------------------------
// Reading histories

const SHA_RE = /^[0-9a-f]{40}$/;
const TZ_RE = /^[+-]\d{4}$/;

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * Parses NDJSON history text (one {@link HistoryCommit} per line, parents before children).
 * Throws an Error naming `source` and the line number for a malformed line, a duplicate sha,
 * or a parent that does not appear earlier.
 */
export function parseHistory(text: string, source: string): HistoryCommit[] {
  const commits: HistoryCommit[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const at = `${source}:${index + 1}`;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line) as Record<string, unknown>;
    } catch (error) {
      throw new Error(`${at}: not JSON (${(error as Error).message})`);
    }
    const { sha, parents, author, authorTime, tz, commitTime, filesChanged, insertions, deletions, branches } = row;
    if (typeof sha !== 'string' || !SHA_RE.test(sha)) throw new Error(`${at}: sha must be 40 hex digits`);
    if (!Array.isArray(parents) || parents.length > 2 || !parents.every((p) => typeof p === 'string' && SHA_RE.test(p))) {
      throw new Error(`${at}: parents must be 0–2 shas`);
    }
    if (typeof author !== 'string' || author.trim() === '' || /[\n<>]/.test(author)) throw new Error(`${at}: bad author`);
    if (!isCount(authorTime) || !isCount(commitTime)) throw new Error(`${at}: authorTime/commitTime must be epoch seconds`);
    if (typeof tz !== 'string' || !TZ_RE.test(tz)) throw new Error(`${at}: tz must look like +0100`);
    if (!isCount(filesChanged) || !isCount(insertions) || !isCount(deletions)) throw new Error(`${at}: numstat counts must be integers ≥ 0`);
    if (branches !== undefined && !(Array.isArray(branches) && branches.every((b) => typeof b === 'string'))) throw new Error(`${at}: branches must be strings`);
    if (seen.has(sha)) throw new Error(`${at}: duplicate sha ${sha}`);
    for (const p of parents as string[]) if (!seen.has(p)) throw new Error(`${at}: parent ${p} does not appear before its child`);
    seen.add(sha);
    commits.push({
      sha,
      parents: parents as string[],
      author,
      authorTime,
      tz,
      commitTime,
      filesChanged,
      insertions,
      deletions,
      branches: (branches as string[] | undefined) ?? [],
    });
  });
  return commits;
}

/** Reads and parses an NDJSON history file ({@link parseHistory}). Throws when missing or malformed. */
export function readHistoryFile(file: string): HistoryCommit[] {
  if (!fs.existsSync(file)) throw new Error(`history file not found: ${file}`);
  return parseHistory(fs.readFileSync(file, 'utf8'), file);
}

/**
 * Reads a repository's own history (`git log --all --topo-order --reverse --numstat`, stash and
 * notes excluded) as {@link HistoryCommit}s. Authors become pseudonyms `dev-001`, `dev-002`, …
 * in order of first appearance (keyed by e-mail), as in the shared data set. Parents outside the
 * log (a shallow clone) are dropped. Returns undefined when git fails or there is no commit.
 */
export function readRepoHistory(repoDir: string): HistoryCommit[] | undefined {
  let out: string;
  let refs: string;
  try {
    const env = cleanGitEnv(process.env);
    out = execFileSync(
      'git',
      ['log', '--exclude=refs/stash', '--exclude=refs/notes/*', '--all', '--topo-order', '--reverse', '--numstat', '--date=format:%z',
        '--format=%x1e%H%x1f%P%x1f%ae%x1f%at%x1f%ad%x1f%ct', '--'],
      { cwd: repoDir, env, encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    refs = execFileSync('git', ['for-each-ref', '--format=%(objectname) %(refname:short)', 'refs/heads'], {
      cwd: repoDir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return undefined;
  }
  const pseudonyms = new Map<string, string>();
  const commits: HistoryCommit[] = [];
  const known = new Set<string>();
  for (const record of out.split('\x1e')) {
    if (record.trim() === '') continue;
    const [head = '', ...numstat] = record.split('\n');
    const [sha = '', parentText = '', email = '', at = '', tz = '', ct = ''] = head.split('\x1f');
    const key = email.toLowerCase();
    if (!pseudonyms.has(key)) pseudonyms.set(key, `dev-${String(pseudonyms.size + 1).padStart(3, '0')}`);
    let filesChanged = 0;
    let insertions = 0;
    let deletions = 0;
    for (const line of numstat) {
      const m = /^(\d+|-)\t(\d+|-)\t/.exec(line);
      if (!m) continue;
      filesChanged++;
      if (m[1] !== '-') insertions += Number(m[1]);
      if (m[2] !== '-') deletions += Number(m[2]);
    }
    const parents = parentText.split(' ').filter((p) => known.has(p));
    commits.push({
      sha,
      parents,
      author: pseudonyms.get(key)!,
      authorTime: Number(at),
      tz: TZ_RE.test(tz) ? tz : '+0000',
      commitTime: Number(ct),
      // numstat is against the first parent; the data set records 0 for merges.
      filesChanged: parents.length > 1 ? 0 : filesChanged,
      insertions: parents.length > 1 ? 0 : insertions,
      deletions: parents.length > 1 ? 0 : deletions,
      branches: [],
    });
    known.add(sha);
  }
  const bySha = new Map(commits.map((c) => [c.sha, c]));
  for (const line of refs.split('\n')) {
    const [sha = '', name] = line.split(' ');
    if (name) bySha.get(sha)?.branches.push(name);
  }
  return commits.length > 0 ? commits : undefined;
}

// ---------------------------------------------------------------------------------------------
// Branch plan

/** Which branch each commit is made on. */
export interface LinePlan {
  /** original sha → branch name the commit is made on. */
  labelOf: Map<string, string>;
  /** branch name → original sha of the last commit made on it. */
  lastOf: Map<string, string>;
  /** Branch names taken from the history (`branches`); the others are synthetic `topic-NNNN`. */
  named: Set<string>;
}

function namePriority(name: string): number {
  if (name === 'main') return 0;
  if (name === 'master') return 1;
  if (name === 'develop') return 2;
  return 3;
}

/**
 * Splits the history into lines of development, one branch each: a line is a first-parent
 * chain, claimed by walking back from its last commit along first parents until a commit already
 * claimed, so every commit belongs to exactly one line and each line is contiguous (its first
 * commit is a root or forks from another line). Lines are claimed first from the commits that
 * carry branch names in the history (`main`, `master`, `develop`, then the others in history
 * order; a named commit may be continued by other commits, e.g. a release branch built on `main`),
 * then from the remaining tips — topic branches that were merged and deleted — named `topic-0001`,
 * `topic-0002`, … in history order. A name whose commit was already claimed by an earlier line
 * is not a line; the replay sets it as a plain branch at the end. Pure.
 */
export function planLines(history: HistoryCommit[]): LinePlan {
  const bySha = new Map(history.map((c) => [c.sha, c]));
  const continued = new Set<string>();
  for (const c of history) if (c.parents[0] !== undefined) continued.add(c.parents[0]);
  const namedCommits = history
    .filter((c) => c.branches.length > 0)
    .map((c, order) => ({ c, name: [...c.branches].sort((a, b) => namePriority(a) - namePriority(b))[0]!, order }))
    .sort((a, b) => namePriority(a.name) - namePriority(b.name) || a.order - b.order);
  const labelOf = new Map<string, string>();
  const lastOf = new Map<string, string>();
  const named = new Set<string>();
  const used = new Set(history.flatMap((c) => c.branches));
  let topic = 0;
  const claim = (last: HistoryCommit, name: string): boolean => {
    if (labelOf.has(last.sha)) return false;
    lastOf.set(name, last.sha);
    let cursor: HistoryCommit | undefined = last;
    while (cursor && !labelOf.has(cursor.sha)) {
      labelOf.set(cursor.sha, name);
      cursor = cursor.parents[0] === undefined ? undefined : bySha.get(cursor.parents[0]);
    }
    return true;
  };
  for (const { c, name } of namedCommits) if (claim(c, name)) named.add(name);
  for (const c of history) {
    if (continued.has(c.sha) || labelOf.has(c.sha)) continue;
    let name: string;
    do name = `topic-${String(++topic).padStart(4, '0')}`;
    while (used.has(name));
    claim(c, name);
  }
  return { labelOf, lastOf, named };
}

// ---------------------------------------------------------------------------------------------
// Synthetic changes

/** A file of the synthetic tree: its line count and executable bit. */
export interface FileState {
  lines: number;
  exec: boolean;
}
/** path → state; one immutable snapshot per replayed commit. */
export type Tree = ReadonlyMap<string, FileState>;

/** What to do to one file: drop its first `remove` lines, append `add` lines, maybe toggle +x. */
export interface FileChange {
  path: string;
  create: boolean;
  remove: number;
  add: number;
  toggleExec: boolean;
}

/** The plan for one commit and the counts it will really produce. */
export interface ChangePlan {
  changes: FileChange[];
  /** numstat the plan produces (equals the request unless the tree has too few lines). */
  filesChanged: number;
  insertions: number;
  deletions: number;
  /** The tree after the commit. */
  tree: Tree;
}

/**
 * Plans synthetic changes on `tree` whose `git show --numstat` is exactly `want`
 * (files touched, lines added, lines removed). Every line ever written is unique, so removing the
 * first d lines of a file and appending a lines shows as exactly d deletions and a insertions;
 * files are never deleted (so git's rename detection has nothing to pair).
 *
 * - deletions come from the fewest files: the largest first, at most `filesChanged` of them;
 * - insertions: when other files must be touched, the bulk goes to the largest untouched file
 *   (keeping lines concentrated so later large single-file deletions are possible) and one line
 *   to each other file; otherwise into a file already losing lines;
 * - a file that must be touched without lines gets its executable bit toggled (numstat `0 0`);
 * - new files (`src/file-NNNNN.txt`, via `newPath`) only when the tree has too few files.
 *
 * When the tree holds fewer lines in `filesChanged` files than `deletions`, the plan deletes what
 * there is (the result's counts say so). Pure.
 */
export function planChanges(tree: Tree, want: { filesChanged: number; insertions: number; deletions: number }, newPath: () => string): ChangePlan {
  const next = new Map(tree);
  const changes = new Map<string, FileChange>();
  const touch = (p: string, create = false): FileChange => {
    let change = changes.get(p);
    if (!change) {
      change = { path: p, create, remove: 0, add: 0, toggleExec: false };
      changes.set(p, change);
    }
    return change;
  };
  const F = want.filesChanged;
  if (F > 0) {
    const bySize = [...tree.entries()].sort((a, b) => b[1].lines - a[1].lines || (a[0] < b[0] ? -1 : 1));
    let toDelete = want.deletions;
    for (const [p, state] of bySize) {
      if (toDelete === 0 || changes.size >= F || state.lines === 0) break;
      const take = Math.min(state.lines, toDelete);
      touch(p).remove = take;
      toDelete -= take;
    }
    const rest = F - changes.size;
    if (rest === 0) {
      if (want.insertions > 0) touch([...changes.keys()][0]!).add = want.insertions;
    } else {
      const untouched = bySize.map(([p]) => p).filter((p) => !changes.has(p));
      const withLines = Math.min(rest, want.insertions);
      // Files getting lines: largest untouched first; mode toggles: the smallest untouched.
      const targets: Array<{ path: string; create: boolean }> = [];
      for (let i = 0; i < rest; i++) targets.push(i < untouched.length ? { path: untouched[i]!, create: false } : { path: newPath(), create: true });
      const lineTargets = targets.slice(0, withLines);
      const toggleTargets = targets.slice(withLines);
      lineTargets.forEach((t, i) => {
        touch(t.path, t.create).add = i === 0 ? want.insertions - (withLines - 1) : 1;
      });
      for (const t of toggleTargets) {
        const change = touch(t.path, t.create);
        if (!t.create) change.toggleExec = true; // a new empty file is itself a change (0 0)
      }
    }
  }
  let insertions = 0;
  let deletions = 0;
  for (const change of changes.values()) {
    const before = next.get(change.path) ?? { lines: 0, exec: false };
    next.set(change.path, { lines: before.lines - change.remove + change.add, exec: change.toggleExec ? !before.exec : before.exec });
    insertions += change.add;
    deletions += change.remove;
  }
  return { changes: [...changes.values()], filesChanged: changes.size, insertions, deletions, tree: next };
}

// ---------------------------------------------------------------------------------------------
// Scratch repository

/** A scratch repository with its own isolated git environment. */
export interface ScratchRepo {
  /** Temp folder holding `repo/` and `home/`. */
  root: string;
  /** The work tree (absolute, real path). */
  dir: string;
  /** `<dir>/.flowforge`: where the hooks' data root resolves to (no config, no env override). */
  dataRoot: string;
  /** Environment for git, hooks and the CLI: isolated HOME, no ambient GIT_* / FLOWFORGE_*. */
  env: NodeJS.ProcessEnv;
  /** Runs git in the work tree, returns trimmed stdout; throws with git's stderr on failure. */
  git(args: string[], extraEnv?: NodeJS.ProcessEnv): string;
  /** Removes the temp folder. */
  remove(): void;
}

/** `env` without any `GIT_*` (git exports some to hooks), `FLOWFORGE_*` or `HUSKY` variable. */
export function cleanGitEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) {
    const k = key.toUpperCase();
    if (k.startsWith('GIT_') || k.startsWith('FLOWFORGE_') || k === 'HUSKY') continue;
    out[key] = value;
  }
  return out;
}

/**
 * Creates `<tmp>/<prefix>XXXXXX/repo`: `git init -b main`, user `FlowForge Demo
 * <demo@example.invalid>`, `commit.gpgsign false`, `gc.auto 0` (no pause mid-replay), and
 * `.flowforge/` in `info/exclude` so the data root is never committed. Git runs with an isolated
 * HOME (a global `core.hooksPath` or signing setup cannot leak in).
 * Throws when the temp folder would be inside the project folder.
 */
export function createScratchRepo(prefix = 'ff-replay-'): ScratchRepo {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  const inside = (p: string, parent: string) => p === parent || p.startsWith(parent + path.sep);
  if (inside(root, PROJECT_ROOT) || inside(root, '/work/main')) {
    fs.rmSync(root, { recursive: true, force: true });
    throw new Error(`refusing to create a scratch repository inside the project folder (${root})`);
  }
  const dir = path.join(root, 'repo');
  const home = path.join(root, 'home');
  fs.mkdirSync(dir);
  fs.mkdirSync(home);
  const env = cleanGitEnv(process.env);
  Object.assign(env, { HOME: home, XDG_CONFIG_HOME: home, GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C' });
  const git = (args: string[], extraEnv?: NodeJS.ProcessEnv): string => {
    const r = spawnSync('git', args, { cwd: dir, env: extraEnv ? { ...env, ...extraEnv } : env, encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').trim()}`);
    return r.stdout.trim();
  };
  git(['init', '-q', '-b', 'main']);
  git(['config', 'user.name', 'FlowForge Demo']);
  git(['config', 'user.email', 'demo@example.invalid']);
  git(['config', 'commit.gpgsign', 'false']);
  git(['config', 'gc.auto', '0']);
  const exclude = path.resolve(dir, git(['rev-parse', '--git-path', 'info/exclude']));
  fs.mkdirSync(path.dirname(exclude), { recursive: true });
  fs.appendFileSync(exclude, '.flowforge/\n');
  return { root, dir, dataRoot: path.join(dir, '.flowforge'), env, git, remove: () => fs.rmSync(root, { recursive: true, force: true }) };
}

/** Outcome of one CLI call; `json` is stdout parsed when it is one JSON document. */
export interface CliRun {
  status: number;
  stdout: string;
  stderr: string;
  json: { ok: boolean; action: string; result?: Record<string, unknown>; error?: { code: string; message: string } } | undefined;
  ms: number;
}

/** Runs `node <CLI_PATH> ...args` in the scratch work tree with its environment. */
export function runCli(repo: ScratchRepo, args: string[], cliPath = CLI_PATH): CliRun {
  const started = performance.now();
  const r = spawnSync(process.execPath, [cliPath, ...args], { cwd: repo.dir, env: repo.env, encoding: 'utf8', maxBuffer: 1 << 28 });
  const ms = performance.now() - started;
  let json: CliRun['json'];
  try {
    json = JSON.parse(r.stdout) as CliRun['json'];
  } catch {
    json = undefined;
  }
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr, json, ms };
}

/**
 * Installs the hooks with the real CLI (`provider-bridge hooks install --repo=<dir>`).
 * Throws when the call fails or reports anything but post-commit and post-checkout.
 */
export function installHooks(repo: ScratchRepo, cliPath = CLI_PATH): string[] {
  if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} is missing: run npm run build first`);
  const run = runCli(repo, ['hooks', 'install', `--repo=${repo.dir}`], cliPath);
  const installed = (run.json?.result?.installed as Array<{ hook: string; file: string }> | undefined) ?? [];
  const hooks = installed.map((h) => h.hook).sort();
  if (run.status !== 0 || hooks.join(',') !== 'post-checkout,post-commit') {
    throw new Error(`hooks install failed (exit ${run.status}): ${run.stdout}${run.stderr}`);
  }
  return installed.map((h) => h.file);
}

// ---------------------------------------------------------------------------------------------
// Replay

/** Options of {@link replayHistory}. */
export interface ReplayOptions {
  /** Branch plan; default planned from `commits` itself. Pass the full history's plan when replaying a prefix. */
  plan?: LinePlan;
  /** Called after every commit with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** What the replay did. Times in milliseconds. */
export interface ReplayResult {
  /** original sha → replayed sha. */
  shaMap: Map<string, string>;
  /** Wall time of each `git commit` (post-commit hook included), in replay order. */
  commitMs: number[];
  /** Wall time of each HEAD-moving `git checkout` (post-checkout hook included). */
  checkoutMs: number[];
  /** HEAD-moving checkouts from a born HEAD: each should give one `checkout` entry. */
  checkouts: number;
  /** Checkouts from an unborn HEAD (git runs no post-checkout hook then). */
  unbornCheckouts: number;
  /** Merges whose second parent was already merged (`git merge` said up to date; MERGE_HEAD written by hand). */
  forcedMerges: number;
  /** Non-merge commits whose synthetic tree could not produce the recorded numstat (original sha → planned counts). */
  impossible: Map<string, { filesChanged: number; insertions: number; deletions: number }>;
  /** Topic branches deleted after being merged. */
  deletedBranches: number;
  totalMs: number;
}

const NEW_FILE_DIR = 'src';

/**
 * Replays `commits` (parents before children; every parent must be in `commits`) into `repo`,
 * whose hooks must already be installed. Returns the sha map and timings; throws on any git
 * failure or when a replayed commit's parents differ from the mapped originals.
 */
export function replayHistory(repo: ScratchRepo, commits: HistoryCommit[], options: ReplayOptions = {}): ReplayResult {
  const started = performance.now();
  const plan = options.plan ?? planLines(commits);
  const shaMap = new Map<string, string>();
  const trees = new Map<string, Tree>();
  const pendingChildren = new Map<string, number>();
  for (const c of commits) for (const p of c.parents) pendingChildren.set(p, (pendingChildren.get(p) ?? 0) + 1);
  const tipOf = new Map<string, string>(); // branch → original sha of its current tip
  const result: ReplayResult = {
    shaMap, commitMs: [], checkoutMs: [], checkouts: 0, unbornCheckouts: 0, forcedMerges: 0,
    impossible: new Map(), deletedBranches: 0, totalMs: 0,
  };
  let current: string | undefined; // branch HEAD is on
  let born = false;
  let lineSeq = 0;
  let fileSeq = 0;
  const newPath = () => `${NEW_FILE_DIR}/file-${String(++fileSeq).padStart(5, '0')}.txt`;
  const [mergeHeadFile = '', mergeModeFile = ''] = repo
    .git(['rev-parse', '--git-path', 'MERGE_HEAD', '--git-path', 'MERGE_MODE'])
    .split('\n')
    .map((p) => path.resolve(repo.dir, p));

  const checkout = (args: string[]) => {
    const t0 = performance.now();
    repo.git(['checkout', '-q', ...args]);
    if (born) {
      result.checkouts++;
      result.checkoutMs.push(performance.now() - t0);
    } else {
      result.unbornCheckouts++;
    }
  };

  commits.forEach((c, index) => {
    const label = plan.labelOf.get(c.sha);
    if (label === undefined) throw new Error(`commit ${c.sha} has no branch in the plan`);
    const parents = c.parents.map((p) => {
      const mapped = shaMap.get(p);
      if (!mapped) throw new Error(`commit ${c.sha}: parent ${p} was not replayed before it`);
      return mapped;
    });

    // 1. Put HEAD on the commit's branch, at its first parent.
    if (c.parents.length === 0) {
      if (current !== label || born) {
        checkout(['--orphan', label]);
        if (born) repo.git(['rm', '-rfq', '--ignore-unmatch', '.']);
      }
      current = label;
    } else if (tipOf.has(label)) {
      if (tipOf.get(label) !== c.parents[0]) throw new Error(`branch ${label} is at ${tipOf.get(label)}, not at ${c.parents[0]} (parent of ${c.sha})`);
      if (current !== label) checkout([label]);
      current = label;
    } else {
      checkout(['-b', label, parents[0]!]);
      current = label;
    }

    // 2. Changes: synthetic files for a normal commit, an "ours" merge for a merge.
    const baseTree: Tree = c.parents[0] === undefined ? new Map() : trees.get(c.parents[0])!;
    let tree = baseTree;
    const commitArgs = ['commit', '-q', '-m', `replay ${c.sha}\n\n${c.author}, ${index + 1}/${commits.length}`];
    if (c.parents.length === 2) {
      repo.git(['merge', '-q', '--no-ff', '--no-commit', '--allow-unrelated-histories', '-s', 'ours', parents[1]!]);
      if (!fs.existsSync(mergeHeadFile)) {
        // "Already up to date": the second parent is an ancestor of the first. Record the merge
        // anyway; MERGE_MODE no-ff stops `git commit` from reducing the redundant parent.
        fs.writeFileSync(mergeHeadFile, `${parents[1]}\n`);
        fs.writeFileSync(mergeModeFile, 'no-ff');
        result.forcedMerges++;
      }
    } else {
      const planned = planChanges(baseTree, c, newPath);
      if (planned.filesChanged !== c.filesChanged || planned.insertions !== c.insertions || planned.deletions !== c.deletions) {
        result.impossible.set(c.sha, { filesChanged: planned.filesChanged, insertions: planned.insertions, deletions: planned.deletions });
      }
      applyChanges(repo.dir, planned.changes, () => `${++lineSeq} ${c.sha.slice(0, 12)}\n`);
      tree = planned.tree;
      if (planned.changes.length > 0) repo.git(['add', '-A']);
      else commitArgs.push('--allow-empty');
    }

    // 3. Commit (post-commit fires) and check the parents.
    const env = {
      GIT_AUTHOR_NAME: c.author,
      GIT_AUTHOR_EMAIL: `${c.author}@example.invalid`,
      GIT_AUTHOR_DATE: `@${c.authorTime} ${c.tz}`,
      GIT_COMMITTER_DATE: `@${c.commitTime} ${c.tz}`,
    };
    const t0 = performance.now();
    repo.git(commitArgs, env);
    result.commitMs.push(performance.now() - t0);
    born = true;
    const [sha = '', ...actualParents] = repo.git(['rev-list', '--parents', '-n', '1', 'HEAD']).split(' ');
    if (actualParents.join(' ') !== parents.join(' ')) {
      throw new Error(`replayed ${c.sha} as ${sha} with parents [${actualParents.join(', ')}], expected [${parents.join(', ')}]`);
    }
    shaMap.set(c.sha, sha);
    trees.set(c.sha, tree);
    tipOf.set(label, c.sha);
    for (const p of c.parents) {
      const left = (pendingChildren.get(p) ?? 1) - 1;
      pendingChildren.set(p, left);
      if (left === 0) trees.delete(p);
    }

    // 4. A synthetic topic branch whose last commit was just merged is done: delete it, as people do.
    if (c.parents.length === 2) {
      const merged = plan.labelOf.get(c.parents[1]!);
      if (merged && merged !== current && !plan.named.has(merged) && plan.lastOf.get(merged) === c.parents[1] && tipOf.get(merged) === c.parents[1]) {
        repo.git(['branch', '-q', '-D', merged]);
        tipOf.delete(merged);
        result.deletedBranches++;
      }
    }
    options.onProgress?.(index + 1, commits.length);
  });

  // Branch names the history records at commits that are not the end of their line.
  for (const c of commits) {
    for (const name of c.branches) {
      if (name === current || tipOf.get(name) === c.sha) continue;
      repo.git(['branch', '-f', name, shaMap.get(c.sha)!]);
    }
  }
  result.totalMs = performance.now() - started;
  return result;
}

/** Writes the planned changes into the work tree. `line()` returns a new unique line each call. */
function applyChanges(dir: string, changes: FileChange[], line: () => string): void {
  for (const change of changes) {
    const file = path.join(dir, change.path);
    let lines: string[] = [];
    if (change.create) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
    } else if (change.remove > 0 || change.add > 0) {
      const text = fs.readFileSync(file, 'utf8');
      lines = text === '' ? [] : text.slice(0, -1).split('\n').map((l) => `${l}\n`);
    }
    if (change.create || change.remove > 0 || change.add > 0) {
      const added: string[] = [];
      for (let i = 0; i < change.add; i++) added.push(line());
      fs.writeFileSync(file, lines.slice(change.remove).join('') + added.join(''));
    }
    if (change.toggleExec) {
      const mode = fs.statSync(file).mode & 0o777;
      fs.chmodSync(file, mode & 0o111 ? mode & ~0o111 : mode | 0o111);
    }
  }
}

/**
 * Independent check of the synthetic changes: one `git log --all --numstat` over the scratch
 * repository, compared with the recorded counts for every replayed non-merge commit.
 * Returns the original shas whose numstat differs.
 */
export function numstatMismatches(repo: ScratchRepo, commits: HistoryCommit[], shaMap: Map<string, string>): string[] {
  const out = repo.git(['log', '--all', '--numstat', '--no-renames', '--format=%x1e%H']);
  const stats = new Map<string, [number, number, number]>();
  for (const record of out.split('\x1e')) {
    if (record.trim() === '') continue;
    const [sha = '', ...lines] = record.split('\n');
    const s: [number, number, number] = [0, 0, 0];
    for (const l of lines) {
      const m = /^(\d+|-)\t(\d+|-)\t/.exec(l);
      if (!m) continue;
      s[0]++;
      s[1] += m[1] === '-' ? 0 : Number(m[1]);
      s[2] += m[2] === '-' ? 0 : Number(m[2]);
    }
    stats.set(sha.trim(), s);
  }
  return commits
    .filter((c) => c.parents.length < 2)
    .filter((c) => {
      const s = stats.get(shaMap.get(c.sha) ?? '') ?? [-1, -1, -1];
      return s[0] !== c.filesChanged || s[1] !== c.insertions || s[2] !== c.deletions;
    })
    .map((c) => c.sha);
}

// ---------------------------------------------------------------------------------------------
// Sessions

/** The FlowForge session file the demo imports, and what it should produce. */
export interface SessionsFixture {
  file: string;
  userId: string;
  /** Completed sessions: each should become one `time-tracking` entry. */
  completed: Array<{ sessionId: string; start: number; duration: number }>;
  open: number;
}

/**
 * Writes `<dataRoot>/user/<userId>/time.json` in the FlowForge user-data schema v2.0 shape read
 * by `plugins/aggregation/sources/sessions.ts` (`timeTracking.sessions[]`, durations in
 * **seconds**, times as ISO-8601, epoch s or epoch ms): four completed sessions in the days
 * before `now` (epoch ms) — one of them with only an end time and a duration — and one still
 * running. Directory 0700, file 0600 (SPEC §2).
 */
export function writeSessionsFile(dataRoot: string, now: number, userId = 'dev-001'): SessionsFixture {
  const dir = path.join(dataRoot, 'user', userId);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const day = 86_400_000;
  const base = Math.floor((now - 3 * day) / 60_000) * 60_000; // whole minutes, three days ago
  const completed = [
    { sessionId: 'sess-0001', start: base, duration: 50 * 60_000 },
    { sessionId: 'sess-0002', start: base + 2 * 3_600_000, duration: 95 * 60_000 },
    { sessionId: 'sess-0003', start: base + day, duration: 25 * 60_000 },
    { sessionId: 'sess-0004', start: base + day + 4 * 3_600_000, duration: 70 * 60_000 },
  ];
  const [a, b, c, d] = completed as [typeof completed[0], typeof completed[0], typeof completed[0], typeof completed[0]];
  const doc = {
    version: '2.0',
    userId,
    timeTracking: {
      sessions: [
        { id: a.sessionId, taskId: 214, startTime: new Date(a.start).toISOString(), endTime: new Date(a.start + a.duration).toISOString(), duration: a.duration / 1000 },
        { id: b.sessionId, taskId: '215', startTime: b.start / 1000, endTime: (b.start + b.duration) / 1000, duration: b.duration / 1000 },
        { id: c.sessionId, startTime: c.start, endTime: c.start + c.duration },
        { id: d.sessionId, taskId: 216, endTime: new Date(d.start + d.duration).toISOString(), duration: d.duration / 1000 },
        { id: 'sess-0005', taskId: 217, startTime: new Date(now - 20 * 60_000).toISOString(), endTime: null },
      ],
    },
  };
  const file = path.join(dir, 'time.json');
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
  return { file, userId, completed, open: 1 };
}

// ---------------------------------------------------------------------------------------------
// Reading the output

/** A stored entry as found in a batch file. */
export interface StoredEntry {
  entryId: string;
  userId: string;
  action: string;
  timestamp: number;
  metadata?: Record<string, unknown>;
}

/** Every batch file under `<dataRoot>/aggregated/` and its entries, in file-name order. */
export function readBatches(dataRoot: string): { files: string[]; entries: StoredEntry[] } {
  const dir = path.join(dataRoot, 'aggregated');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^batch_.*\.json$/.test(n)).sort() : [];
  const entries: StoredEntry[] = [];
  for (const name of files) {
    const doc = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { entries?: StoredEntry[] };
    entries.push(...(doc.entries ?? []));
  }
  return { files: files.map((n) => path.join(dir, n)), entries };
}

/** One line of `<dataRoot>/logs/aggregation.log` (JSON lines, rotated `.1`…`.3` included). */
export interface LogLine {
  ts: number;
  level: string;
  msg: string;
  [key: string]: unknown;
}

/** All lines of the aggregation log, oldest generation first; unparseable lines are skipped. */
export function readAggregationLog(dataRoot: string): LogLine[] {
  const base = path.join(dataRoot, 'logs', 'aggregation.log');
  const lines: LogLine[] = [];
  for (const file of [`${base}.3`, `${base}.2`, `${base}.1`, base]) {
    if (!fs.existsSync(file)) continue;
    for (const text of fs.readFileSync(file, 'utf8').split('\n')) {
      if (text.trim() === '') continue;
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        /* a torn last line */
      }
    }
  }
  return lines;
}

/** The p-th percentile (0–100, nearest rank) of `values`; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Count per key. */
export function countBy<T>(items: T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Verification

/** One verification result, printed as PASS/FAIL by the demo and asserted by the test. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** Number of parents recorded in a commit entry's metadata (a count or a list). */
export function parentCount(metadata: Record<string, unknown> | undefined): number | undefined {
  const parents = metadata?.parents;
  if (typeof parents === 'number') return parents;
  if (Array.isArray(parents)) return parents.length;
  return undefined;
}

/**
 * Compares the aggregated entries with the replayed history: one `commit` entry per replayed
 * commit (each sha exactly once), timestamp = authorTime × 1000, per-author counts, parent counts
 * (2 for merges), no `branch: "HEAD"`, no entry id twice, numstat equal wherever the synthetic
 * tree could produce it. Pure.
 */
export function verifyCommits(commits: HistoryCommit[], replay: ReplayResult, entries: StoredEntry[], numstatDiffs: string[]): Check[] {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const original = new Map([...replay.shaMap].map(([o, r]) => [r, o]));
  const bySha = new Map(commits.map((c) => [c.sha, c]));
  const commitEntries = entries.filter((e) => e.action === 'commit');

  add('commit entries == commits replayed', commitEntries.length === commits.length, `${commitEntries.length} entries, ${commits.length} commits`);

  const seen = countBy(commitEntries, (e) => String(e.metadata?.sha));
  const twice = [...seen].filter(([, n]) => n > 1).length;
  const missing = [...replay.shaMap.values()].filter((s) => !seen.has(s)).length;
  const foreign = [...seen.keys()].filter((s) => !original.has(s)).length;
  add('each replayed sha exactly once', twice === 0 && missing === 0 && foreign === 0, `${missing} missing, ${twice} twice, ${foreign} unknown`);

  const wrongTime = commitEntries.filter((e) => {
    const c = bySha.get(original.get(String(e.metadata?.sha)) ?? '');
    return !c || e.timestamp !== c.authorTime * 1000;
  }).length;
  add('timestamps == authorTime × 1000', wrongTime === 0, `${wrongTime} of ${commitEntries.length} differ`);

  const expected = countBy(commits, (c) => c.author);
  const actual = countBy(commitEntries, (e) => e.userId);
  const authors = new Set([...expected.keys(), ...actual.keys()]);
  const authorDiffs = [...authors].filter((a) => expected.get(a) !== actual.get(a));
  add('per-author counts == history', authorDiffs.length === 0,
    authorDiffs.length === 0 ? `${expected.size} authors` : authorDiffs.slice(0, 5).map((a) => `${a}: ${actual.get(a) ?? 0} vs ${expected.get(a) ?? 0}`).join(', '));

  const merges = commits.filter((c) => c.parents.length === 2).length;
  const wrongParents = commitEntries.filter((e) => {
    const c = bySha.get(original.get(String(e.metadata?.sha)) ?? '');
    return !c || parentCount(e.metadata) !== c.parents.length;
  }).length;
  const mergeEntries = commitEntries.filter((e) => parentCount(e.metadata) === 2).length;
  add('parent counts (merges have 2)', wrongParents === 0 && mergeEntries === merges, `${mergeEntries} merge entries, ${merges} merges in the history, ${wrongParents} wrong`);

  const headBranch = entries.filter((e) => e.metadata?.branch === 'HEAD').length;
  add('branch is never "HEAD"', headBranch === 0, `${headBranch} entries`);

  const ids = countBy(entries, (e) => e.entryId);
  const dupIds = [...ids].filter(([, n]) => n > 1).length;
  add('no entry id twice across batch files', dupIds === 0, `${ids.size} ids, ${dupIds} repeated`);

  const nonMerge = commits.length - merges;
  const unexpected = numstatDiffs.filter((s) => !replay.impossible.has(s));
  const entryDiffs = commitEntries.filter((e) => {
    const c = bySha.get(original.get(String(e.metadata?.sha)) ?? '');
    if (!c || c.parents.length === 2 || replay.impossible.has(c.sha)) return false;
    return e.metadata?.filesChanged !== c.filesChanged || e.metadata?.insertions !== c.insertions || e.metadata?.deletions !== c.deletions;
  }).length;
  add('numstat == history (non-merge commits)', unexpected.length === 0 && entryDiffs === 0,
    `${nonMerge - numstatDiffs.length} of ${nonMerge} exact; ${numstatDiffs.length} differ in git ` +
    `(${replay.impossible.size} where the synthetic tree had too few lines), ${entryDiffs} entries disagree with git`);
  return checks;
}
