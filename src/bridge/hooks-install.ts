/**
 * `provider-bridge hooks install|uninstall [--repo=DIR]` (SPEC §8): puts FlowForge's
 * `post-commit` and `post-checkout` calls into another repository's hooks, and takes them out
 * again, without disturbing hooks that were already there.
 *
 * Where the calls go:
 * - **husky** — `core.hooksPath` (as reported by `git rev-parse --git-path hooks`) is
 *   `<dir>/_` holding husky 9's `h` runner: one line is inserted into `<dir>/<hook>` (created when
 *   missing). husky 8 (`<dir>/_/husky.sh` with hooks in `<dir>` itself) is handled the same way.
 *   husky runs these files with `sh -e` and passes git's arguments through, so the line goes
 *   near the top, before the user's commands ({@link huskyInsertAt}): appended at the end, an
 *   `exit 0` or any failing command above it (`sh -e`) silently skipped it and the commit went
 *   unrecorded. It is after a shebang and husky 8's `. "…/_/husky.sh"` line, because that line
 *   re-runs the whole file under `sh -e` and exits: anything above it would run twice. Our line
 *   cannot fail or print (`|| true`, output to /dev/null), so the user's commands still run after
 *   it, with the same arguments; git gives these two hooks no stdin (githooks(5)).
 * - **git** — otherwise the hooks directory git reports (honours `core.hooksPath`; linked
 *   worktrees share the main repository's hooks): `<hook>` is written as a small script. When a
 *   hook that is not ours is already there it is renamed to `<hook>.pre-flowforge` and our script
 *   runs it first, with the same arguments and stdin, then makes our call, then exits with the
 *   chained hook's status — so the existing hook behaves exactly as before (git ignores
 *   post-commit's status; post-checkout's becomes `git checkout`'s, githooks(5)); our own call
 *   can never make the hook fail.
 *
 * Our call: `'<node>' '<cli>' aggregate --source=… --hook >/dev/null 2>&1 || true`, with absolute
 * paths to node (`process.execPath`) and to the CLI, so GUI git clients with a minimal PATH work.
 * Every line we own ends with the marker comment `# flowforge-aggregation`; installing twice
 * rewrites, never duplicates; uninstall removes exactly our lines (or our file) and renames the
 * chained hook back, restoring the original bytes and mode. Hook files are written atomically
 * (write-file-atomic) with mode 0755, since git may run a hook at any instant.
 *
 * File access here is direct `node:fs`: hooks live outside the data root and need 0755, which the
 * store's FsPort (0600 files) deliberately does not offer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { createGitClient } from '../core/git-client.js';
import { UsageError } from '../core/errors.js';

/** Marker comment ending every line this module writes into a hook. */
export const HOOK_MARKER = '# flowforge-aggregation';
/** Suffix of a pre-existing hook we chain to. */
export const CHAINED_SUFFIX = '.pre-flowforge';
/** The hooks installed (SPEC §8). */
export const HOOK_NAMES = ['post-commit', 'post-checkout'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** Arguments of {@link installHooks} / {@link uninstallHooks}. */
export interface HooksInstallOptions {
  /** Any directory inside the target repository's work tree. */
  repoDir: string;
  /** Absolute path of the node binary the hook runs (default `process.execPath`). */
  nodePath?: string;
  /** Absolute path of the CLI entry (`dist/src/bridge/cli.js`). Required for install. */
  cliPath?: string;
  /** Absolute path of the `provider-bridge` launcher (src/bridge/provider-bridge.sh); the hook runs it when given. */
  launcherPath?: string;
  /** Environment for git (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/**
 * One hook handled: `file` is absolute; `chained` when an existing git hook (now
 * `<hook>.pre-flowforge`) runs before ours. Always false through husky: there our line is the
 * first command of the user's own file and the user's commands follow it.
 */
export interface HookInstallRecord {
  hook: HookName;
  file: string;
  chained: boolean;
  via: 'husky' | 'git';
}

export interface HooksInstallResult {
  installed: HookInstallRecord[];
}

/** One hook uninstalled: `action` says what happened to `file`. */
export interface HookUninstallRecord {
  hook: HookName;
  file: string;
  via: 'husky' | 'git';
  /** `removed` our file, `restored` the chained hook, `edited` removed our lines, `absent` nothing of ours. */
  action: 'removed' | 'restored' | 'edited' | 'absent';
}

export interface HooksUninstallResult {
  removed: HookUninstallRecord[];
}

/** A string as a single-quoted POSIX sh word. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The one line of sh our hook runs for `hook`, ending with {@link HOOK_MARKER}.
 *
 * With `launcherPath` (the `provider-bridge` launcher, src/bridge/provider-bridge.sh) the hook
 * runs `FLOWFORGE_NODE=<node> /bin/sh <launcher> aggregate …` (absolute: a GUI client's PATH may lack everything): the launcher starts the startup
 * snapshot when it can, else the ESM build, and starts node without NODE_EXTRA_CA_CERTS (see
 * the launcher). Without it, `NODE_EXTRA_CA_CERTS= <node> <cli> aggregate …`.
 */
export function hookCommand(hook: HookName, nodePath: string, cliPath: string, launcherPath?: string): string {
  const args =
    hook === 'post-commit'
      ? 'aggregate --source=git-commit --hook'
      : 'aggregate --source=git-checkout --prev="$1" --new="$2" --flag="$3" --hook';
  // The variables apply to this command only, not to the rest of a chained or husky hook.
  const run = launcherPath === undefined ? `NODE_EXTRA_CA_CERTS= ${shQuote(nodePath)} ${shQuote(cliPath)}` : `FLOWFORGE_NODE=${shQuote(nodePath)} /bin/sh ${shQuote(launcherPath)}`;
  return `${run} ${args} >/dev/null 2>&1 || true ${HOOK_MARKER}`;
}

function gitHookScript(hook: HookName, command: string, chained: boolean): string {
  const lines = [
    '#!/bin/sh',
    `# FlowForge Aggregation ${hook} hook; \`provider-bridge hooks uninstall\` removes it. ${HOOK_MARKER}`,
  ];
  if (chained) {
    lines.push(
      `# Runs the hook that was here before (now ${hook}${CHAINED_SUFFIX}) first, keeping its exit status. ${HOOK_MARKER}`,
      `h="$(dirname "$0")/${hook}${CHAINED_SUFFIX}"; c=0; if [ -x "$h" ]; then "$h" "$@"; c=$?; fi ${HOOK_MARKER}`,
      command,
      `exit $c ${HOOK_MARKER}`,
    );
  } else {
    lines.push(command, `exit 0 ${HOOK_MARKER}`);
  }
  return lines.join('\n') + '\n';
}

function isOurs(content: string): boolean {
  return content.startsWith('#!/bin/sh\n# FlowForge Aggregation ') && content.split('\n')[1]?.endsWith(HOOK_MARKER) === true;
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function exists(file: string): boolean {
  return fs.existsSync(file);
}

function writeHook(file: string, content: string, mode = 0o755): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic.sync(file, content, { mode, fsync: true });
  fs.chmodSync(file, mode); // write-file-atomic's mode is subject to the umask
}

/** Where hooks go: husky's user-hook directory, or git's hooks directory. */
interface HookTarget {
  via: 'husky' | 'git';
  dir: string;
  /** husky 8 hook files need the `husky.sh` preamble when we create them. */
  huskyVersion?: 8 | 9;
}

async function resolveTarget(repoDir: string, env: NodeJS.ProcessEnv): Promise<HookTarget> {
  const git = await createGitClient(repoDir, env);
  const hooksDir = await git.hooksDir();
  if (path.basename(hooksDir) === '_' && exists(path.join(hooksDir, 'h'))) {
    return { via: 'husky', dir: path.dirname(hooksDir), huskyVersion: 9 };
  }
  if (exists(path.join(hooksDir, '_', 'husky.sh')) && !exists(path.join(hooksDir, '_', 'h'))) {
    return { via: 'husky', dir: hooksDir, huskyVersion: 8 };
  }
  return { via: 'git', dir: hooksDir };
}

/** What husky 8's `husky add` starts a hook file with; we write it when we create a husky 8 hook. */
const HUSKY8_PREAMBLE = `#!/usr/bin/env sh\n. "$(dirname -- "$0")/_/husky.sh"\n\n`;

/** Marker variant meaning "the file had no final newline before we added our line after its last line". */
const MARKER_ADDED_NEWLINE = `${HOOK_MARKER} (newline added)`;

/** A line that sources husky 8's runner (`. "$(dirname -- "$0")/_/husky.sh"`, any quoting). */
const HUSKY_SH_LINE = /^\s*\.\s+.*husky\.sh["']?\s*$/;

/**
 * Where our line goes in a husky hook file (without our lines): the index of the first line after
 * the file's header, 0 when it has none. The header is the leading run of a shebang (first line),
 * husky 8 `husky.sh` source lines, comments and blank lines, up to and including its last
 * shebang or `husky.sh` line — comments that follow stay with the commands below them.
 * `lines` is the file split on `\n`.
 */
export function huskyInsertAt(lines: readonly string[]): number {
  let at = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if ((i === 0 && line.startsWith('#!')) || HUSKY_SH_LINE.test(line)) at = i + 1;
    else if (!(line.trim() === '' || line.trimStart().startsWith('#'))) break;
  }
  return at;
}

/**
 * `base` (a husky hook file without our lines, possibly empty) with `command` inserted as its own
 * line at {@link huskyInsertAt}. When the header is the whole file and lacks a final newline, one
 * is added and the line carries {@link MARKER_ADDED_NEWLINE} so that uninstall takes it out again.
 */
function withHuskyLine(base: string, command: string): string {
  const lines = base.split('\n');
  const at = huskyInsertAt(lines);
  if (at < lines.length) return [...lines.slice(0, at), command, ...lines.slice(at)].join('\n');
  // The header ends the file without a final newline ("#!/bin/sh"): nothing to insert before.
  return `${base}\n${command.slice(0, -HOOK_MARKER.length)}${MARKER_ADDED_NEWLINE}\n`;
}

function stripOurLines(content: string): string {
  const lines = content.split('\n');
  let addedNewline = false;
  const kept = lines.filter((line) => {
    if (line.endsWith(MARKER_ADDED_NEWLINE)) addedNewline = true;
    return !line.endsWith(HOOK_MARKER) && !line.endsWith(MARKER_ADDED_NEWLINE);
  });
  let out = kept.join('\n');
  if (addedNewline && out.endsWith('\n')) out = out.slice(0, -1);
  return out;
}

/**
 * Installs `post-commit` and `post-checkout` into the repository containing `repoDir` (see the
 * module comment for husky vs. git and chaining). Idempotent. Returns one record per hook.
 * Throws UsageError when `cliPath` is missing or relative, or when a foreign hook and a
 * `<hook>.pre-flowforge` both exist (chaining would overwrite one of them); GitError outside a
 * repository; Node errors (EACCES…) from the file system.
 */
export async function installHooks(options: HooksInstallOptions): Promise<HooksInstallResult> {
  const nodePath = options.nodePath ?? process.execPath;
  const cliPath = options.cliPath;
  if (!cliPath || !path.isAbsolute(cliPath) || !path.isAbsolute(nodePath)) {
    throw new UsageError('hooks install needs absolute paths to node and to the CLI script', {
      details: [{ path: 'cliPath', message: 'expected an absolute path', value: cliPath }],
    });
  }
  const target = await resolveTarget(options.repoDir, options.env ?? process.env);
  const installed: HookInstallRecord[] = [];
  for (const hook of HOOK_NAMES) {
    const file = path.join(target.dir, hook);
    const command = hookCommand(hook, nodePath, cliPath, options.launcherPath);
    const current = readIfExists(file);
    if (target.via === 'husky') {
      // Our lines come out wherever they are and one goes back in at the top: re-installing
      // moves a line an earlier version appended at the end (where an `exit 0` above it could
      // skip it), and never duplicates it.
      let base = current === undefined ? '' : stripOurLines(current);
      if (base === '' && target.huskyVersion === 8) base = HUSKY8_PREAMBLE;
      const content = withHuskyLine(base, command);
      const mode = current === undefined ? 0o755 : fs.statSync(file).mode & 0o7777;
      if (current !== content) writeHook(file, content, mode);
      installed.push({ hook, file, chained: false, via: 'husky' });
      continue;
    }
    const chainedFile = file + CHAINED_SUFFIX;
    let chained: boolean;
    if (current === undefined) {
      chained = exists(chainedFile);
    } else if (isOurs(current)) {
      chained = exists(chainedFile);
    } else {
      if (exists(chainedFile)) {
        throw new UsageError(`Both ${file} and ${chainedFile} exist; move one of them away, then install again`, {
          details: [{ path: chainedFile, message: 'would be overwritten' }],
        });
      }
      fs.renameSync(file, chainedFile);
      chained = true;
    }
    const script = gitHookScript(hook, command, chained);
    if (current !== script) writeHook(file, script);
    installed.push({ hook, file, chained, via: 'git' });
  }
  return { installed };
}

/**
 * Reverses {@link installHooks}: removes our lines from husky hook files (deleting a file that
 * then holds nothing but what we created), deletes our git hook script and renames
 * `<hook>.pre-flowforge` back to `<hook>`. Hooks that are not ours are left alone (`absent`).
 * Throws GitError outside a repository; Node errors from the file system.
 */
export async function uninstallHooks(options: HooksInstallOptions): Promise<HooksUninstallResult> {
  const target = await resolveTarget(options.repoDir, options.env ?? process.env);
  const removed: HookUninstallRecord[] = [];
  for (const hook of HOOK_NAMES) {
    const file = path.join(target.dir, hook);
    const current = readIfExists(file);
    if (target.via === 'husky') {
      if (current === undefined || !current.split('\n').some((l) => l.endsWith(HOOK_MARKER) || l.endsWith(MARKER_ADDED_NEWLINE))) {
        removed.push({ hook, file, via: 'husky', action: 'absent' });
        continue;
      }
      const rest = stripOurLines(current);
      if (rest.trim() === '' || rest === HUSKY8_PREAMBLE) {
        fs.unlinkSync(file);
        removed.push({ hook, file, via: 'husky', action: 'removed' });
      } else {
        writeHook(file, rest, fs.statSync(file).mode & 0o7777);
        removed.push({ hook, file, via: 'husky', action: 'edited' });
      }
      continue;
    }
    const chainedFile = file + CHAINED_SUFFIX;
    if (current === undefined || !isOurs(current)) {
      removed.push({ hook, file, via: 'git', action: 'absent' });
      continue;
    }
    if (exists(chainedFile)) {
      fs.renameSync(chainedFile, file);
      removed.push({ hook, file, via: 'git', action: 'restored' });
    } else {
      fs.unlinkSync(file);
      removed.push({ hook, file, via: 'git', action: 'removed' });
    }
  }
  return { removed };
}
