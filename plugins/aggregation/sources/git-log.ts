/**
 * Source `--source=git-log [--repo=DIR] [--since=DATE] [--until=DATE]` (SPEC §4): imports an
 * existing history as `commit` entries with the same mapping and ids as `git-commit`, so an
 * import plus the hooks never double count.
 */
import type { GitClient } from '../../../src/core/git.js';
import { commitEntry, type RawSourceEntry } from './git-commit.js';

/** Options of {@link entriesFromGitLog}: date bounds in any form `git log --since` accepts. */
export interface GitLogSourceOptions {
  /** Lower bound on the author date (inclusive), e.g. `2024-01-01` or `2 weeks ago`. */
  since?: string;
  /** Upper bound on the author date (inclusive). */
  until?: string;
}

/**
 * One `commit` entry per commit reachable from any ref (except `refs/stash` and `refs/notes/*`),
 * parents before children. `since`/`until` are parsed by git (`git rev-parse --since`) and
 * compared with the **author** date, i.e. with the entry's timestamp — unlike `git log --since`,
 * which uses the committer date.
 *
 * `metadata.branch` is always null here: git does not record on which branch a commit was made,
 * and a branch tip today says nothing about the branch at commit time. The hook, which runs at
 * commit time, records the branch; since both produce the id `commit:<sha>`, whichever arrives
 * first is kept. One `git log` process for the whole history. Throws GitError from git.
 */
export async function entriesFromGitLog(git: GitClient, options: GitLogSourceOptions = {}): Promise<RawSourceEntry[]> {
  const commits = await git.log({ ...options, all: true });
  return commits.map((facts) => commitEntry({ ...facts, branch: null }));
}
