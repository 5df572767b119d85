import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregationPlugin } from '../../plugins/aggregation/index.js';
import { PROJECT_ROOT } from '../helpers/git-repo.js';

const pluginDir = path.join(PROJECT_ROOT, 'plugins/aggregation');

test('the manifest lists the six FlowForge commands, mapped to serve, aggregate-status, aggregate-force, aggregate-recover, aggregate-sync, aggregate-report', (t) => {
  t.deepEqual(
    aggregationPlugin.commands?.map((c) => [c.name, c.file, c.args.join(' ')]),
    [
      ['flowforge:aggregation:start', 'commands/start.md', 'serve'],
      ['flowforge:aggregation:status', 'commands/status.md', 'aggregate-status --format=text'],
      ['flowforge:aggregation:flush', 'commands/flush.md', 'aggregate-force'],
      ['flowforge:aggregation:recover', 'commands/recover.md', 'aggregate-recover'],
      ['flowforge:aggregation:sync', 'commands/sync.md', 'aggregate-sync --format=text'],
      ['flowforge:aggregation:report', 'commands/report.md', 'aggregate-report --format=text'],
    ],
  );
});

test('each command file has a front matter description equal to the manifest and runs its provider-bridge call', (t) => {
  for (const command of aggregationPlugin.commands ?? []) {
    const text = fs.readFileSync(path.join(pluginDir, command.file), 'utf8');
    const front = /^---\n([\s\S]*?)\n---\n/.exec(text);
    t.truthy(front, command.file);
    t.is(/^description: (.*)$/m.exec(front![1]!)?.[1], command.description, command.file);
    t.true(text.includes(`npx provider-bridge ${command.args.join(' ')}`), command.file);
    t.regex(text, /Exit codes:/, command.file);
    t.truthy(aggregationPlugin.handlers[command.args[0]!] ?? command.args[0] === 'serve', command.file);
  }
});
