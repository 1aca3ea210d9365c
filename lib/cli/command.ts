// Commands as tables: a command's name, arguments, summary and flags (type, help, the default it
// shows) in one place. Parsing, each command's --help, `s2bnn --help` and the README's command
// list are all made from the tables, so they cannot drift apart; adding a flag is one entry.
//
// Defaults live in the library: a table's `default` is what --help shows (read from the library
// where it holds the value), and `run` receives only the flags the user set.
import * as fs from 'fs';

export class UsageError extends Error {}

/**
 * How a flag's value is read: 'boolean' (`--name` alone), 'integer' (a positive integer),
 * 'count' (an integer >= 0), 'number' (positive), 'nonnegative' (a number >= 0), 'string', 'file'
 * (an existing file), 'file-or-true' (`--name` alone, or `--name FILE`), or the list of values
 * it may take.
 */
export type FlagType =
  | 'boolean'
  | 'integer'
  | 'count'
  | 'number'
  | 'nonnegative'
  | 'string'
  | 'file'
  | 'file-or-true'
  | readonly string[];

export interface FlagSpec {
  type: FlagType;
  help: string;
  /** The value's name in --help (N, X, DIR, CKPT); from the type when absent. */
  value?: string;
  /** What --help shows as the default; the library applies it. */
  default?: string | number | boolean;
  /** The command cannot run without it. */
  required?: boolean;
}

export type FlagTable = Record<string, FlagSpec>;

type ValueOf<T extends FlagType> = T extends 'boolean'
  ? boolean
  : T extends 'integer' | 'count' | 'number' | 'nonnegative'
    ? number
    : T extends 'file-or-true'
      ? true | string
      : T extends readonly (infer V)[]
        ? V
        : string;

/** The flags the user set, typed by the table. */
export type FlagValues<F extends FlagTable> = { [K in keyof F]?: ValueOf<F[K]['type']> };

export interface CommandSpec<F extends FlagTable> {
  name: string;
  /** Positional arguments, in order (all required), as --help names them. */
  args?: readonly string[];
  /** What the command does, beside its synopsis in `s2bnn --help`. */
  summary: string;
  flags: F;
  /** The command's exit code when it is not 0 (a run stopped by a signal: 130 or 143). */
  run(flags: FlagValues<F>, args: string[]): void | number | Promise<void | number>;
}

export interface Command {
  readonly name: string;
  readonly args: readonly string[];
  readonly summary: string;
  readonly flags: FlagTable;
  invoke(argv: string[]): void | number | Promise<void | number>;
}

export function command<const F extends FlagTable>(spec: CommandSpec<F>): Command {
  return {
    name: spec.name,
    args: spec.args ?? [],
    summary: spec.summary,
    flags: spec.flags,
    invoke(argv) {
      const { flags, args } = parseArgs(this, argv);
      return spec.run(flags as FlagValues<F>, args);
    },
  };
}

function readValue(name: string, spec: FlagSpec, text: string): string | number {
  const fail = (what: string) => new UsageError(`option '--${name}' must be ${what}, got '${text}'`);
  const type = spec.type;
  if (Array.isArray(type)) {
    if (!type.includes(text)) throw new UsageError(`--${name} must be ${type.join(', ')}; got '${text}'`);
    return text;
  }
  switch (type) {
    case 'integer':
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw fail('a positive number');
      if (type === 'integer' && !Number.isInteger(n)) throw fail('an integer');
      return n;
    }
    case 'count':
    case 'nonnegative': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw fail('a number >= 0');
      if (type === 'count' && !Number.isInteger(n)) throw fail('an integer');
      return n;
    }
    case 'file':
    case 'file-or-true':
      if (!fs.existsSync(text)) throw new UsageError(`--${name}: no such file '${text}'`);
      return text;
    default:
      return text;
  }
}

/** Reads `argv` against a command's table: every mistake is a UsageError naming the flag. */
export function parseArgs(cmd: Pick<Command, 'name' | 'args' | 'flags'>, argv: string[]): { flags: Record<string, unknown>; args: string[] } {
  const flags: Record<string, unknown> = {};
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      if (args.length >= cmd.args.length) throw new UsageError(`unexpected argument '${arg}'`);
      args.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split('=', 2);
    const spec = Object.prototype.hasOwnProperty.call(cmd.flags, name) ? cmd.flags[name] : undefined;
    if (!spec) throw new UsageError(`unknown option '--${name}' (${cmd.name} --help lists its options)`);
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      flags[name] = true;
      continue;
    }
    if (spec.type === 'file-or-true') {
      const next = argv[i + 1];
      const text = inline ?? (next !== undefined && !next.startsWith('--') ? argv[++i] : undefined);
      flags[name] = text === undefined ? true : readValue(name, spec, text);
      continue;
    }
    const text = inline ?? argv[++i];
    if (text === undefined || text.startsWith('--')) throw new UsageError(`option '--${name}' needs a value`);
    flags[name] = readValue(name, spec, text);
  }
  if (args.length < cmd.args.length) throw new UsageError(`missing ${cmd.args.slice(args.length).join(' and ')}`);
  for (const [name, spec] of Object.entries(cmd.flags)) {
    if (spec.required && flags[name] === undefined) {
      throw new UsageError(`${cmd.name} needs --${name} ${valueName(spec)}`);
    }
  }
  return { flags, args };
}

function valueName(spec: FlagSpec): string {
  if (spec.value) return spec.value;
  const type = spec.type;
  if (Array.isArray(type)) return type.join('|');
  switch (type) {
    case 'integer':
    case 'count':
      return 'N';
    case 'number':
    case 'nonnegative':
      return 'X';
    case 'file':
      return 'FILE';
    case 'file-or-true':
      return '[FILE]';
    default:
      return 'VALUE';
  }
}

const FLAG_COLUMN = 32;
const WIDTH = 100;

function wrap(text: string, indent: number, firstWidth: number): string[] {
  const lines: string[] = [];
  let line = '';
  let width = firstWidth;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
      width = WIDTH - indent;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function column(left: string, text: string): string {
  const pad = left.length + 1 >= FLAG_COLUMN ? `${left}\n${' '.repeat(FLAG_COLUMN)}` : left.padEnd(FLAG_COLUMN);
  const lines = wrap(text, FLAG_COLUMN, WIDTH - FLAG_COLUMN);
  return `${pad}${lines.join(`\n${' '.repeat(FLAG_COLUMN)}`)}`;
}

/** The synopsis of a command: `name ARG... [options]`, required flags spelled out. */
export function synopsis(cmd: Command): string {
  const required = Object.entries(cmd.flags)
    .filter(([, spec]) => spec.required)
    .map(([name, spec]) => `--${name} ${valueName(spec)}`);
  const hasOptions = Object.values(cmd.flags).some((spec) => !spec.required);
  return [cmd.name, ...cmd.args, ...required, ...(hasOptions ? ['[options]'] : [])].join(' ');
}

/** A command's line in `s2bnn --help`: its synopsis and what it does. */
export function commandLine(cmd: Command): string {
  return column(`  ${synopsis(cmd)}`, cmd.summary);
}

/** One command's help: its line, then every flag with its value, help and default. */
export function commandHelp(cmd: Command): string {
  const out = [commandLine(cmd)];
  for (const [name, spec] of Object.entries(cmd.flags)) {
    const value = spec.type === 'boolean' ? '' : ` ${valueName(spec)}`;
    const shown = spec.default === undefined ? '' : ` (default: ${spec.default})`;
    out.push(column(`      --${name}${value}`, `${spec.help}${shown}`));
  }
  return out.join('\n');
}
