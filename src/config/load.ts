/**
 * Config loading (SPEC §9): cosmiconfig 9 finds the config in the project root, valibot's
 * {@link ConfigSchema} validates it, and every problem becomes a {@link ConfigError} — never a
 * silent fallback to defaults.
 *
 * Forms, looked for in the project root only, first found wins: `flowforge.config.ts`,
 * `.mjs`, `.js`, `.cjs`, `.json`, then `package.json#flowforge`. `--config=FILE` loads that
 * file instead (any of these extensions, or a `package.json`).
 *
 * `.ts` configs go through a content-addressed cache instead of cosmiconfig's own `.ts` loader,
 * which imports the TypeScript compiler on every run (~900 ms a process, DEPENDENCIES.md) and
 * writes a temp file beside the config. Ours transpiles only on a cache miss, into
 * `<cacheDir>/config-<hash>.mjs`, and afterwards costs one hash and one `import()`.
 *
 * Module state (the result cache) lives here and is reset by {@link clearConfigCache}
 * (STYLE §8). Note that Node never re-evaluates an ES module URL it has imported: within one
 * process, editing a `.mjs`/`.js` config is not seen again; `.ts` configs are, because a new
 * content gets a new cache file name.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as v from 'valibot';
import { importModule } from '../core/dynamic-import.js';
import { ConfigError, type ErrorDetail } from '../core/errors.js';
import { ConfigSchema, type ResolvedConfig } from './schema.js';
import { CONFIG_FILE_NAMES } from './paths.js';

/** User-facing strings of config loading (STYLE §4). */
export const CONFIG_MESSAGES = {
  invalid: (file: string, n: number) => `Invalid config in ${file}: ${n} ${n === 1 ? 'problem' : 'problems'}`,
  notFound: (file: string) => `Config file not found: ${file}`,
  loadFailed: (file: string, reason: string) => `Could not load config ${file}: ${reason}`,
  notObject: 'the config must export an object (export default defineConfig({...}))',
  unknownKey: (key: string, allowed: readonly string[]) => `unknown key "${key}" (expected one of: ${allowed.join(', ')})`,
  transpile: (file: string, reason: string) => `Could not compile ${file}: ${reason}`,
} as const;

/** Bumped when the transpiled output changes shape, so old cache files are not reused. */
const CACHE_FORMAT = 'flowforge-config-cache-v1';

/** Result of {@link loadConfig}. */
export interface LoadedConfig {
  /** Validated config with every default filled in. */
  config: ResolvedConfig;
  /** Absolute path of the file the config came from; absent when defaults were used. */
  file?: string;
}

// ---- module state (STYLE §8) ----------------------------------------------------------------
const resultCache = new Map<string, Promise<LoadedConfig>>();
let transpileCount = 0;

/** Forgets every loaded config, so the next {@link loadConfig} reads the files again. */
export function clearConfigCache(): void {
  resultCache.clear();
}

/** How many `.ts` configs this process transpiled (cache misses); for tests and diagnostics. */
export function configTranspileCount(): number {
  return transpileCount;
}

/**
 * Path of the cached, transpiled module for a `.ts` config: `<cacheDir>/config-<hash>.mjs`,
 * `hash` = first 32 hex digits of sha256 over the cache format version, the config's absolute
 * path and its content. The path is part of the key because relative and package imports are
 * resolved to absolute URLs from the config's folder: the same text elsewhere compiles to a
 * different module.
 */
export function tsConfigCacheFile(cacheDir: string, configFile: string, content: string): string {
  const hash = createHash('sha256')
    .update(`${CACHE_FORMAT}\0${path.resolve(configFile)}\0`)
    .update(content)
    .digest('hex')
    .slice(0, 32);
  return path.join(cacheDir, `config-${hash}.mjs`);
}

/**
 * Loads and validates the config (SPEC §9).
 *
 * @param opts.projectRoot folder searched (only this folder, not its ancestors: the project root
 *   already is the nearest folder with a config, see `findProjectRoot`)
 * @param opts.explicitFile `--config=FILE`, resolved against `opts.cwd` (default `process.cwd()`)
 * @param opts.cacheDir folder of transpiled `.ts` configs (created 0700, files 0600), e.g.
 *   `resolveConfigCacheDir(...)`
 * @returns the validated config with defaults, and the absolute file it came from; no config
 *   found → defaults and no `file`. Results are cached per (projectRoot, explicitFile,
 *   cacheDir) until {@link clearConfigCache}.
 * @throws ConfigError (exit 2) when the explicit file is missing, a file cannot be loaded or
 *   compiled (message names the file, `cause` is the original error), or validation fails:
 *   `details` has one `{path, message, value}` per issue, `path` a dotted key path such as
 *   `recovery.batchRetryLimit`, message saying what was expected.
 */
export function loadConfig(opts: { projectRoot: string; explicitFile?: string | undefined; cacheDir: string; cwd?: string }): Promise<LoadedConfig> {
  const explicit = opts.explicitFile ? path.resolve(opts.cwd ?? process.cwd(), opts.explicitFile) : undefined;
  const projectRoot = path.resolve(opts.projectRoot);
  const cacheDir = path.resolve(opts.cacheDir);
  const key = `${projectRoot}\0${explicit ?? ''}\0${cacheDir}`;
  let pending = resultCache.get(key);
  if (!pending) {
    pending = loadUncached(projectRoot, explicit, cacheDir);
    resultCache.set(key, pending);
    // A failure is not cached: the user fixes the file and the next call sees it.
    pending.catch(() => resultCache.delete(key));
  }
  return pending;
}

/** True when `dir` holds nothing cosmiconfig could load: no config file, no package.json#flowforge. */
function nothingToLoad(dir: string): boolean {
  if (CONFIG_FILE_NAMES.some((name) => fs.existsSync(path.join(dir, name)))) return false;
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    return pkg === null || typeof pkg !== 'object' || !('flowforge' in pkg);
  } catch (error) {
    // No package.json: nothing to load. An unreadable one: let cosmiconfig report it.
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

async function loadUncached(projectRoot: string, explicit: string | undefined, cacheDir: string): Promise<LoadedConfig> {
  // Most hook calls run in repositories without a config: answer those without loading
  // cosmiconfig (~12 ms of the hook path).
  if (explicit === undefined && nothingToLoad(projectRoot)) return { config: v.parse(ConfigSchema, {}) };
  const { cosmiconfig } = await import('cosmiconfig');
  const explorer = cosmiconfig('flowforge', {
    searchPlaces: [...CONFIG_FILE_NAMES, 'package.json'],
    searchStrategy: 'none',
    // Our own result cache is the one place with a reset; cosmiconfig's would be a second.
    cache: false,
    loaders: {
      '.ts': (file: string, content: string) => loadTsConfig(file, content, cacheDir),
      // JavaScript configs: the default export, as cosmiconfig's own loader does, but through
      // importModule so a process started from the startup snapshot can load them too.
      '.mjs': loadJsConfig,
      '.cjs': loadJsConfig,
      '.js': loadJsConfig,
    },
  });

  let found: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  try {
    if (explicit !== undefined) {
      if (!fs.existsSync(explicit)) throw new ConfigError(CONFIG_MESSAGES.notFound(explicit));
      found = await explorer.load(explicit);
    } else {
      found = await explorer.search(projectRoot);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const file = (error as { filepath?: string }).filepath ?? explicit ?? projectRoot;
    throw new ConfigError(CONFIG_MESSAGES.loadFailed(file, (error as Error).message), { cause: error });
  }

  if (!found) return { config: v.parse(ConfigSchema, {}) };
  const raw = found.isEmpty || found.config === undefined ? {} : found.config;
  return { config: validateConfig(raw, found.filepath), file: found.filepath };
}

/**
 * Validates a config object with {@link ConfigSchema}.
 *
 * @throws ConfigError naming `file`, one detail per valibot issue: `{path: "recovery.batchRetryLimit",
 *   message: "... (expected >=1, received 0)", value: 0}`; unknown keys list the allowed ones.
 */
export function validateConfig(raw: unknown, file: string): ResolvedConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(CONFIG_MESSAGES.invalid(file, 1), {
      details: [{ path: '', message: CONFIG_MESSAGES.notObject, value: describe(raw) }],
    });
  }
  const result = v.safeParse(ConfigSchema, raw);
  if (result.success) return result.output;
  const details: ErrorDetail[] = result.issues.map((issue) => {
    const keys = issue.path?.map((p) => p.key) ?? [];
    const dotted = dottedPath(keys);
    if (issue.type === 'strict_object' && issue.expected === 'never') {
      const parent = keys.slice(0, -1);
      return { path: dotted, message: CONFIG_MESSAGES.unknownKey(String(keys[keys.length - 1]), allowedKeys(parent)), value: describe(issue.input) };
    }
    const base = issue.message.startsWith('Invalid ') ? `${dotted}: ${issue.message}` : issue.message;
    const expected = issue.expected ? ` (expected ${issue.expected}, received ${issue.received})` : '';
    return { path: dotted, message: base.includes('Expected') ? base : `${base}${expected}`, value: describe(issue.input) };
  });
  const summary = details.map((d) => `${d.path}: ${d.message}`).join('; ');
  throw new ConfigError(`${CONFIG_MESSAGES.invalid(file, details.length)}: ${summary}`, { details });
}

function dottedPath(keys: readonly unknown[]): string {
  let out = '';
  for (const key of keys) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** Keys allowed in the (strict) object at `parent` in the config schema. */
function allowedKeys(parent: readonly unknown[]): string[] {
  let schema: unknown = ConfigSchema;
  for (const key of parent) {
    const entries = (schema as { entries?: Record<string, unknown> }).entries;
    schema = entries?.[String(key)];
    while (schema && typeof schema === 'object' && 'wrapped' in schema) schema = (schema as { wrapped: unknown }).wrapped;
  }
  return Object.keys((schema as { entries?: Record<string, unknown> } | undefined)?.entries ?? {});
}

/** A value safe for JSON output: functions and symbols described, the rest as is. */
function describe(value: unknown): unknown {
  if (typeof value === 'function') return '[function]';
  if (typeof value === 'symbol' || typeof value === 'bigint') return String(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

// ---- the loaders ----------------------------------------------------------------------------

/** cosmiconfig loader for `.mjs`/`.cjs`/`.js` configs: the module's default export (`module.exports` for CommonJS). */
async function loadJsConfig(file: string): Promise<unknown> {
  const mod = await importModule<{ default?: unknown }>(pathToFileURL(fs.realpathSync(file)).href);
  return mod.default;
}

/** `file:` URL of a package this module depends on, resolved from this file (works from the startup snapshot too). */
function packageUrl(name: string): string {
  return pathToFileURL(createRequire(import.meta.url).resolve(name)).href;
}

/**
 * cosmiconfig loader for `.ts` configs: import the cached transpilation when present, else
 * transpile (TypeScript imported lazily), write the cache atomically, and import it.
 */
async function loadTsConfig(configFile: string, content: string, cacheDir: string): Promise<unknown> {
  const cacheFile = tsConfigCacheFile(cacheDir, configFile, content);
  if (!fs.existsSync(cacheFile)) {
    const js = await transpileConfig(configFile, content);
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    const { default: writeFileAtomic } = await import('write-file-atomic');
    await writeFileAtomic(cacheFile, js, { mode: 0o600 });
  }
  const mod = await importModule<{ default?: unknown; __flowforgeModuleExports?: unknown }>(pathToFileURL(cacheFile).href);
  if (mod.default !== undefined) return mod.default;
  return mod.__flowforgeModuleExports;
}

/**
 * TypeScript → an ES module that works from the cache folder: relative specifiers become
 * absolute `file:` URLs from the config's folder; bare ones are resolved as Node would from the
 * config file (`createRequire(configFile).resolve`), so `import { defineConfig } from
 * 'flowforge-aggregation'` finds the package (self-reference or node_modules); built-ins
 * (`node:path`) stay as they are.
 */
async function transpileConfig(configFile: string, content: string): Promise<string> {
  const ts = (await importModule<{ default: typeof import('typescript') }>(packageUrl('typescript'))).default;
  transpileCount++;
  const resolveSpecifier = createSpecifierResolver(configFile);
  // preProcessFile finds every import/export/import() specifier with its position in the source.
  const refs = ts.preProcessFile(content, true, true).importedFiles;
  let source = '';
  let last = 0;
  for (const ref of [...refs].sort((a, b) => a.pos - b.pos)) {
    // `pos` is the opening quote of the string literal; the text follows it.
    const at = content.indexOf(ref.fileName, ref.pos);
    if (at < last) continue;
    source += content.slice(last, at) + resolveSpecifier(ref.fileName);
    last = at + ref.fileName.length;
  }
  source += content.slice(last);

  const out = ts.transpileModule(source, {
    fileName: configFile,
    reportDiagnostics: true,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: false,
      isolatedModules: true,
      sourceMap: false,
    },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const reason = errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; ');
    throw new ConfigError(CONFIG_MESSAGES.transpile(configFile, reason));
  }
  let js = out.outputText;
  // A CommonJS-style `module.exports = {...}` in a .ts file: give it a `module` to write to.
  if (/\bmodule\.exports\b|\bexports\.[A-Za-z_$]/.test(js)) {
    js = `const module = { exports: {} }; const exports = module.exports;\n${js}\nexport const __flowforgeModuleExports = module.exports;\n`;
  }
  return `// Generated by flowforge-aggregation from ${configFile}; safe to delete.\n${js}`;
}

function createSpecifierResolver(configFile: string): (spec: string) => string {
  const base = pathToFileURL(configFile);
  let req: NodeJS.Require | undefined;
  return (spec) => {
    if (spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..') return new URL(spec, base).href;
    if (spec.startsWith('/')) return pathToFileURL(spec).href;
    if (/^[a-z][a-z0-9+.-]*:/i.test(spec) || isBuiltin(spec)) return spec;
    req ??= createRequire(configFile);
    try {
      return pathToFileURL(req.resolve(spec)).href;
    } catch {
      // An ESM-only package without a "require"/"default" export: leave it to Node, which
      // resolves from the cache folder (and reports a clear error if it is not found).
      return spec;
    }
  };
}
