#!/usr/bin/env node
// Writes the command reference made from the command tables (lib/cli): the README's command list
// (between its `commands` markers) and docs/cli.md (every command's flags). `--check` only
// compares and fails naming the stale file, for the tests. Needs the compiled package (dist/).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const { COMMANDS, ENVIRONMENT, usage } = require(path.join(root, 'dist', 'cli', 'commands'));
const { commandHelp } = require(path.join(root, 'dist', 'cli', 'command'));

const BEGIN = '<!-- commands: made by `npm run docs:cli` from the command tables; do not edit -->';
const END = '<!-- end of commands -->';

function readmeText(current) {
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${BEGIN} ... ${END} block`);
  const list = usage().split('\n').slice(2).join('\n');
  return `${current.slice(0, start)}${BEGIN}\n\`\`\`\n${list}\n\`\`\`\n${current.slice(end)}`;
}

function cliDoc() {
  const sections = COMMANDS.map((c) => `## ${c.name}\n\n\`\`\`\n${commandHelp(c)}\n\`\`\``);
  return (
    '# Command reference\n\n' +
    'Every `s2bnn` command with its options, as `s2bnn <command> --help` prints them. Made by\n' +
    '`npm run docs:cli` from the command tables in `lib/cli/`; a test fails when it is stale.\n\n' +
    `${sections.join('\n\n')}\n\n${ENVIRONMENT}\n`
  );
}

const check = process.argv.includes('--check');
const targets = [
  [path.join(root, 'README.md'), (current) => readmeText(current)],
  [path.join(root, 'docs', 'cli.md'), () => cliDoc()],
];
let stale = [];
for (const [file, make] of targets) {
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const wanted = make(current);
  if (wanted === current) continue;
  if (check) stale.push(path.relative(root, file));
  else fs.writeFileSync(file, wanted);
}
if (stale.length) {
  process.stderr.write(`cli-docs: ${stale.join(' and ')} differ from the command tables; run \`npm run docs:cli\`\n`);
  process.exit(1);
}
