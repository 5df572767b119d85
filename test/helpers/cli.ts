/**
 * Runs the compiled `provider-bridge` as a real process and parses its single JSON document.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { PROJECT_ROOT } from './git-repo.js';

export const CLI = path.join(PROJECT_ROOT, 'dist/src/bridge/cli.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (undefined when it is not one JSON document). */
  json: any;
}

/**
 * Runs `node dist/src/bridge/cli.js <args>` (or `options.command` followed by `args`, e.g. the
 * `provider-bridge` bin) with stdin `options.input` (default empty).
 */
export function runCli(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; command?: string[] }): CliRun {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(options.env ?? process.env)) if (!k.startsWith('GIT_') && k !== 'FLOWFORGE_DATA_PATH') env[k] = v;
  Object.assign(env, options.env ?? {});
  const [file, ...prefix] = options.command ?? [process.execPath, CLI];
  const r = spawnSync(file!, [...prefix, ...args], { cwd: options.cwd, env, input: options.input ?? '', encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
