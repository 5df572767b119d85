import test from 'ava';
import { Readable } from 'node:stream';
import * as v from 'valibot';
import { runHost } from '../../src/bridge/host.js';
import { createRegistry } from '../../src/bridge/registry.js';
import type { HandlerDefinition } from '../../src/core/handler.js';
import { tempDir } from '../helpers/store.js';

const echo: HandlerDefinition = {
  name: 'echo',
  summary: 'returns a fixed row',
  help: 'echo',
  options: {},
  input: v.object({}),
  needsStore: false,
  run: async () => ({ rows: [{ key: 'a', n: 1 }] }),
  renderers: { csv: (r) => `key,n\n${(r as { rows: { key: string; n: number }[] }).rows.map((x) => `${x.key},${x.n}`).join('\n')}` },
};

async function run(args: string[], cwd: string) {
  const registry = createRegistry();
  registry.register({ name: 'demo', handlers: { echo: { summary: echo.summary, load: async () => echo } }, hooks: [] });
  let stdout = '';
  let stderr = '';
  const code = await runHost(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, stdin: Readable.from([]), env: {}, cwd }, registry);
  return { code, stdout, stderr };
}

test('an action renders the extra formats it declares; the host adds the final newline', async (t) => {
  const r = await run(['echo', '--format=csv'], tempDir(t));
  t.is(r.code, 0);
  t.is(r.stdout, 'key,n\na,1\n');
});

test('a format the action does not offer is exit 2 naming the valid ones, as one JSON document', async (t) => {
  const r = await run(['echo', '--format=html'], tempDir(t));
  t.is(r.code, 2);
  const doc = JSON.parse(r.stdout);
  t.is(doc.error.code, 'E_USAGE');
  t.is(doc.error.message, '--format must be one of json, text, csv, got "html"');
});

test('with no action, only json and text are valid formats', async (t) => {
  const r = await run(['--format=csv'], tempDir(t));
  t.is(r.code, 2);
  t.is(JSON.parse(r.stdout).error.message, '--format must be one of json, text, got "csv"');
});

test('an action\'s warm-up runs before its handler loads, with the raw arguments; a failing one is ignored', async (t) => {
  const order: string[] = [];
  const registry = createRegistry();
  registry.register({
    name: 'demo',
    handlers: {
      echo: {
        summary: echo.summary,
        warm: async (args, io) => {
          order.push(`warm ${args.join(' ')} in ${io.cwd === dir ? 'cwd' : io.cwd}`);
          throw new Error('warm-up failed');
        },
        load: async () => {
          order.push('load');
          return echo;
        },
      },
    },
    hooks: [],
  });
  const dir = tempDir(t);
  let stdout = '';
  const code = await runHost(['echo', '--quiet'], { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: () => true }, stdin: Readable.from([]), env: {}, cwd: dir }, registry);
  t.is(code, 0);
  t.deepEqual(order, ['warm --quiet in cwd', 'load']);
});
