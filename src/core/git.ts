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

/** Options of {@link GitClient.run}. */
export interface GitRunOptions {
  /** Bytes written to git's standard input, which is then closed (`mktree`, `hash-object --stdin`…); not empty. */
  input?: string | Buffer;
  /**
   * Extra environment for this call only (e.g. `GIT_AUTHOR_NAME` for `commit-tree`). `GIT_*`
   * keys named here pass simple-git's environment guard for this call; nothing else changes.
   */
  env?: Record<string, string>;
  /**
   * A call that talks to a remote (`fetch`, `push`, `ls-remote`): git never prompts on the
   * terminal (`GIT_TERMINAL_PROMPT=0`), the user's `GIT_SSH_COMMAND`/`GIT_SSH` are passed
   * through (simple-git strips them otherwise), and git is stopped when it prints nothing for
   * `timeoutMs` (default 120 000 ms).
   */
  network?: boolean;
  /** Stop git when it has printed nothing for this long, milliseconds (network calls). */
  timeoutMs?: number;
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
  /**
   * Runs `git <args>` in the repository (plumbing such as `hash-object`, `mktree`,
   * `commit-tree`, `update-ref`, `fetch`, `push`) and resolves its stdout as UTF-8 text.
   * Throws GitError with git's first message line when git exits non-zero and printed to
   * stderr (git commands that fail silently resolve with their stdout, as simple-git does).
   */
  run(args: string[], options?: GitRunOptions): Promise<string>;
  /**
   * The contents of objects by full id, read with one `git cat-file --batch` (bytes exactly as
   * stored). An id git does not have is absent from the map. Throws GitError when git fails or
   * prints something that is not cat-file's batch format.
   */
  readObjects(ids: readonly string[]): Promise<Map<string, { type: string; data: Buffer }>>;
}
