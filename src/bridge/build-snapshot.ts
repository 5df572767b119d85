/**
 * Builds the V8 startup snapshot `dist/snapshot/provider-bridge.blob` for the node that runs
 * this script (part of `npm run build`, after `tsc`). See `snapshot-main.ts` for why and what
 * runs from it.
 *
 * Steps:
 * 1. esbuild bundles `dist/src/bridge/snapshot-main.js` and everything it reaches into one
 *    script (an IIFE), `dist/snapshot/provider-bridge.cjs` (`node --build-snapshot` runs a single
 *    script that may `require` only built-in modules). In each bundled file of this package,
 *    `import.meta.url` becomes that file's own `file:` URL, and
 *    `createRequire(import.meta.url)('pkg')` (our lazy `require` of CommonJS packages) becomes
 *    `require('pkg')` so the package is bundled too. Packages used only by actions that run
 *    from disk (prom-client, node-schedule, the report's libraries, TypeScript) stay out.
 * 2. `node --snapshot-blob <tmp> --build-snapshot <bundle>`, then the blob is renamed into
 *    place, so a hook never sees half a file.
 *
 * Usage: `node dist/src/bridge/build-snapshot.js [--quiet]`. Exit 0 also when esbuild is not
 * installed (a production install without dev dependencies): then no snapshot is built, any
 * older one is removed, and the launchers use the ESM build. Exit 1 when bundling or the
 * snapshot fails (the message names the step; stderr of `node --build-snapshot` is shown).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT, SNAPSHOT_BLOB_PATH } from './host.js';

/**
 * Our modules left out of the snapshot: the entry points of the actions that run from the ESM
 * build (snapshot-main.ts DISK_ACTIONS, and the prometheus renderer). Each is replaced by a stub
 * that throws if it is ever evaluated, so whatever only they use is not bundled either; a
 * smaller heap is a faster start (every page of it is faulted in at start-up).
 */
const DISK_ONLY_MODULES = [
  'plugins/aggregation/handlers/aggregate-report.js',
  'plugins/aggregation/handlers/aggregate-sync.js',
  'plugins/aggregation/handlers/aggregate-migrate.js',
  'plugins/aggregation/prometheus.js',
  'src/bridge/hooks-action.js',
  'src/bridge/serve.js',
];

/** Packages left out of the snapshot: loaded only by actions that run from the ESM build. */
const EXTERNAL_PACKAGES = ['prom-client', 'node-schedule', 'typescript', 'chart.js', 'cli-table3', 'csv-stringify', 'escape-html', 'playwright-core', 'husky'];

const quiet = process.argv.includes('--quiet');
const dist = path.join(PACKAGE_ROOT, 'dist');
const blob = SNAPSHOT_BLOB_PATH;
const bundle = path.join(dist, 'snapshot/provider-bridge.cjs');

type Esbuild = typeof import('esbuild');

async function loadEsbuild(): Promise<Esbuild | undefined> {
  try {
    return (await import('esbuild')) as Esbuild;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const esbuild = await loadEsbuild();
  if (!esbuild) {
    fs.rmSync(blob, { force: true });
    if (!quiet) process.stderr.write('build-snapshot: esbuild is not installed; no startup snapshot (provider-bridge runs from dist/src/bridge/cli.js)\n');
    return 0;
  }
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  const started = performance.now();
  const ownFile = /\.js$/;
  await esbuild.build({
    entryPoints: [path.join(dist, 'src/bridge/snapshot-main.js')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'iife',
    target: 'node20',
    external: EXTERNAL_PACKAGES,
    logLevel: 'error',
    legalComments: 'none',
    minifyWhitespace: true,
    minifySyntax: true,
    keepNames: true,
    plugins: [
      {
        name: 'flowforge-disk-only-modules',
        setup(build) {
          const diskOnly = new Set(DISK_ONLY_MODULES.map((m) => path.join(dist, m)));
          build.onResolve({ filter: /\.js$/ }, (args) => {
            if (args.kind !== 'dynamic-import' || !args.path.startsWith('.')) return undefined;
            const target = path.resolve(args.resolveDir, args.path);
            return diskOnly.has(target) ? { path: target, namespace: 'disk-only' } : undefined;
          });
          build.onLoad({ filter: /.*/, namespace: 'disk-only' }, (args) => ({
            contents: `throw new Error(${JSON.stringify(`${path.relative(dist, args.path)} is not in the startup snapshot; its action runs from the ESM build`)});`,
            loader: 'js',
          }));
        },
      },
      {
        name: 'flowforge-module-urls',
        setup(build) {
          build.onLoad({ filter: ownFile }, (args) => {
            if (!args.path.startsWith(dist + path.sep)) return undefined;
            const source = fs.readFileSync(args.path, 'utf8');
            const url = JSON.stringify(pathToFileURL(args.path).href);
            const contents = source.replaceAll(/createRequire\(import\.meta\.url\)\((?=['"])/g, 'require(').replaceAll('import.meta.url', url);
            return { contents, loader: 'js' };
          });
        },
      },
    ],
  });
  const tmp = `${blob}.${process.pid}.tmp`;
  const r = spawnSync(process.execPath, ['--snapshot-blob', tmp, '--build-snapshot', bundle], { cwd: PACKAGE_ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    process.stderr.write(`build-snapshot: node --build-snapshot failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${r.stderr}`);
    return 1;
  }
  fs.renameSync(tmp, blob);
  if (!quiet) {
    const kb = (file: string) => `${Math.round(fs.statSync(file).size / 1024)} KB`;
    const training = r.stdout.trim() || 'training: no report';
    process.stderr.write(`build-snapshot: ${path.relative(PACKAGE_ROOT, blob)} (${kb(blob)}, bundle ${kb(bundle)}, ${training}) in ${Math.round(performance.now() - started)} ms for node ${process.version}\n`);
  }
  return 0;
}

process.exitCode = await main();
