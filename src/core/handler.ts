/**
 * Handler and plugin shapes (STYLE §1–2). A handler is plain data: a name, its CLI options
 * (node's `util.parseArgs` option spec), a valibot schema for the parsed options, and `run`.
 * The host parses argv, validates with `input`, then calls `run(input, ctx)`; handlers return
 * results and throw {@link FlowForgeError}s, the host turns them into output and exit codes.
 */
import type { ParseArgsConfig } from 'node:util';
import type * as v from 'valibot';
import type { HandlerContext } from './context.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface HandlerDefinition<TSchema extends v.GenericSchema = v.GenericSchema, TResult = unknown> {
  /** Action name on the command line, e.g. `aggregate-force`. */
  name: string;
  /** One line for `provider-bridge --help`. */
  summary: string;
  /** Body of `provider-bridge <action> --help` (options and examples). */
  help: string;
  /** Action-specific options (global options are added by the host). */
  options: OptionSpec;
  /** Whether positional arguments are allowed (default false). */
  allowPositionals?: boolean;
  /** Valibot schema applied to `{...parsedOptions, positionals}`. */
  input: TSchema;
  /**
   * Whether this action needs the store (data root and config). `hooks` does not need a data
   * root to install, for example. Default true.
   */
  needsStore?: boolean;
  run(input: v.InferOutput<TSchema>, ctx: HandlerContext): Promise<TResult>;
  /** Human rendering for `--format=text`; default is indented JSON. */
  formatText?(result: TResult): string;
  /**
   * Extra output formats this action offers beyond `json` and `text`, keyed by the `--format`
   * value (e.g. `csv`, `html`, `prometheus`). Each returns (or resolves to) the whole stdout
   * document, so a renderer may import its library lazily; the host adds the trailing newline
   * when it is missing. Errors are still reported as with `text` (stderr, exit code).
   */
  renderers?: Record<string, (result: TResult) => string | Promise<string>>;
}

/** Any handler, for registries. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyHandler = HandlerDefinition<any, any>;

/** A git hook a plugin binds: `hooks/<name>` runs `provider-bridge <args…>`. */
export interface HookBinding {
  /** git hook name, e.g. `post-commit`. */
  name: string;
  /** Arguments after `provider-bridge`; git's own hook arguments are appended by the script. */
  args: string[];
}

/** A schedule a plugin wants while `serve` runs (SPEC §7). */
export interface ScheduleBinding {
  name: string;
  /** Interval in milliseconds, from the config. */
  everyMs(config: import('../config/schema.js').ResolvedConfig): number;
  /** `host` tells a run about the long-lived host (start time in epoch ms, runs so far). */
  run(ctx: HandlerContext, host: { startedAt: number; runs: number }): Promise<unknown>;
}

/**
 * A FlowForge command a plugin ships (`/flowforge:<plugin>:<name>`): a markdown command file
 * with a YAML front matter `description:`, mapped to one `provider-bridge` call.
 */
export interface CommandBinding {
  /** Command name as FlowForge shows it, e.g. `flowforge:aggregation:status`. */
  name: string;
  /** One line, the same as the file's front matter `description:`. */
  description: string;
  /** Path of the command file, relative to the plugin folder, e.g. `commands/status.md`. */
  file: string;
  /** Arguments after `provider-bridge`, e.g. `['aggregate-status', '--format=text']`. */
  args: string[];
}

/** A plugin manifest: plain data, wired by the host only. */
export interface PluginManifest {
  name: string;
  /** Lazy loaders keyed by action name, so an invocation imports only its own handler. */
  handlers: Record<
    string,
    {
      summary: string;
      load(): Promise<AnyHandler>;
      /**
       * Optional: called by the host with the raw arguments and the working directory BEFORE
       * `load()`, to start slow I/O (a git process) that can run while the handler's modules
       * load. Must not throw or write anything; whatever it starts is only a cache.
       */
      warm?(args: readonly string[], io: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void>;
    }
  >;
  hooks: HookBinding[];
  schedules?: ScheduleBinding[];
  /** FlowForge command files the plugin ships (plain data; the host does not run them). */
  commands?: CommandBinding[];
}
