// Every s2bnn command, in --help order, and the help text made from their tables.
import { Command, commandLine } from './command';
import { benchBconvCommand } from './bench';
import { benchDataCommand } from './bench-data';
import { exportCommand, inferCommand } from './deploy';
import { benchModelCommand, benchOpsCommand, benchStepCommand, convertCommand, infoCommand, inspectCommand } from './tools';
import { evalCommand, finetuneCommand, knnCommand, linclsCommand, pretrainCommand, reproduceCommand } from './train';

export const COMMANDS: readonly Command[] = [
  pretrainCommand,
  linclsCommand,
  finetuneCommand,
  knnCommand,
  evalCommand,
  reproduceCommand,
  exportCommand,
  inferCommand,
  infoCommand,
  inspectCommand,
  convertCommand,
  benchOpsCommand,
  benchModelCommand,
  benchStepCommand,
  benchDataCommand,
  benchBconvCommand,
];

export const ENVIRONMENT = `Environment: S2BNN_NUM_THREADS (threads), LIBTORCH (libtorch folder for builds),
S2BNN_PYTHON (python3 with torch for baselines).`;

/** `s2bnn --help`: every command and what it does; `s2bnn <command> --help` lists its flags. */
export function usage(): string {
  return `Usage: s2bnn <command> [options]

Commands (s2bnn <command> --help lists a command's options):
${COMMANDS.map(commandLine).join('\n')}

${ENVIRONMENT}`;
}
