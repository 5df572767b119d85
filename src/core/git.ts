/**
 * The git port: the only module that spawns git, always through simple-git (loaded lazily so
 * actions that need no git fact never pay for it). The implementation is src/core/git-client.ts.
 */

/** Facts about one commit, as used for `commit` entries (SPEC §4). */
export interface CommitFacts {
  /** 40-hex commit id. */
  sha: string;
  /** Parent ids (0, 1 or 2+). */
  parents: string[];
  /** Author name (or e-mail when the name is empty). */
  author: string;
  authorEmail: string;
  /** Author time, epoch milliseconds. */
  authorTime: number;
  /** Author UTC offset as git prints it, e.g. "+0100". */
  authorTz: string;
  /** Checked-out branch when this is HEAD on a branch, else null (detached). */
  branch: string | null;
  /** numstat against the first parent; 0 for merges. */
  filesChanged: number;
  insertions: number;
  deletions: number;
}

export interface GitClient {
  /** Absolute work-tree top level; throws GitError outside a repository. */
  topLevel(): Promise<string>;
  /** The HEAD commit; undefined when HEAD is unborn (no commit yet). */
  headCommit(): Promise<CommitFacts | undefined>;
  /** Current branch name, or null when HEAD is detached. */
  currentBranch(): Promise<string | null>;
  /** Every commit reachable from all refs (or HEAD), oldest first, optional author-date bounds. */
  log(options: { since?: string; until?: string; all?: boolean }): Promise<CommitFacts[]>;
  /** The hooks directory git uses (`git rev-parse --git-path hooks`, honours core.hooksPath), absolute. */
  hooksDir(): Promise<string>;
  /** `git config --get key`, or undefined. */
  configGet(key: string): Promise<string | undefined>;
}
