/**
 * `provider-bridge hooks install|uninstall [--repo=DIR]` (SPEC §8): installs the git hooks the
 * plugins bind into another repository — through husky when it uses husky, else into the hooks
 * path git reports — chaining to hooks already there. The hook records absolute paths to node
 * and to this CLI, so GUI git clients with a minimal PATH work.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerDefinition } from '../core/handler.js';
import { UsageError } from '../core/errors.js';
import { installHooks, uninstallHooks, type HooksInstallResult, type HooksUninstallResult } from './hooks-install.js';
import { PACKAGE_ROOT } from './host.js';

const HooksInput = v.object({
  repo: v.optional(v.string()),
  positionals: v.array(v.string()),
});

export const hooksAction: HandlerDefinition<typeof HooksInput, HooksInstallResult | HooksUninstallResult> = {
  name: 'hooks',
  summary: 'install or uninstall the git hooks in a repository',
  help: `Usage: provider-bridge hooks install [--repo=DIR]
       provider-bridge hooks uninstall [--repo=DIR]

Installs post-commit and post-checkout hooks that call provider-bridge with absolute
paths to node and to this package. A hook already there keeps running (it is chained,
or our line is added to the husky hook file). uninstall restores what was there.`,
  options: { repo: { type: 'string' } },
  allowPositionals: true,
  needsStore: false,
  input: HooksInput,
  async run(input, ctx) {
    const [verb, ...extra] = input.positionals;
    if ((verb !== 'install' && verb !== 'uninstall') || extra.length > 0) {
      throw new UsageError(`hooks needs install or uninstall, got ${JSON.stringify(input.positionals.join(' '))}`, {
        details: [{ path: 'hooks', message: 'expected install or uninstall', value: input.positionals }],
      });
    }
    const repoDir = path.resolve(ctx.cwd, input.repo ?? '.');
    if (verb === 'install') {
      return installHooks({
        repoDir,
        nodePath: process.execPath,
        cliPath: path.join(PACKAGE_ROOT, 'dist/src/bridge/cli.js'),
        launcherPath: path.join(PACKAGE_ROOT, 'src/bridge/provider-bridge.sh'),
        env: ctx.env,
      });
    }
    return uninstallHooks({ repoDir, env: ctx.env });
  },
};
