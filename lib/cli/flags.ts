// Command-line flags: `--name value`, `--name=value`, booleans, positional arguments; every
// mistake is a UsageError whose message names the flag (the CLI prints it as one line, exit 2).

import { native } from '../native';

export class UsageError extends Error {}

// 'boolean-or-string': `--name` alone (true) or `--name VALUE` (a value not starting with '--').
export type FlagKind = 'boolean' | 'number' | 'nonnegative' | 'string' | 'boolean-or-string';

export interface Flags {
  [name: string]: string | boolean | string[];
  _: string[];
}

// `positional` names the arguments the command takes before or between its options.
export function parseFlags(args: string[], spec: Record<string, FlagKind>, positional: string[] = []): Flags {
  const flags: Flags = { _: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      if (flags._.length >= positional.length) throw new UsageError(`unexpected argument '${arg}'`);
      flags._.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split('=', 2);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option '--${name}'`);
    if (kind === 'boolean-or-string') {
      const next = args[i + 1];
      flags[name] = inline ?? (next !== undefined && !next.startsWith('--') ? args[++i] : true);
      continue;
    }
    if (kind === 'boolean') {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      flags[name] = true;
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined || value.startsWith('--')) throw new UsageError(`option '--${name}' needs a value`);
    if (kind === 'number' && (!Number.isFinite(Number(value)) || Number(value) <= 0)) {
      throw new UsageError(`option '--${name}' must be a positive number, got '${value}'`);
    }
    if (kind === 'nonnegative' && (value.trim() === '' || !Number.isFinite(Number(value)) || Number(value) < 0)) {
      throw new UsageError(`option '--${name}' must be a number >= 0, got '${value}'`);
    }
    flags[name] = value;
  }
  if (flags._.length < positional.length) {
    throw new UsageError(`missing ${positional.slice(flags._.length).join(' and ')}`);
  }
  return flags;
}

export function positiveInteger(flags: Flags, name: string): number | undefined {
  if (flags[name] === undefined) return undefined;
  const value = Number(flags[name]);
  if (!Number.isInteger(value)) throw new UsageError(`option '--${name}' must be an integer, got '${flags[name]}'`);
  return value;
}


export function optionalNumber(flags: Flags, name: string): number | undefined {
  return flags[name] === undefined ? undefined : Number(flags[name]);
}

export function optionalString(flags: Flags, name: string): string | undefined {
  return flags[name] === undefined ? undefined : String(flags[name]);
}

/** A flag whose value must be one of `choices`. */
export function choice<T extends string>(flags: Flags, name: string, choices: readonly T[], fallback: T): T {
  const value = flags[name] === undefined ? fallback : String(flags[name]);
  if (!choices.includes(value as T)) throw new UsageError(`--${name} must be ${choices.join(', ')}; got '${value}'`);
  return value as T;
}

/** `--device cpu|cuda` (default cpu); cuda only where this build sees a device, else why not. */
export function deviceFlag(flags: Flags): 'cpu' | 'cuda' {
  const value = choice(flags, 'device', ['cpu', 'cuda'] as const, 'cpu');
  if (value === 'cuda' && native().cudaDeviceCount() === 0) {
    throw new UsageError(native().build.cuda ? '--device cuda: no CUDA device is visible' : '--device cuda: this s2bnn build has no CUDA (built against a CPU libtorch)');
  }
  return value;
}
