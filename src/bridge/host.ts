/**
 * The provider-bridge host (SPEC §3): parses argv, finds the action in the registry, validates
 * its options with the handler's valibot schema, builds the context, runs the handler and turns
 * the result or error into exactly one JSON document on stdout (or text) and an exit code.
 * Handlers return; only the host reports (STYLE §4).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { HandlerContext, StdinSink } from '../core/context.js';
import { FlowForgeError, UsageError, type ErrorDetail } from '../core/errors.js';
import { createNodeFsPort } from '../core/fs-port.js';
import type { AnyHandler, OptionSpec } from '../core/handler.js';
import { createFileLogger, type Logger } from '../core/logger.js';
import { messages } from './messages.js';
import { createRegistry, type Registry } from './registry.js';

/** Streams and process facts the host uses; tests pass their own. */
export interface HostIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Clock, epoch ms (default Date.now). */
  now?: () => number;
}

export const GLOBAL_OPTIONS: OptionSpec = {
  'data-path': { type: 'string' },
  config: { type: 'string' },
  format: { type: 'string' },
  quiet: { type: 'boolean' },
  hook: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
};

/** Path of this package's root (three levels above dist/src/bridge/host.js). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The V8 startup snapshot `npm run build` makes for the node that ran it (absent without
 * esbuild); see src/bridge/snapshot-main.ts. Launchers start `node --snapshot-blob <this> -- …`.
 */
export const SNAPSHOT_BLOB_PATH = path.join(PACKAGE_ROOT, 'dist/snapshot/provider-bridge.blob');

export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The default registry: the aggregation plugin plus the host's own `hooks` action. */
export async function createDefaultRegistry(): Promise<Registry> {
  const registry = createRegistry();
  const { aggregationPlugin } = await import('../../plugins/aggregation/index.js');
  registry.register(aggregationPlugin);
  registry.register({
    name: 'host',
    handlers: {
      hooks: { summary: 'install or uninstall the git hooks in a repository', load: async () => (await import('./hooks-action.js')).hooksAction },
      serve: { summary: 'stay alive: recovery, health checks, age flushes until SIGINT/SIGTERM/SIGHUP', load: async () => (await import('./serve.js')).createServeAction(registry) },
    },
    hooks: [],
  });
  return registry;
}

function hostHelp(registry: Registry): string {
  const width = Math.max(...registry.actions().map((a) => a.name.length));
  return [
    `provider-bridge ${packageVersion()} — FlowForge Aggregation`,
    '',
    messages.usageLine,
    '',
    'Actions:',
    ...registry.actions().map((a) => `  ${a.name.padEnd(width)}  ${a.summary}`),
    '',
    messages.globalOptions,
    '',
    messages.exitCodes,
    '',
  ].join('\n');
}

/**
 * Splits `argv` into the action name and the rest: the action is the first argument that is
 * neither an option nor the value of a global string option given in space form before it
 * (`provider-bridge --data-path DIR serve` runs `serve`; `--data-path=DIR` needs no skipping).
 */
export function splitAction(argv: readonly string[]): { action?: string; rest: string[] } {
  let index = -1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) {
      index = i;
      break;
    }
    if (arg.startsWith('--') && GLOBAL_OPTIONS[arg.slice(2)]?.type === 'string') i++;
  }
  if (index === -1) return { rest: [...argv] };
  return { action: argv[index], rest: [...argv.slice(0, index), ...argv.slice(index + 1)] };
}

interface Output {
  /** `json`, `text`, or a format from the handler's `renderers`. */
  format: string;
  quiet: boolean;
  hook: boolean;
}

/**
 * Runs one invocation. Returns the exit code (0, 1 or 2; always 0 with --hook) — the caller
 * sets `process.exitCode`.
 */
export async function runHost(argv: string[], io: HostIo, registry?: Registry): Promise<number> {
  const startedAt = performance.now();
  const reg = registry ?? (await createDefaultRegistry());
  const out: Output = { format: 'json', quiet: false, hook: false };
  const { action, rest } = splitAction(argv);
  let logger: Logger | undefined;
  try {
    // Global flags first, leniently, so --format/--hook apply even to usage errors.
    const globals = parseArgs({ args: rest, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true }).values;
    out.hook = globals.hook === true;
    out.quiet = globals.quiet === true || out.hook;
    const format = globals.format as string | boolean | undefined;
    // Action-specific formats (csv, html, prometheus…) are checked once the handler is loaded;
    // until then errors keep the default JSON document on stdout.
    const requestedFormat = typeof format === 'string' ? format : undefined;
    if (requestedFormat === 'json' || requestedFormat === 'text') out.format = requestedFormat;
    if (requestedFormat !== undefined && requestedFormat !== 'json' && requestedFormat !== 'text' && action === undefined) {
      throw new UsageError(messages.badFormat(requestedFormat, ['json', 'text']));
    }
    if (action === undefined) {
      if (globals.version) {
        io.stdout.write(`${packageVersion()}\n`);
        return 0;
      }
      if (globals.help) {
        io.stdout.write(hostHelp(reg));
        return 0;
      }
      // stdout keeps its one JSON document; the help goes to the person, on stderr.
      if (!out.quiet) io.stderr.write(hostHelp(reg));
      throw new UsageError(messages.noAction(reg.actions().map((a) => a.name)));
    }
    const entry = reg.lookup(action);
    if (!entry) throw new UsageError(messages.unknownAction(action, reg.actions().map((a) => a.name)));
    // Slow I/O the action will need (the hook's git process) starts now and overlaps the loading.
    if (entry.warm && !globals.help) await entry.warm(rest, { cwd: io.cwd, env: io.env }).catch(() => undefined);
    const handler: AnyHandler = await entry.load();
    if (requestedFormat !== undefined && out.format !== requestedFormat) {
      const extra = Object.keys(handler.renderers ?? {});
      if (!extra.includes(requestedFormat)) throw new UsageError(messages.badFormat(requestedFormat, ['json', 'text', ...extra]));
      out.format = requestedFormat;
    }
    const options = { ...GLOBAL_OPTIONS, ...handler.options };
    if (globals.help) {
      io.stdout.write(`${handler.help}\n\n${messages.globalOptions}\n`);
      return 0;
    }
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options, strict: true, allowPositionals: handler.allowPositionals ?? false }) as typeof parsed;
    } catch (error) {
      const err = error as Error & { code?: string };
      if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
        const option = /'([^']+)'/.exec(err.message)?.[1] ?? err.message;
        throw new UsageError(messages.unknownOption(option, action, Object.keys(options)), { cause: error });
      }
      throw new UsageError(messages.badArguments(action, err.message), { cause: error });
    }
    const v = await import('valibot');
    const checked = v.safeParse(handler.input, { ...parsed.values, positionals: parsed.positionals });
    if (!checked.success) {
      const details: ErrorDetail[] = checked.issues.map((issue) => ({ path: `--${v.getDotPath(issue) ?? ''}`, message: issue.message, value: issue.input }));
      throw new UsageError(`${messages.invalidInput(action, details.length)}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, { details });
    }
    const ctx = await createContext(io, parsed.values, handler);
    logger = ctx.log;
    const result = await handler.run(checked.output, ctx);
    if (out.hook) {
      // One line per hook call, so hook cost can be read off a real history (ms, whole handler).
      logger.info('hook ok', { action, durationMs: Math.round((performance.now() - startedAt) * 100) / 100, accepted: (result as { accepted?: number })?.accepted });
    }
    if (!out.quiet) {
      if (out.format === 'json') io.stdout.write(JSON.stringify({ ok: true, action, result }) + '\n');
      else if (out.format === 'text') io.stdout.write((handler.formatText ? handler.formatText(result) : JSON.stringify(result, null, 2)) + '\n');
      else {
        const rendered = await handler.renderers![out.format]!(result);
        io.stdout.write(rendered.endsWith('\n') ? rendered : `${rendered}\n`);
      }
    }
    return 0;
  } catch (error) {
    if (out.hook && !logger) logger = await fallbackLogger(io);
    return report(error, action ?? '', out, io, logger);
  }
}


/** At most this many problems are printed; the last detail then says how many were left out. */
export const MAX_DETAILS = 1000;
/** Offending values longer than this (characters of JSON) are shortened in error output. */
export const MAX_VALUE_CHARS = 200;

/**
 * Keeps error output proportionate to a hostile input: at most MAX_DETAILS problems, and each
 * offending `value` cut to MAX_VALUE_CHARS characters of its JSON form.
 */
export function clipDetails(details: ErrorDetail[]): ErrorDetail[] {
  const clip = (value: unknown): unknown => {
    if (value === undefined) return undefined;
    let text: string;
    try {
      text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
    if (text.length <= MAX_VALUE_CHARS) return value;
    return `${text.slice(0, MAX_VALUE_CHARS)}… (${text.length} characters)`;
  };
  const kept = details.slice(0, MAX_DETAILS).map((d) => (d.value === undefined ? d : { ...d, value: clip(d.value) }));
  if (details.length > MAX_DETAILS) kept.push({ path: '', message: `${details.length - MAX_DETAILS} more problems not listed` });
  return kept;
}

/**
 * A logger for a hook call that failed before its context existed (bad config, a broken
 * install): `<project root>/.flowforge/logs/aggregation.log`, or FLOWFORGE_DATA_PATH's, so the
 * problem is still written down somewhere a person looks. Undefined when even that fails.
 */
async function fallbackLogger(io: HostIo): Promise<Logger | undefined> {
  try {
    const { findProjectRoot, resolveDataRoot } = await import('../config/paths.js');
    const { projectRoot } = findProjectRoot(io.cwd, io.env);
    const dataRoot = resolveDataRoot({ cwd: io.cwd, env: io.env, projectRoot });
    return createFileLogger(path.join(dataRoot, 'logs'), 'aggregation', io.now ?? Date.now);
  } catch {
    return undefined;
  }
}

function report(error: unknown, action: string, out: Output, io: HostIo, logger: Logger | undefined): number {
  const known = error instanceof FlowForgeError;
  const code = known ? error.code : 'E_INTERNAL';
  const message = known ? error.message : messages.internal((error as Error)?.message ?? String(error));
  const details = known ? clipDetails(error.details) : [];
  const exitCode = known ? error.exitCode : 1;
  if (out.hook) {
    // A git hook never fails or prints (SPEC §8): the problem goes to the log.
    logger?.error('hook invocation failed', { action, code, message, details });
    return 0;
  }
  if (out.format === 'json') {
    io.stdout.write(JSON.stringify({ ok: false, action, error: { code, message, details } }) + '\n');
  }
  if (!out.quiet || out.format === 'text') {
    io.stderr.write(`provider-bridge${action ? ` ${action}` : ''}: ${message}\n${details.map((d) => `  - ${d.path}${d.source ? ` (${d.source})` : ''}: ${d.message}\n`).join('')}`);
  }
  if (!known && io.env.FLOWFORGE_DEBUG) io.stderr.write(`${(error as Error)?.stack}\n`);
  return exitCode;
}

async function createContext(io: HostIo, values: Record<string, unknown>, handler: AnyHandler): Promise<HandlerContext> {
  const now = io.now ?? Date.now;
  let fsPort = createNodeFsPort();
  const crashProbability = Number(io.env.FLOWFORGE_CRASH_PROBABILITY ?? 0);
  const faultProbability = Number(io.env.FLOWFORGE_FAULT_PROBABILITY ?? 0);
  if (crashProbability > 0 || faultProbability > 0) {
    fsPort = (await import('../core/crash-injection.js')).withCrashInjection(fsPort, crashProbability, Math.random, faultProbability);
  }
  const { findProjectRoot, resolveDataRoot, resolveConfigCacheDir } = await import('../config/paths.js');
  const { projectRoot } = findProjectRoot(io.cwd, io.env);
  const dataPathFlag = values['data-path'] as string | undefined;
  let config: HandlerContext['config'];
  let configFile: string | undefined;
  if (handler.needsStore === false) {
    const { validateConfig } = await import('../config/load.js');
    config = validateConfig({}, '(defaults)');
  } else {
    const { loadConfig } = await import('../config/load.js');
    const loaded = await loadConfig({
      projectRoot,
      explicitFile: values.config as string | undefined,
      cacheDir: resolveConfigCacheDir({ cwd: io.cwd, env: io.env, dataPathFlag, projectRoot }),
      cwd: io.cwd,
    });
    config = loaded.config;
    configFile = loaded.file;
  }
  const dataRoot = resolveDataRoot({ cwd: io.cwd, env: io.env, dataPathFlag, configDataPath: config.dataPath, projectRoot, configDir: configFile ? path.dirname(configFile) : undefined });
  const logs = new Map<string, Logger>();
  const logFor = (name: string): Logger => {
    let logger = logs.get(name);
    if (!logger) logs.set(name, (logger = createFileLogger(path.join(dataRoot, 'logs'), name, now)));
    return logger;
  };
  const gitClients = new Map<string, Promise<import('../core/git.js').GitClient>>();
  return {
    now,
    cwd: io.cwd,
    env: io.env,
    projectRoot,
    dataRoot,
    config,
    configFile,
    fs: fsPort,
    log: logFor('aggregation'),
    logFor,
    git(repoDir) {
      const dir = path.resolve(io.cwd, repoDir ?? '.');
      let client = gitClients.get(dir);
      if (!client) {
        client = import('../core/git-client.js').then((m) => m.takeWarmClient(dir) ?? m.createGitClient(dir, io.env, { cwd: io.cwd }));
        gitClients.set(dir, client);
      }
      return client;
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    async readStdin(limitBytes, overflow, source) {
      let chunks: Buffer[] = [];
      let total = 0;
      let sink: StdinSink | undefined;
      for await (const chunk of source ?? io.stdin) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
        total += buf.length;
        if (sink) {
          await sink.write(buf);
          continue;
        }
        chunks.push(buf);
        if (total <= limitBytes) continue;
        if (overflow === undefined) return undefined; // the rest is never read: memory stays bounded
        sink = overflow();
        for (const held of chunks) await sink.write(held);
        chunks = [];
      }
      if (!sink) return Buffer.concat(chunks);
      await sink.end();
      return { overflowed: total };
    },
  };
}
