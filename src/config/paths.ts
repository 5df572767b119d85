/**
 * Project root and data root resolution (SPEC §2), without spawning git: this runs on every
 * hook invocation, and a `git rev-parse` costs ~10 ms, a stat a few microseconds.
 *
 * Decisions where SPEC §2 is silent (for the README):
 * - Project-root markers: `flowforge.config.{ts,mjs,js,cjs,json}`, a `.flowforge/` directory,
 *   or a `package.json` with a `flowforge` key — exactly the config forms {@link loadConfig}
 *   reads from the project root (SPEC §9), so a folder whose config would be loaded is always
 *   a project root. A `.flowforge` *file* is not a marker.
 * - The git work-tree top level is the nearest ancestor (inclusive) with a `.git` entry, file
 *   (linked worktree, submodule) or directory, or `GIT_WORK_TREE` when set and containing the
 *   working directory (git exports it to hooks in some setups).
 * - Outside a repository the search stops at `HOME` (inclusive); when the working directory is
 *   not under `HOME`, only the working directory itself is searched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Config file names looked for in a folder, in priority order (SPEC §9). */
export const CONFIG_FILE_NAMES = [
  'flowforge.config.ts',
  'flowforge.config.mjs',
  'flowforge.config.js',
  'flowforge.config.cjs',
  'flowforge.config.json',
] as const;

/** Name of the default data-root folder under the project root (SPEC §2). */
export const DATA_DIR_NAME = '.flowforge';

/** The file-system questions {@link findProjectRoot} asks; injectable for tests. */
export interface PathProbe {
  /** `'file'`, `'dir'` (symlinks followed), or undefined when nothing is there. */
  kind(p: string): 'file' | 'dir' | undefined;
  /** Whole file as UTF-8 text, or undefined when unreadable. */
  readText(p: string): string | undefined;
}

/** The real probe over `node:fs` (synchronous stats: cheaper than promises for a handful of paths). */
export const nodePathProbe: PathProbe = {
  kind(p) {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) return undefined;
    return st.isDirectory() ? 'dir' : 'file';
  },
  readText(p) {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
};

/** Whether `child` is `parent` or inside it (both absolute, normalized). */
function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Ancestors of `dir` from itself up to the file-system root. */
function* ancestors(dir: string): Generator<string> {
  let current = dir;
  for (;;) {
    yield current;
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

function hasFlowforgeKey(pkgText: string | undefined): boolean {
  if (pkgText === undefined) return false;
  try {
    const pkg: unknown = JSON.parse(pkgText);
    return typeof pkg === 'object' && pkg !== null && !Array.isArray(pkg) && Object.hasOwn(pkg, 'flowforge');
  } catch {
    return false;
  }
}

/**
 * The git work-tree top level containing `cwd`, found without git: `GIT_WORK_TREE` when set and
 * containing `cwd`, else the nearest ancestor (inclusive) holding a `.git` file or directory;
 * undefined outside a repository.
 */
export function findGitTopLevel(cwd: string, env: NodeJS.ProcessEnv, probe: PathProbe = nodePathProbe): string | undefined {
  const start = path.resolve(cwd);
  if (env.GIT_WORK_TREE) {
    const top = path.resolve(start, env.GIT_WORK_TREE);
    if (isInside(start, top)) return top;
  }
  for (const dir of ancestors(start)) {
    if (probe.kind(path.join(dir, '.git')) !== undefined) return dir;
  }
  return undefined;
}

/**
 * Finds the project root (SPEC §2): the nearest ancestor of `cwd` (inclusive) holding a
 * `flowforge.config.{ts,mjs,js,cjs,json}`, a `.flowforge/` directory or a `package.json` with a
 * `flowforge` key, searching no higher than the git work-tree top level
 * ({@link findGitTopLevel}) — or, outside a repository, no higher than `env.HOME` (only `cwd`
 * itself when `cwd` is not under `HOME`) — so a stray folder higher up is never picked.
 * Without a marker: the git top level, else `cwd`.
 *
 * @returns absolute `projectRoot`, and `configFile` (absolute) when a config file named above
 *   sits in it (first in {@link CONFIG_FILE_NAMES} order); a package.json#flowforge root has
 *   no `configFile` (the config loader reads it). Never throws for missing paths.
 */
export function findProjectRoot(
  cwd: string,
  env: NodeJS.ProcessEnv,
  probe: PathProbe = nodePathProbe,
): { projectRoot: string; configFile?: string } {
  const start = path.resolve(cwd);
  const gitTop = findGitTopLevel(start, env, probe);
  let limit: string;
  if (gitTop !== undefined) limit = gitTop;
  else if (env.HOME && isInside(start, path.resolve(env.HOME))) limit = path.resolve(env.HOME);
  else limit = start;

  for (const dir of ancestors(start)) {
    for (const name of CONFIG_FILE_NAMES) {
      const file = path.join(dir, name);
      if (probe.kind(file) === 'file') return { projectRoot: dir, configFile: file };
    }
    if (probe.kind(path.join(dir, DATA_DIR_NAME)) === 'dir') return { projectRoot: dir };
    const pkg = path.join(dir, 'package.json');
    if (probe.kind(pkg) === 'file' && hasFlowforgeKey(probe.readText(pkg))) return { projectRoot: dir };
    if (dir === limit) break;
  }
  return { projectRoot: gitTop ?? start };
}

/**
 * Resolves the data root (SPEC §2, §3, §9). Precedence, first set wins:
 * 1. `dataPathFlag` (`--data-path=DIR`), relative to `cwd`;
 * 2. `env.FLOWFORGE_DATA_PATH` (an empty value counts as unset), relative to `cwd`;
 * 3. `configDataPath` (config `dataPath`), relative to `configDir` — the config file's folder —
 *    or to `projectRoot` when the config came from elsewhere;
 * 4. `<projectRoot>/.flowforge`.
 *
 * @returns an absolute, normalized path (no trailing separator). Does not touch the disk.
 */
export function resolveDataRoot(opts: {
  cwd: string;
  env: NodeJS.ProcessEnv;
  dataPathFlag?: string | undefined;
  configDataPath?: string | undefined;
  projectRoot: string;
  configDir?: string | undefined;
}): string {
  const cwd = path.resolve(opts.cwd);
  if (opts.dataPathFlag) return path.resolve(cwd, opts.dataPathFlag);
  const fromEnv = opts.env.FLOWFORGE_DATA_PATH;
  if (fromEnv) return path.resolve(cwd, fromEnv);
  if (opts.configDataPath) return path.resolve(path.resolve(cwd, opts.configDir ?? opts.projectRoot), opts.configDataPath);
  return path.resolve(cwd, opts.projectRoot, DATA_DIR_NAME);
}

/**
 * Folder for the transpiled-config cache of {@link loadConfig}: `<data root>/cache`, where the
 * data root is resolved without the config (flag, env, else `<projectRoot>/.flowforge`) — the
 * config cannot name the folder its own cache lives in. Absolute.
 */
export function resolveConfigCacheDir(opts: {
  cwd: string;
  env: NodeJS.ProcessEnv;
  dataPathFlag?: string | undefined;
  projectRoot: string;
}): string {
  return path.join(resolveDataRoot(opts), 'cache');
}
