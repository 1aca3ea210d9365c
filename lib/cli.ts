#!/usr/bin/env node
// The `s2bnn` command. Every error is one clear line on stderr and a non-zero exit code.
import { NativeLoadError } from './native';
import { UsageError, commandHelp } from './cli/command';
import { COMMANDS, usage } from './cli/commands';
import { reportSkippedImages } from './cli/data';

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command '${name}' (run 's2bnn --help')`);
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(`${commandHelp(command)}\n`);
      return 0;
    }
    try {
      return (await command.invoke(args)) ?? 0;
    } finally {
      reportSkippedImages(name);
    }
  } catch (err) {
    const message = err instanceof NativeLoadError ? err.message : (err as Error).message.split('\n')[0];
    process.stderr.write(`s2bnn ${name}: ${message}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
