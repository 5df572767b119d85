import test from 'ava';
import { huskyInsertAt } from '../../src/bridge/hooks-install.js';

// Where our line goes in a husky hook file: after a shebang and husky 8's `. _/husky.sh` line (it
// re-runs the file), before every user command. Each case: file content → line index.
const cases: Array<[string, string, number]> = [
  ['empty file', '', 0],
  ['husky 9 file, commands only', 'npm test\nexit 0\n', 0],
  ['a comment first stays with the commands', '# lint\nnpm test\n', 0],
  ['shebang', '#!/bin/sh\nexit 0\n', 1],
  ['shebang without final newline', '#!/bin/sh', 1],
  ['husky 8 preamble', '#!/usr/bin/env sh\n. "$(dirname -- "$0")/_/husky.sh"\n\nnpx lint-staged\n', 2],
  ['husky 8, older quoting', '#!/bin/sh\n. "$(dirname "$0")/_/husky.sh"\nnpm test\n', 2],
  ['comment between shebang and husky.sh', '#!/bin/sh\n# generated\n. "$(dirname -- "$0")/_/husky.sh"\nexit 0\n', 3],
  ['a `#!` after line 1 is a comment', 'npm test\n#!/bin/sh\n', 0],
  ['husky.sh sourced after a command is not header', 'npm test\n. "$(dirname -- "$0")/_/husky.sh"\n', 0],
];

for (const [name, content, expected] of cases) {
  test(`huskyInsertAt: ${name} → line ${expected}`, (t) => {
    t.is(huskyInsertAt(content.split('\n')), expected);
  });
}
