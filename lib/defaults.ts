// Defaults live once, in the module that owns the options; these helpers apply them.

/** Every field of `defaults`, taken from `options` where the caller set it (undefined: not set). */
export function withDefaults<T extends object>(defaults: T, options: { [K in keyof T]?: T[K] }): T {
  const out = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof T)[]) {
    if (options[key] !== undefined) out[key] = options[key] as T[keyof T];
  }
  return out;
}

/** The fields of `values` that are set: what a caller passes on over someone else's defaults. */
export function defined<T extends object>(values: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
