import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigError } from '../../src/core/errors.js';
import { clearConfigCache, configTranspileCount, loadConfig, tsConfigCacheFile } from '../../src/config/load.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (dist/test/unit → ../../..). */
const repoRoot = path.resolve(here, '../../..');
const loadModuleUrl = pathToFileURL(path.join(repoRoot, 'dist/src/config/load.js')).href;

const DEFAULTS = {
  batchSize: 50,
  maxAge: 30_000,
  flushThreshold: 0.9,
  atomicOperations: true,
  performance: { targetTime: 500, maxTime: 1000 },
  recovery: { scheduleInterval: 300_000, batchRetryLimit: 5, healthCheckInterval: 60_000, cleanupAge: 604_800_000 },
  maxClockSkew: 300_000,
  privacy: { anonymizeUsers: false, redactKeys: ['token', 'password', 'secret', 'apiKey', 'authorization', 'cookie'] },
  rateLimit: { entriesPerMinute: 0 },
};

function tempProject(t: import('ava').ExecutionContext, files: Record<string, string> = {}): { root: string; cacheDir: string } {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ff-config-')));
  if (root.startsWith(repoRoot)) throw new Error('refusing to run in the project folder');
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
  return { root, cacheDir: path.join(root, '.flowforge/cache') };
}

test.beforeEach(() => clearConfigCache());

test('no config: defaults, no file', async (t) => {
  const { root, cacheDir } = tempProject(t);
  const result = await loadConfig({ projectRoot: root, cacheDir });
  t.deepEqual(result, { config: DEFAULTS });
});

test('.json config: values merged over defaults, file reported', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.json': JSON.stringify({ batchSize: 10, recovery: { batchRetryLimit: 2 } }) });
  const { config, file } = await loadConfig({ projectRoot: root, cacheDir });
  t.is(file, path.join(root, 'flowforge.config.json'));
  t.deepEqual(config, { ...DEFAULTS, batchSize: 10, recovery: { ...DEFAULTS.recovery, batchRetryLimit: 2 } });
});

test('unknown key: ConfigError naming the key path, the file and the allowed keys', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.json': JSON.stringify({ batchSzie: 10, privacy: { redactkeys: [] } }) });
  const error = await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir }), { instanceOf: ConfigError });
  const file = path.join(root, 'flowforge.config.json');
  t.is(error!.code, 'E_CONFIG');
  t.is(error!.exitCode, 2);
  t.true(error!.message.startsWith(`Invalid config in ${file}: 2 problems: `));
  t.deepEqual(
    (error as ConfigError).details.map((d) => d.path),
    ['privacy.redactkeys', 'batchSzie'],
  );
  t.regex((error as ConfigError).details[1]!.message, /^unknown key "batchSzie" \(expected one of: batchSize, maxAge, flushThreshold, dataPath/);
  t.is((error as ConfigError).details[0]!.message, 'unknown key "redactkeys" (expected one of: anonymizeUsers, redactKeys)');
});

test('bad nested value: path recovery.batchRetryLimit, the value and what was expected', async (t) => {
  const { root, cacheDir } = tempProject(t, {
    'flowforge.config.json': JSON.stringify({ recovery: { batchRetryLimit: 0 }, flushThreshold: 2, privacy: { redactKeys: ['ok', 5] } }),
  });
  const error = (await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir }), { instanceOf: ConfigError })) as ConfigError;
  t.deepEqual(error.details, [
    { path: 'flushThreshold', message: 'flushThreshold must be at most 1 (expected <=1, received 2)', value: 2 },
    { path: 'recovery.batchRetryLimit', message: 'recovery.batchRetryLimit must be at least 1 (expected >=1, received 0)', value: 0 },
    { path: 'privacy.redactKeys[1]', message: 'privacy.redactKeys[1]: Invalid type: Expected string but received 5', value: 5 },
  ]);
  t.true(error.message.includes('recovery.batchRetryLimit: recovery.batchRetryLimit must be at least 1'));
});

test('a config that is not an object is an error, not defaults', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.json': '[1]' });
  const error = (await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir }), { instanceOf: ConfigError })) as ConfigError;
  t.is(error.details[0]!.message, 'the config must export an object (export default defineConfig({...}))');
});

test('a JSON syntax error names the file', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.json': '{"batchSize": ' });
  const error = await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir }), { instanceOf: ConfigError });
  t.true(error!.message.startsWith(`Could not load config ${path.join(root, 'flowforge.config.json')}: `));
});

test('.mjs config with an onAlert function', async (t) => {
  const { root, cacheDir } = tempProject(t, {
    'flowforge.config.mjs': 'export default { maxAge: 1234, onAlert: (a) => a.type };\n',
  });
  const { config, file } = await loadConfig({ projectRoot: root, cacheDir });
  t.is(file, path.join(root, 'flowforge.config.mjs'));
  t.is(config.maxAge, 1234);
  t.is(config.onAlert?.({ type: 'x', severity: 'info', message: '', timestamp: 0 }), 'x');
});

test('package.json#flowforge', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'package.json': JSON.stringify({ name: 'p', flowforge: { batchSize: 7 } }) });
  const { config, file } = await loadConfig({ projectRoot: root, cacheDir });
  t.is(file, path.join(root, 'package.json'));
  t.is(config.batchSize, 7);
});

test('a package.json without the flowforge key is not a config', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'package.json': JSON.stringify({ name: 'p' }) });
  t.deepEqual(await loadConfig({ projectRoot: root, cacheDir }), { config: DEFAULTS });
});

test('only the project root is searched, not its parent', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.json': '{"batchSize": 3}', 'sub/.keep': '' });
  t.deepEqual(await loadConfig({ projectRoot: path.join(root, 'sub'), cacheDir }), { config: DEFAULTS });
});

test('explicit --config file wins; a missing one is an error', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.json': '{"batchSize": 3}', 'other.json': '{"batchSize": 4}' });
  const { config, file } = await loadConfig({ projectRoot: root, cacheDir, explicitFile: 'other.json', cwd: root });
  t.is(config.batchSize, 4);
  t.is(file, path.join(root, 'other.json'));
  const error = await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir, explicitFile: path.join(root, 'nope.json') }), { instanceOf: ConfigError });
  t.is(error!.message, `Config file not found: ${path.join(root, 'nope.json')}`);
});

test.serial('.ts config: transpiled once into <cacheDir>/config-<hash>.mjs (0600 in 0700), relative imports work', async (t) => {
  const source = [
    "import { base } from './shared.mjs';",
    "import type { Alert } from './types.js';",
    'const size: number = base * 2;',
    'export default { batchSize: size, flushThreshold: 0.5 as number };',
    '',
  ].join('\n');
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.ts': source, 'shared.mjs': 'export const base = 21;\n' });
  const before = configTranspileCount();
  const { config, file } = await loadConfig({ projectRoot: root, cacheDir });
  t.is(file, path.join(root, 'flowforge.config.ts'));
  t.is(config.batchSize, 42);
  t.is(config.flushThreshold, 0.5);
  t.is(configTranspileCount(), before + 1);

  const cacheFile = tsConfigCacheFile(cacheDir, path.join(root, 'flowforge.config.ts'), source);
  t.regex(path.basename(cacheFile), /^config-[0-9a-f]{32}\.mjs$/);
  t.deepEqual(fs.readdirSync(cacheDir), [path.basename(cacheFile)]);
  t.is(fs.statSync(cacheFile).mode & 0o777, 0o600);
  t.is(fs.statSync(cacheDir).mode & 0o777, 0o700);
  t.true(fs.readFileSync(cacheFile, 'utf8').includes(pathToFileURL(path.join(root, 'shared.mjs')).href));
  // nothing written beside the config (cosmiconfig's own .ts loader would leave a temp file)
  t.deepEqual(fs.readdirSync(root).sort(), ['.flowforge', 'flowforge.config.ts', 'shared.mjs']);

  // second load, cache present: no transpile
  clearConfigCache();
  const again = await loadConfig({ projectRoot: root, cacheDir });
  t.is(again.config.batchSize, 42);
  t.is(configTranspileCount(), before + 1);
});

test.serial('.ts cache hit: the cached module is what gets loaded (no TypeScript involved)', async (t) => {
  const source = 'export default { batchSize: 5 };\n';
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.ts': source });
  const cacheFile = tsConfigCacheFile(cacheDir, path.join(root, 'flowforge.config.ts'), source);
  fs.mkdirSync(cacheDir, { recursive: true });
  fs.writeFileSync(cacheFile, 'export default { batchSize: 77 };\n');
  const before = configTranspileCount();
  const { config } = await loadConfig({ projectRoot: root, cacheDir });
  t.is(config.batchSize, 77);
  t.is(configTranspileCount(), before);
});

test('.ts config edited: new content, new cache file, new value', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.ts': 'export default { batchSize: 5 };\n' });
  t.is((await loadConfig({ projectRoot: root, cacheDir })).config.batchSize, 5);
  fs.writeFileSync(path.join(root, 'flowforge.config.ts'), 'export default { batchSize: 6 };\n');
  clearConfigCache();
  t.is((await loadConfig({ projectRoot: root, cacheDir })).config.batchSize, 6);
  t.is(fs.readdirSync(cacheDir).length, 2);
});

test('.ts config with a syntax error: ConfigError naming the file', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.ts': 'export default { batchSize: 5 ;\n' });
  const error = await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir }), { instanceOf: ConfigError });
  t.true(error!.message.startsWith(`Could not compile ${path.join(root, 'flowforge.config.ts')}: `));
});

test('.ts config validated like any other: unknown key is an error', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.ts': 'export default { batchsize: 5 };\n' });
  const error = (await t.throwsAsync(loadConfig({ projectRoot: root, cacheDir }), { instanceOf: ConfigError })) as ConfigError;
  t.deepEqual(error.details.map((d) => d.path), ['batchsize']);
});

test("the repository's own flowforge.config.ts loads through the cache (defineConfig self-reference)", async (t) => {
  const { cacheDir } = tempProject(t);
  const { config, file } = await loadConfig({ projectRoot: repoRoot, cacheDir });
  t.is(file, path.join(repoRoot, 'flowforge.config.ts'));
  t.is(config.batchSize, 50);
  t.is(config.maxAge, 30_000);
  t.is(config.flushThreshold, 0.9);
  const cached = fs.readdirSync(cacheDir);
  t.is(cached.length, 1);
  t.true(fs.readFileSync(path.join(cacheDir, cached[0]!), 'utf8').includes(pathToFileURL(path.join(repoRoot, 'dist/src/index.js')).href));
});

test('a fresh process with a warm cache never loads the TypeScript compiler; a cold one does', async (t) => {
  const { root, cacheDir } = tempProject(t, { 'flowforge.config.ts': 'const n: number = 9;\nexport default { batchSize: n };\n' });
  const script = `
    import(${JSON.stringify(loadModuleUrl)}).then(async (m) => {
      const { config } = await m.loadConfig({ projectRoot: ${JSON.stringify(root)}, cacheDir: ${JSON.stringify(cacheDir)} });
      const ts = Object.keys(require.cache).some((k) => k.includes(${JSON.stringify(`${path.sep}typescript${path.sep}`)}));
      console.log(JSON.stringify({ batchSize: config.batchSize, ts }));
    });`;
  const run = () => JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' })) as unknown;
  t.deepEqual(run(), { batchSize: 9, ts: true });
  t.deepEqual(run(), { batchSize: 9, ts: false });
});
