import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findGitTopLevel, findProjectRoot, resolveConfigCacheDir, resolveDataRoot } from '../../src/config/paths.js';

/** A fresh temp folder (realpath: macOS /tmp is a symlink), removed after the test. */
function tempDir(t: import('ava').ExecutionContext): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ff-paths-')));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function make(root: string, files: Record<string, string | null>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    if (content === null) fs.mkdirSync(p, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
  }
}

test('a config in an ancestor within the repository is found, with its file', (t) => {
  const root = tempDir(t);
  make(root, { 'repo/.git': null, 'repo/flowforge.config.json': '{}', 'repo/a/b': null });
  const home = path.join(root, 'home');
  t.deepEqual(findProjectRoot(path.join(root, 'repo/a/b'), { HOME: home }), {
    projectRoot: path.join(root, 'repo'),
    configFile: path.join(root, 'repo/flowforge.config.json'),
  });
});

test('config file priority in one folder: .ts before .mjs before .json', (t) => {
  const root = tempDir(t);
  make(root, { '.git': null, 'flowforge.config.json': '{}', 'flowforge.config.mjs': '', 'flowforge.config.ts': '' });
  t.is(findProjectRoot(root, {}).configFile, path.join(root, 'flowforge.config.ts'));
});

test('a stray config above the git top level is NOT picked: fallback is the top level', (t) => {
  const root = tempDir(t);
  make(root, { 'flowforge.config.ts': 'export default {}', '.flowforge': null, 'repo/.git': null, 'repo/src/deep': null });
  t.deepEqual(findProjectRoot(path.join(root, 'repo/src/deep'), { HOME: root }), { projectRoot: path.join(root, 'repo') });
});

test('.git as a file (linked worktree / submodule) stops the search', (t) => {
  const root = tempDir(t);
  make(root, {
    'outer/.git': null,
    'outer/flowforge.config.json': '{}',
    'outer/wt/.git': 'gitdir: ../.git/worktrees/wt\n',
    'outer/wt/src': null,
  });
  t.is(findGitTopLevel(path.join(root, 'outer/wt/src'), {}), path.join(root, 'outer/wt'));
  t.deepEqual(findProjectRoot(path.join(root, 'outer/wt/src'), {}), { projectRoot: path.join(root, 'outer/wt') });
});

test('GIT_WORK_TREE is the top level when it contains cwd', (t) => {
  const root = tempDir(t);
  make(root, { 'flowforge.config.json': '{}', 'wt/src': null });
  const env = { GIT_WORK_TREE: path.join(root, 'wt'), HOME: root };
  t.is(findGitTopLevel(path.join(root, 'wt/src'), env), path.join(root, 'wt'));
  t.deepEqual(findProjectRoot(path.join(root, 'wt/src'), env), { projectRoot: path.join(root, 'wt') });
});

test('a .flowforge/ directory marks the project root (nearest wins); a .flowforge file does not', (t) => {
  const root = tempDir(t);
  make(root, { '.git': null, 'flowforge.config.json': '{}', 'pkg/.flowforge': null, 'pkg/x': null, 'other/.flowforge': 'file', 'other/y': null });
  t.deepEqual(findProjectRoot(path.join(root, 'pkg/x'), {}), { projectRoot: path.join(root, 'pkg') });
  t.deepEqual(findProjectRoot(path.join(root, 'other/y'), {}), {
    projectRoot: root,
    configFile: path.join(root, 'flowforge.config.json'),
  });
});

test('package.json with a flowforge key marks the project root; without the key it does not', (t) => {
  const root = tempDir(t);
  make(root, {
    '.git': null,
    'a/package.json': JSON.stringify({ name: 'a', flowforge: { batchSize: 10 } }),
    'a/src': null,
    'b/package.json': JSON.stringify({ name: 'b' }),
    'b/src': null,
  });
  t.deepEqual(findProjectRoot(path.join(root, 'a/src'), {}), { projectRoot: path.join(root, 'a') });
  t.deepEqual(findProjectRoot(path.join(root, 'b/src'), {}), { projectRoot: root });
});

test('outside a repository the search stops at HOME (inclusive)', (t) => {
  const root = tempDir(t);
  make(root, { 'flowforge.config.json': '{}', 'home/flowforge.config.mjs': 'export default {}', 'home/a/b': null, 'home2/a/b': null });
  t.deepEqual(findProjectRoot(path.join(root, 'home/a/b'), { HOME: path.join(root, 'home') }), {
    projectRoot: path.join(root, 'home'),
    configFile: path.join(root, 'home/flowforge.config.mjs'),
  });
  // the config above HOME is never picked: fallback is cwd
  t.deepEqual(findProjectRoot(path.join(root, 'home2/a/b'), { HOME: path.join(root, 'home2') }), { projectRoot: path.join(root, 'home2/a/b') });
});

test('outside a repository and outside HOME only cwd is searched', (t) => {
  const root = tempDir(t);
  make(root, { 'flowforge.config.json': '{}', 'x/y': null, 'z/flowforge.config.json': '{}', home: null });
  const env = { HOME: path.join(root, 'home') };
  t.deepEqual(findProjectRoot(path.join(root, 'x/y'), env), { projectRoot: path.join(root, 'x/y') });
  t.deepEqual(findProjectRoot(path.join(root, 'z'), env), { projectRoot: path.join(root, 'z'), configFile: path.join(root, 'z/flowforge.config.json') });
});

test('resolveDataRoot precedence: --data-path > FLOWFORGE_DATA_PATH > config dataPath > <project>/.flowforge', (t) => {
  const cwd = '/work/proj/sub';
  const base = { cwd, projectRoot: '/work/proj', configDir: '/work/proj/cfg' };
  t.is(resolveDataRoot({ ...base, env: { FLOWFORGE_DATA_PATH: '/env/data' }, dataPathFlag: 'flag-data', configDataPath: 'cfg-data' }), '/work/proj/sub/flag-data');
  t.is(resolveDataRoot({ ...base, env: { FLOWFORGE_DATA_PATH: '../env-data/' }, configDataPath: 'cfg-data' }), '/work/proj/env-data');
  t.is(resolveDataRoot({ ...base, env: { FLOWFORGE_DATA_PATH: '' }, configDataPath: 'cfg-data' }), '/work/proj/cfg/cfg-data');
  t.is(resolveDataRoot({ ...base, env: {}, configDataPath: '/abs/data' }), '/abs/data');
  t.is(resolveDataRoot({ cwd, projectRoot: '/work/proj', env: {}, configDataPath: 'd' }), '/work/proj/d');
  t.is(resolveDataRoot({ cwd, projectRoot: '/work/proj', env: {} }), '/work/proj/.flowforge');
  t.is(resolveDataRoot({ cwd, projectRoot: '/work/proj', env: {}, dataPathFlag: '/a/b/../c/' }), '/a/c');
});

test('resolveConfigCacheDir ignores the config dataPath (the config cannot place its own cache)', (t) => {
  t.is(resolveConfigCacheDir({ cwd: '/w', projectRoot: '/w/p', env: {} }), '/w/p/.flowforge/cache');
  t.is(resolveConfigCacheDir({ cwd: '/w', projectRoot: '/w/p', env: { FLOWFORGE_DATA_PATH: 'd' } }), '/w/d/cache');
});
