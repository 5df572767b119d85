/**
 * Entry of the V8 startup snapshot (`SNAPSHOT_BLOB_PATH`, built by
 * `build-snapshot.ts` on `npm run build`). A git hook pays node's start-up and our module
 * loading on every commit; most of the latter is compiling and running the modules of
 * simple-git, valibot and our own graph (see the profile figure of `npm run bench`). A startup
 * snapshot holds the heap after those modules ran, so a process started with
 * `node --snapshot-blob <blob> -- <args>` skips that work.
 *
 * What runs from the snapshot: every action except those in {@link DISK_ACTIONS} (report, sync,
 * migrate, hooks, serve) and `--format=prometheus`, which need packages that are not in the
 * snapshot; those run from the ordinary ESM build on disk (`dist/src/bridge/host.js`), loaded
 * with a run-time importer.
 * The same happens when the package was moved after the snapshot was built (the snapshot holds
 * absolute paths).
 *
 * This module is bundled (esbuild, one IIFE script) into `dist/snapshot/provider-bridge.cjs` and run
 * once by `node --build-snapshot`; it is never imported by the ESM build. Launchers: the
 * `provider-bridge` bin (`src/bridge/provider-bridge.sh`) and the git hook lines written by
 * `hooks install`; both fall back to `dist/src/bridge/cli.js` when node refuses the snapshot
 * (exit code 14: built by another node version).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { setModuleImporter, type ModuleImporter } from '../core/dynamic-import.js';
import { PACKAGE_ROOT, SNAPSHOT_BLOB_PATH, runHost, splitAction, type HostIo } from './host.js';
import { trainSnapshot } from './snapshot-training.js';
// Evaluated while the snapshot is built, so their module bodies never run again at start-up.
import 'simple-git';
import 'write-file-atomic';
import 'semver/functions/coerce.js';
import '../config/load.js';
import '../config/paths.js';
import '../core/git-client.js';
import '../../plugins/aggregation/index.js';
import '../../plugins/aggregation/aggregator.js';
import '../../plugins/aggregation/entry.js';
import '../../plugins/aggregation/sources/git-commit.js';
import '../../plugins/aggregation/sources/git-checkout.js';
import '../../plugins/aggregation/handlers/aggregate.js';
import '../../plugins/aggregation/handlers/aggregate-status.js';
import '../../plugins/aggregation/handlers/aggregate-force.js';
import '../../plugins/aggregation/handlers/aggregate-recover.js';
import '../../plugins/aggregation/handlers/aggregate-health.js';
import '../../plugins/aggregation/handlers/aggregate-validate.js';
import '../../plugins/aggregation/handlers/aggregate-cleanup.js';

/**
 * Actions run from the ESM build on disk: they load packages that are not in the snapshot
 * (the report's table, CSV and chart libraries, prom-client, node-schedule) or are long-lived.
 * Every other action, `--help`, `--version` and usage errors run from the snapshot.
 */
export const DISK_ACTIONS: ReadonlySet<string> = new Set(['aggregate-report', 'aggregate-sync', 'aggregate-migrate', 'hooks', 'serve']);

/**
 * An importer compiled at run time: code compiled into the snapshot has no dynamic-import
 * callback, a script compiled after start-up with node's default loader has one. Node marks
 * that option experimental and warns on stderr when it is used; that one warning is dropped
 * (every other warning still shows).
 */
function runtimeImporter(): ModuleImporter {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes('USE_MAIN_CONTEXT_DEFAULT_LOADER')) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  const script = new vm.Script('(specifier) => import(specifier)', {
    filename: path.join(PACKAGE_ROOT, 'dist/src/bridge/snapshot-main.js'),
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const compiled = script.runInThisContext() as ModuleImporter;
  // Bare package names resolve from this package, as they would from the ESM build.
  return (specifier) => compiled(/^[a-z][a-z0-9+.-]*:/i.test(specifier) ? specifier : pathToFileURL(requireFromPackage().resolve(specifier)).href);
}

let packageRequire: NodeJS.Require | undefined;
function requireFromPackage(): NodeJS.Require {
  packageRequire ??= createRequire(path.join(PACKAGE_ROOT, 'package.json'));
  return packageRequire;
}

/** The `--snapshot-blob` this process was started with (absolute), if any. */
function startedFrom(): string | undefined {
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--snapshot-blob') return argv[i + 1] === undefined ? undefined : path.resolve(argv[i + 1]!);
    if (argv[i]!.startsWith('--snapshot-blob=')) return path.resolve(argv[i]!.slice('--snapshot-blob='.length));
  }
  return undefined;
}

/** True when this snapshot belongs to the package folder it was built in (it holds absolute paths). */
function builtHere(): boolean {
  const blob = startedFrom();
  if (blob === undefined) return false;
  try {
    return fs.realpathSync(blob) === fs.realpathSync(SNAPSHOT_BLOB_PATH);
  } catch {
    return false;
  }
}

/** The action named in `argv`, as the host reads it (see {@link splitAction}). */
function actionOf(argv: readonly string[]): string | undefined {
  return splitAction(argv).action;
}

function fromSnapshot(argv: readonly string[]): boolean {
  const action = actionOf(argv);
  if (action !== undefined && DISK_ACTIONS.has(action)) return false;
  // prom-client is not in the snapshot.
  return !argv.some((a, i) => a === '--format=prometheus' || (a === '--format' && argv[i + 1] === 'prometheus'));
}

async function main(): Promise<void> {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
  // `node --snapshot-blob B -- a b` gives argv [node, a, b]: no script path.
  const argv = process.argv.slice(1);
  const io: HostIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() };
  // Compiled on first use: most calls import nothing at run time.
  let compiled: ModuleImporter | undefined;
  const importer: ModuleImporter = (specifier) => (compiled ??= runtimeImporter())(specifier);
  setModuleImporter(importer);
  const here = builtHere();
  const snapshot = here && fromSnapshot(argv);
  if (process.env.FLOWFORGE_TRACE_STARTUP) {
    const why = snapshot ? '' : here ? ' (this action runs from the ESM build)' : ' (the snapshot was built for another folder; running the ESM build)';
    process.stderr.write(`provider-bridge: started from the startup snapshot ${startedFrom() ?? '?'}${why}\n`);
  }
  if (snapshot) {
    process.exitCode = await runHost(argv, io);
    return;
  }
  if (actionOf(argv) === 'serve') {
    // Started this way serve ran each schedule once and exited 0 (cause not found); the
    // launchers never send it here, so refuse rather than stop silently.
    process.stderr.write('provider-bridge: serve does not run from the startup snapshot; start it with `provider-bridge serve` or `node dist/src/bridge/cli.js serve`\n');
    process.exitCode = 2;
    return;
  }
  // The ESM build beside the snapshot that was started (the package may have been moved since
  // the snapshot was built, and then PACKAGE_ROOT is where it was).
  const blob = startedFrom();
  const root = blob === undefined || here ? PACKAGE_ROOT : path.resolve(path.dirname(blob), '../..');
  const disk = (await importer(pathToFileURL(path.join(root, 'dist/src/bridge/host.js')).href)) as typeof import('./host.js');
  process.exitCode = await disk.runHost(argv, io);
}

if (v8.startupSnapshot.isBuildingSnapshot()) {
  v8.startupSnapshot.setDeserializeMainFunction(() => void main());
  // The training calls run before node takes the snapshot (it waits for the event loop).
  void trainSnapshot().then(
    (calls) => process.stdout.write(`training: ${calls} calls\n`),
    (error: unknown) => process.stdout.write(`training skipped: ${(error as Error).message}\n`),
  );
}
