/**
 * Source `--source=git-checkout --prev=SHA --new=SHA --flag=0|1` (SPEC §4), used by the
 * `post-checkout` hook. git passes the three arguments: the previous HEAD, the new HEAD, and 1
 * for a HEAD move (branch switch, detach) or 0 for a file checkout (githooks(5) "post-checkout").
 */
import { UsageError } from '../../../src/core/errors.js';
import type { GitClient } from '../../../src/core/git.js';
import type { RawSourceEntry } from './git-commit.js';

/** The hook's three arguments, as strings straight from the command line. */
export interface GitCheckoutArgs {
  prev: string | undefined;
  next: string | undefined;
  flag: string | number | undefined;
}

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

function checkSha(name: string, value: string | undefined): string {
  const sha = (value ?? '').trim().toLowerCase();
  if (!SHA.test(sha)) {
    throw new UsageError(`--${name} must be a commit id (40 or 64 hex digits)`, {
      details: [{ path: name, message: 'expected 40 or 64 hex digits', value }],
    });
  }
  return sha;
}

/**
 * `checkout` entries for one `post-checkout` call:
 * - `flag` 0 (file checkout) → `[]`;
 * - `flag` 1 → one entry `{ entryId: "checkout:<prev>:<next>:<timestamp>", userId,
 *   action: "checkout", timestamp: now (epoch ms), metadata: { from, to, branch } }`, where
 *   `branch` is the branch checked out now, or null when HEAD is detached. A `prev` of all zeros
 *   (the first checkout after `git clone`) gives `from: null` and `initialClone: true`.
 *
 * Id: a checkout has no natural identity (the same move can happen many times), so the id is
 * `prev`, `next` and the time in milliseconds; the only duplicate it catches is the same hook
 * call fired twice within one millisecond, and it never merges two real checkouts.
 *
 * `userId` is `git config user.name`, else `user.email`, else `$USER`/`$USERNAME`, else
 * "unknown". Two git processes (run concurrently), a third only when user.name is unset.
 * Throws UsageError for a malformed sha or flag (exit 2); GitError from git.
 */
export async function entriesFromGitCheckout(
  args: GitCheckoutArgs,
  git: GitClient,
  now: number,
  env: NodeJS.ProcessEnv = {},
): Promise<RawSourceEntry[]> {
  const flag = String(args.flag ?? '').trim();
  if (flag !== '0' && flag !== '1') {
    throw new UsageError('--flag must be 0 (file checkout) or 1 (branch checkout)', {
      details: [{ path: 'flag', message: 'expected 0 or 1', value: args.flag }],
    });
  }
  const prev = checkSha('prev', args.prev);
  const next = checkSha('new', args.next);
  if (flag === '0') return [];

  const [branch, name] = await Promise.all([git.currentBranch(), git.configGet('user.name')]);
  const userId =
    nonEmpty(name) ?? nonEmpty(await git.configGet('user.email')) ?? nonEmpty(env.USER) ?? nonEmpty(env.USERNAME) ?? 'unknown';
  const initialClone = /^0+$/.test(prev);
  const metadata: Record<string, unknown> = { from: initialClone ? null : prev, to: next, branch };
  if (initialClone) metadata.initialClone = true;
  return [{ entryId: `checkout:${prev}:${next}:${now}`, userId, action: 'checkout', timestamp: now, metadata }];
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
