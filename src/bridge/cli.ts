#!/usr/bin/env node
/**
 * The `provider-bridge` executable: runs the host with the real process and sets
 * `process.exitCode` (never `process.exit()`, so pending writes finish).
 */
import { runHost } from './host.js';

process.exitCode = await runHost(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
});
