/**
 * The git port's implementation: the only module that spawns git, always through simple-git
 * (SPEC §1), which is imported lazily so actions that need no git fact never pay its ~30 ms
 * load time (DEPENDENCIES.md "Start-up cost").
 *
 * Process budget (the hook path pays it on every commit, SPEC §8):
 * - `headCommit()` is ONE `git log -1 … --numstat HEAD` (a second spawn only when that fails,
 *   to tell an unborn HEAD from a broken repository);
 * - `currentBranch()`, `topLevel()`, `hooksDir()`, `configGet()` are one spawn each;
 * - `log()` is one `git log` for the whole history (plus one `git rev-parse --since/--until`
 *   when bounds are given, so dates are parsed by git itself).
 * - `run()` is one spawn per call; `readObjects()` one `cat-file --batch` for any number of ids.
 *
 * Environment (git hooks, githooks(5)): git exports `GIT_DIR`, `GIT_INDEX_FILE` (and sometimes
 * `GIT_WORK_TREE`, `GIT_PREFIX`, `GIT_EXEC_PATH`, …) to hooks. simple-git 4 guards every `GIT_*`
 * variable plus `EDITOR`/`VISUAL`/`PAGER`/`PREFIX`/`SSH_ASKPASS`: inherited ones are silently
 * stripped and explicitly supplied ones make the task throw, unless named in its
 * `allowEnvironment` option (simple-git `SimpleGitPluginConfig.allowEnvironment`). We therefore
 * pass an explicit, sanitized environment: every guarded key is dropped except the repository
 * location variables in {@link GIT_LOCATION_ENV}, which are allowed, so a hook sees the same
 * repository, worktree and index git itself is using. Relative values (git often exports
 * `GIT_DIR=.git`) are made absolute against the invoking process's cwd. When `repoDir` is not the
 * invoking cwd (an explicit `--repo=DIR`), the location variables are dropped as well, because
 * they describe the caller's repository, not `repoDir`.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { SimpleGit } from 'simple-git';
import { GitError } from './errors.js';
import type { CommitFacts, GitClient, GitRunOptions } from './git.js';

/**
 * git variables that locate the repository, work tree and index (git(1) "ENVIRONMENT"). These
 * are passed through to git (resolved to absolute paths) when present; every other guarded
 * variable is dropped.
 */
export const GIT_LOCATION_ENV = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_COMMON_DIR',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_CEILING_DIRECTORIES',
  'GIT_DISCOVERY_ACROSS_FILESYSTEM',
  'GIT_NAMESPACE',
] as const;

const PATH_VARS = new Set(['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_COMMON_DIR', 'GIT_OBJECT_DIRECTORY']);
/** Non-`GIT_` keys simple-git 4 guards (lower case, as simple-git compares them). */
const GUARDED_PLAIN = new Set(['editor', 'visual', 'pager', 'prefix', 'ssh_askpass']);

/** Options for {@link createGitClient}. */
export interface GitClientOptions {
  /**
   * Working directory of the invoking process (absolute), used to resolve relative `GIT_DIR`
   * values and to detect an explicit `--repo`. Default `process.cwd()`.
   */
  cwd?: string;
}

/**
 * The environment handed to git: `env` without simple-git's guarded keys, except the location
 * variables of {@link GIT_LOCATION_ENV} (absolute) when `keepLocation` is true.
 * Pure; exported for tests.
 */
export function sanitizeGitEnv(env: NodeJS.ProcessEnv, keepLocation: boolean, cwd: string): Record<string, string> {
  const out: Record<string, string> = {};
  const location = new Set<string>(GIT_LOCATION_ENV);
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    const lower = key.toLowerCase().trim();
    const guarded = lower.startsWith('git_') || GUARDED_PLAIN.has(lower);
    if (!guarded) {
      out[key] = value;
    } else if (keepLocation && location.has(key)) {
      out[key] = PATH_VARS.has(key) && value !== '' ? path.resolve(cwd, value) : value;
    }
  }
  return out;
}

function realOrResolved(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

const FS = '\x1f';
const RS = '\x1e';
/**
 * One record per commit: RS, then sha, parents, author name, author e-mail, author time (epoch
 * s), author date ISO-like (its last token is the offset, e.g. "+0100"), decorations; a trailing
 * FS ends the header so the `--numstat` lines that follow are unambiguous (git-log(1) "PRETTY
 * FORMATS").
 */
const FORMAT = `--format=${RS}%H${FS}%P${FS}%an${FS}%ae${FS}%at${FS}%ai${FS}%D${FS}`;
/**
 * Options pinned so user config cannot change the facts: no colour, no signature output, renames
 * detected like git's default (`-M`), the root commit diffed against the empty tree (`--root`),
 * and decorations limited to HEAD and local branches (overrides `log.excludeDecoration`).
 */
const LOG_FIXED = [
  'log',
  '--no-color',
  '--no-show-signature',
  '--no-ext-diff',
  '-M',
  '--root',
  '--numstat',
  '--decorate-refs=HEAD',
  '--decorate-refs=refs/heads/',
  FORMAT,
];

/** Branch from a `%D` decoration: "HEAD -> main, …" → "main"; "HEAD", "HEAD, main" or "" → null. */
export function branchFromDecoration(decoration: string): string | null {
  for (const part of decoration.split(', ')) {
    if (part.startsWith('HEAD -> ')) {
      const name = part.slice('HEAD -> '.length).trim();
      return name === '' || name === 'HEAD' ? null : name;
    }
  }
  return null;
}

/**
 * Parses the output of `git log` run with {@link LOG_FIXED}: one {@link CommitFacts} per record,
 * in output order. numstat lines are `<added>\t<deleted>\t<path>`; a binary file prints `-` for
 * both counts and is counted as a changed file with 0 lines. Merges get 0/0/0 whatever git
 * printed (SPEC §4 and the dataset README: numstat against the first parent, 0 for merges).
 * `withBranch` false sets every `branch` to null (history import).
 * Pure; exported for tests. Throws GitError on a record it cannot read.
 */
export function parseLogOutput(output: string, withBranch: boolean): CommitFacts[] {
  const commits: CommitFacts[] = [];
  const records = output.split(RS);
  for (let r = 1; r < records.length; r++) {
    const record = records[r]!;
    const fields = record.split(FS);
    if (fields.length < 8) throw new GitError(`Unexpected git log output (record ${r}: ${fields.length} fields)`);
    const [sha, parentList, name, email, at, ai, decoration] = fields as [string, string, string, string, string, string, string];
    const numstat = fields.slice(7).join(FS);
    const parents = parentList === '' ? [] : parentList.split(' ');
    let filesChanged = 0;
    let insertions = 0;
    let deletions = 0;
    if (parents.length <= 1) {
      for (const line of numstat.split('\n')) {
        const m = /^(\d+|-)\t(\d+|-)\t/.exec(line);
        if (!m) continue;
        filesChanged++;
        if (m[1] !== '-') insertions += Number(m[1]);
        if (m[2] !== '-') deletions += Number(m[2]);
      }
    }
    const seconds = Number(at);
    if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha) || !Number.isFinite(seconds)) {
      throw new GitError(`Unexpected git log output for commit ${JSON.stringify(sha)}`);
    }
    const tz = ai.trim().split(' ').pop() ?? '';
    commits.push({
      sha,
      parents,
      author: name !== '' ? name : email,
      authorEmail: email,
      authorTime: seconds * 1000,
      authorTz: /^[+-]\d{4}$/.test(tz) ? tz : '+0000',
      branch: withBranch ? branchFromDecoration(decoration) : null,
      filesChanged,
      insertions,
      deletions,
    });
  }
  return commits;
}

/** Default silence limit of a network call (`GitRunOptions.network`), milliseconds. */
export const NETWORK_TIMEOUT_MS = 120_000;

/**
 * The user's ssh settings, passed to network calls only: simple-git strips them as guarded
 * variables, but a `git fetch` the user runs would honour them.
 */
const SSH_ENV = ['GIT_SSH_COMMAND', 'GIT_SSH'] as const;

/**
 * Parses `git cat-file --batch` output (git-cat-file(1) "BATCH OUTPUT"): per object
 * `<oid> SP <type> SP <size> LF <contents> LF`, or `<object> SP missing LF`. Sizes are bytes,
 * so this works on the raw buffer. Pure; exported for tests. Throws GitError on anything else.
 */
export function parseCatFileBatch(out: Buffer): Map<string, { type: string; data: Buffer }> {
  const objects = new Map<string, { type: string; data: Buffer }>();
  let at = 0;
  while (at < out.length) {
    const eol = out.indexOf(0x0a, at);
    if (eol === -1) throw new GitError(`Unexpected git cat-file output at byte ${at} (no header line)`);
    const header = out.subarray(at, eol).toString('utf8');
    at = eol + 1;
    if (/^\S+ (missing|ambiguous)$/.test(header)) continue;
    const m = /^([0-9a-f]{40}(?:[0-9a-f]{24})?) (\S+) (\d+)$/.exec(header);
    if (!m) throw new GitError(`Unexpected git cat-file header ${JSON.stringify(header.slice(0, 120))}`);
    const size = Number(m[3]);
    if (at + size >= out.length || out[at + size] !== 0x0a) throw new GitError(`git cat-file output for ${m[1]} is shorter than its ${size} bytes`);
    objects.set(m[1]!, { type: m[2]!, data: out.subarray(at, at + size) });
    at += size + 1;
  }
  return objects;
}

function gitMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.trim().split('\n')[0] ?? '';
}

/**
 * A {@link GitClient} for the repository containing `repoDir`, over simple-git.
 *
 * `env` is the invocation's environment (hooks: the one git exported); see the module comment
 * for how it is sanitized. Throws GitError when `repoDir` does not exist. Individual methods
 * throw GitError with git's first stderr line (e.g. "fatal: not a git repository") and the
 * simple-git error as `cause`.
 */
export async function createGitClient(repoDir: string, env: NodeJS.ProcessEnv, options: GitClientOptions = {}): Promise<GitClient> {
  const cwd = options.cwd ?? process.cwd();
  const baseDir = path.resolve(cwd, repoDir);
  const explicitRepo = realOrResolved(baseDir) !== realOrResolved(cwd);
  const gitEnv = sanitizeGitEnv(env, !explicitRepo, cwd);
  // require() of simple-git's CommonJS build loads in about half the time of import() of its
  // ESM build (+15 ms against +28 ms per process, measured): this is on every commit's hook path.
  const { simpleGit } = createRequire(import.meta.url)('simple-git') as typeof import('simple-git');
  let git: SimpleGit;
  try {
    git = simpleGit({
      baseDir,
      // simple-git 4 still treats git as finished 50 ms after its `exit` event by default, even
      // when stdout has not been fully read: on a loaded machine that truncated `git log`
      // (7 of 27 commits seen in a test run). Wait for `close`, when every byte has arrived.
      completion: { onClose: true, onExit: false },
      allowEnvironment: GIT_LOCATION_ENV.filter((key) => key in gitEnv),
    }).env(gitEnv);
  } catch (error) {
    throw new GitError(`Cannot use ${baseDir} as a git repository: ${gitMessage(error)}`, { cause: error });
  }

  const raw = async (args: string[]): Promise<string> => {
    try {
      return await git.raw(args);
    } catch (error) {
      throw new GitError(`git ${args[0] ?? ''} failed in ${baseDir}: ${gitMessage(error)}`, { cause: error });
    }
  };

  /**
   * A one-off simple-git instance for a call with stdin, extra environment or a timeout: the
   * shared instance keeps the hook path's settings untouched, and simple-git's `input` and
   * `timeout` options are per instance (simple-git `SimpleGitPluginConfig`).
   */
  const instanceFor = (options: GitRunOptions): SimpleGit => {
    const extra: Record<string, string> = { ...(options.env ?? {}) };
    let allowSsh = false;
    if (options.network) {
      extra.GIT_TERMINAL_PROMPT = '0';
      for (const key of SSH_ENV) {
        const value = env[key];
        if (value !== undefined && value !== '') {
          extra[key] = value;
          allowSsh = true;
        }
      }
    }
    const timeoutMs = options.timeoutMs ?? (options.network ? NETWORK_TIMEOUT_MS : undefined);
    const input = options.input;
    if (input !== undefined && input.length === 0) {
      // simple-git writes nothing and never closes stdin for empty input: git would wait forever.
      throw new GitError('git was given empty standard input (a caller bug): nothing was run');
    }
    try {
      return simpleGit({
        baseDir,
        completion: { onClose: true, onExit: false },
        allowEnvironment: [...GIT_LOCATION_ENV.filter((key) => key in gitEnv), ...Object.keys(extra)],
        ...(input !== undefined ? { input: () => input } : {}),
        ...(timeoutMs !== undefined ? { timeout: { block: timeoutMs } } : {}),
        ...(allowSsh ? { unsafe: { allowUnsafeSshCommand: true } } : {}),
      }).env({ ...gitEnv, ...extra });
    } catch (error) {
      throw new GitError(`Cannot use ${baseDir} as a git repository: ${gitMessage(error)}`, { cause: error });
    }
  };

  /** Unix seconds git parses from a `--since`/`--until` date (git's approxidate). */
  const parseBounds = async (since?: string, until?: string): Promise<{ min?: number; max?: number }> => {
    const args = ['rev-parse'];
    if (since !== undefined) args.push(`--since=${since}`);
    if (until !== undefined) args.push(`--until=${until}`);
    if (args.length === 1) return {};
    const out = await raw(args);
    const bounds: { min?: number; max?: number } = {};
    for (const line of out.split('\n')) {
      const m = /^--(max|min)-age=(-?\d+)$/.exec(line.trim());
      if (m?.[1] === 'max') bounds.min = Number(m[2]) * 1000;
      if (m?.[1] === 'min') bounds.max = Number(m[2]) * 1000;
    }
    return bounds;
  };

  return {
    async topLevel() {
      const out = (await raw(['rev-parse', '--show-toplevel'])).trim();
      if (out === '') throw new GitError(`${baseDir} has no work tree (bare repository?)`);
      return path.resolve(baseDir, out);
    },

    async headCommit() {
      let out: string;
      try {
        out = await git.raw([...LOG_FIXED, '-1', 'HEAD', '--']);
      } catch (error) {
        // Unborn HEAD ("bad revision 'HEAD'") vs. not a repository: ask git, only on this path.
        const verify = await raw(['rev-parse', '-q', '--verify', 'HEAD^{commit}']).catch(() => undefined);
        if (verify !== undefined && verify.trim() === '') return undefined;
        throw new GitError(`Cannot read HEAD in ${baseDir}: ${gitMessage(error)}`, { cause: error });
      }
      const [facts] = parseLogOutput(out, true);
      if (!facts) throw new GitError(`git log printed no commit for HEAD in ${baseDir}`);
      return facts;
    },

    async currentBranch() {
      // `symbolic-ref -q` exits 1 silently when HEAD is detached; simple-git then resolves "".
      const out = (await raw(['symbolic-ref', '-q', 'HEAD'])).trim();
      if (out === '') return null;
      return out.startsWith('refs/heads/') ? out.slice('refs/heads/'.length) : out;
    },

    async log(opts) {
      const bounds = await parseBounds(opts.since, opts.until);
      // Every ref except stash and notes, whose commits are not authored work.
      const revs = opts.all === false ? ['HEAD'] : ['--exclude=refs/stash', '--exclude=refs/notes/*', '--all'];
      let out: string;
      try {
        out = await git.raw([...LOG_FIXED, '--reverse', '--topo-order', ...revs, '--']);
      } catch (error) {
        const verify = await raw(['rev-parse', '-q', '--verify', 'HEAD^{commit}']).catch(() => undefined);
        if (verify !== undefined && verify.trim() === '' && opts.all === false) return [];
        throw new GitError(`git log failed in ${baseDir}: ${gitMessage(error)}`, { cause: error });
      }
      const commits = parseLogOutput(out, false);
      return commits.filter(
        (c) => (bounds.min === undefined || c.authorTime >= bounds.min) && (bounds.max === undefined || c.authorTime <= bounds.max),
      );
    },

    async hooksDir() {
      const out = (await raw(['rev-parse', '--git-path', 'hooks'])).trim();
      if (out === '') throw new GitError(`git did not report a hooks directory for ${baseDir}`);
      // Printed relative to the cwd of git (baseDir), including a relative core.hooksPath.
      return path.resolve(baseDir, out);
    },

    async run(args, options) {
      const runner = options === undefined ? git : instanceFor(options);
      try {
        return await runner.raw(args);
      } catch (error) {
        throw new GitError(`git ${args[0] ?? ''} failed in ${baseDir}: ${gitMessage(error)}`, { cause: error });
      }
    },

    async readObjects(ids) {
      if (ids.length === 0) return new Map();
      let out: Buffer;
      try {
        out = await instanceFor({ input: ids.map((id) => `${id}\n`).join('') }).binaryCatFile(['--batch']);
      } catch (error) {
        throw new GitError(`git cat-file failed in ${baseDir}: ${gitMessage(error)}`, { cause: error });
      }
      return parseCatFileBatch(out);
    },

    async configGet(key) {
      // `config --get` exits 1 silently when the key is unset; simple-git then resolves "".
      const out = await raw(['config', '--get', key]);
      const value = out.replace(/\r?\n$/, '');
      return value === '' ? undefined : value;
    },
  };
}

/**
 * Clients whose `headCommit()` was started early by {@link warmHeadCommit}, keyed by repository
 * directory; taken (once) by the next {@link takeWarmClient} for the same directory.
 */
const warmClients = new Map<string, Promise<GitClient>>();

/**
 * Starts `git log -1 HEAD` for `repoDir` now, so the git process runs while the rest of the
 * action's modules load (the post-commit hook path: about 9 ms of git overlapped with 20 ms of
 * module loading). The client, with its first `headCommit()` already in flight, is handed to the
 * next {@link takeWarmClient} for the same directory; nothing else changes. Never throws: a
 * failure surfaces when the action awaits `headCommit()`, as it would have without warming.
 * Resolves once the git process has been started (not when it ends).
 */
export async function warmHeadCommit(repoDir: string, env: NodeJS.ProcessEnv, options: GitClientOptions = {}): Promise<void> {
  const client = createGitClient(repoDir, env, options).then((c) => {
    const started = c.headCommit();
    started.catch(() => {}); // handled by whoever awaits it; never an unhandled rejection
    let first = true;
    return {
      ...c,
      headCommit: () => {
        if (!first) return c.headCommit();
        first = false;
        return started;
      },
    };
  });
  client.catch(() => {});
  warmClients.set(path.resolve(repoDir), client);
  await client.then(
    () => undefined,
    () => undefined,
  );
}

/** The client warmed for `repoDir` by {@link warmHeadCommit}, once; undefined when none. */
export function takeWarmClient(repoDir: string): Promise<GitClient> | undefined {
  const key = path.resolve(repoDir);
  const client = warmClients.get(key);
  warmClients.delete(key);
  return client;
}
