/**
 * `withGitRepo(t)`: a scratch git repository for tests, in the OS temp folder, removed in
 * `t.teardown`. Git runs with an isolated HOME/XDG_CONFIG_HOME (the developer's global config —
 * gpg signing, a global core.hooksPath, templates — cannot leak in) and without any ambient
 * `GIT_*` variable (tests may themselves run from a git hook). Refuses to create the repository
 * inside the project's own folder.
 */
import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
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

export interface CommitOptions {
  /** Author and committer date, git's internal format `<epoch s> <+hhmm>`. */
  date?: string;
  authorName?: string;
  authorEmail?: string;
  /** Paths to delete before committing. */
  remove?: string[];
  /** Extra `git commit` arguments, e.g. `--allow-empty`. */
  args?: string[];
}

export interface GitRepo {
  /** Absolute (real) path of the work tree. */
  dir: string;
  /** Scratch folder holding the repository and anything else a test needs (removed at teardown). */
  root: string;
  /** Clean environment for git and hook processes (isolated HOME, no ambient GIT_*). */
  env: NodeJS.ProcessEnv;
  /** Runs git in `cwd` (default the work tree) and returns trimmed stdout; throws on failure. */
  git(args: string[], options?: { cwd?: string; env?: NodeJS.ProcessEnv }): string;
  /** Writes `files` (relative path → content), stages everything, commits; returns the new sha. */
  commit(message: string, files?: Record<string, string | Buffer>, options?: CommitOptions): string;
}

/**
 * Creates `<tmp>/ff-git-XXXX/repo` with `git init -b main`, `user.name "Test User"`,
 * `user.email test@example.com`, `commit.gpgsign false`, and `core.hooksPath` unset.
 * `options.init: false` skips `git init` (for clone tests).
 */
export function withGitRepo(t: ExecutionContext, options: { init?: boolean } = {}): GitRepo {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ff-git-')));
  if (root === PROJECT_ROOT || root.startsWith(PROJECT_ROOT + path.sep) || root.startsWith('/work/main')) {
    throw new Error(`withGitRepo refuses to run inside the project folder (${root})`);
  }
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'repo');
  fs.mkdirSync(dir);
  const home = path.join(root, 'home');
  fs.mkdirSync(home);
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toUpperCase().startsWith('GIT_')) env[key] = value;
  }
  Object.assign(env, { HOME: home, XDG_CONFIG_HOME: home, GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C', HUSKY: '' });
  const git = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string =>
    execFileSync('git', args, { cwd: opts.cwd ?? dir, env: opts.env ?? env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  if (options.init !== false) {
    git(['init', '-q', '-b', 'main']);
    git(['config', 'user.name', 'Test User']);
    git(['config', 'user.email', 'test@example.com']);
    git(['config', 'commit.gpgsign', 'false']);
  }
  const commit = (message: string, files: Record<string, string | Buffer> = {}, opts: CommitOptions = {}): string => {
    for (const [rel, content] of Object.entries(files)) {
      const file = path.join(dir, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, content);
    }
    for (const rel of opts.remove ?? []) git(['rm', '-q', rel]);
    git(['add', '-A']);
    const date = opts.date ?? '1700000000 +0100';
    const commitEnv: NodeJS.ProcessEnv = { ...env, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date };
    if (opts.authorName) commitEnv.GIT_AUTHOR_NAME = opts.authorName;
    if (opts.authorEmail) commitEnv.GIT_AUTHOR_EMAIL = opts.authorEmail;
    git(['commit', '-q', '--no-verify', '-m', message, ...(opts.args ?? [])], { env: commitEnv });
    return git(['rev-parse', 'HEAD']);
  };
  return { dir, root, env, git, commit };
}
