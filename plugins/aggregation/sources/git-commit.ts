/**
 * Source `--source=git-commit` (SPEC §4), used by the `post-commit` hook (SPEC §8): the HEAD
 * commit as one raw `commit` entry. Entries are plain objects, validated later by the shared
 * validator (`validateEntries`, plugins/aggregation/entry.ts).
 */
import type { CommitFacts, GitClient } from '../../../src/core/git.js';

/** A raw entry as produced by the git and session sources, before validation (SPEC §4). */
export interface RawSourceEntry {
  /** Stable id; duplicates are detected by it (SPEC §4). */
  entryId: string;
  userId: string;
  action: string;
  /** Epoch milliseconds (integer). */
  timestamp: number;
  metadata: Record<string, unknown>;
}

/**
 * The `commit` entry for one commit (SPEC §4):
 * `{ entryId: "commit:<sha>", userId: author, action: "commit", timestamp: author time (epoch
 * ms), metadata: { sha, branch, filesChanged, insertions, deletions, parents, tz } }`.
 * `parents` lists the parent shas (none for a root, two or more for a merge: the commit graph as git has it); `tz` the author's UTC offset as git
 * prints it (`+0100`), so reports can bucket by the author's local day; `branch` is null when
 * HEAD was detached (or for imported history). The id depends on the sha only, so the hook and a
 * `git-log` import of the same commit store it once.
 */
export function commitEntry(facts: CommitFacts): RawSourceEntry {
  return {
    entryId: `commit:${facts.sha}`,
    userId: facts.author,
    action: 'commit',
    timestamp: facts.authorTime,
    metadata: {
      sha: facts.sha,
      branch: facts.branch,
      filesChanged: facts.filesChanged,
      insertions: facts.insertions,
      deletions: facts.deletions,
      parents: [...facts.parents],
      tz: facts.authorTz,
    },
  };
}

/**
 * `--source=git-commit`: HEAD → `[commitEntry(HEAD)]`, or `[]` when HEAD is unborn (a hook in a
 * repository without commits must not fail, SPEC §8). One git process (`GitClient.headCommit`).
 * Throws GitError when git cannot answer (not a repository).
 */
export async function entriesFromGitCommit(git: GitClient): Promise<RawSourceEntry[]> {
  const head = await git.headCommit();
  return head ? [commitEntry(head)] : [];
}
