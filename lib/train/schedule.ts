// Learning-rate schedules, evaluated once per epoch as the reference code does.

export type Schedule =
  /** lr * (1 - epoch / epochs): the S2-BNN recipe (docs/method.md). */
  | { kind: 'linear' }
  /** lr * 0.5 * (1 + cos(pi * epoch / epochs)): MoCo v2. */
  | { kind: 'cosine' }
  /** lr * gamma^(milestones passed): linear evaluation (x0.1 at 60 and 80 of 100). */
  | { kind: 'step'; milestones: number[]; gamma?: number }
  | { kind: 'constant' };

export type ScheduleName = Schedule['kind'];
export const SCHEDULES: readonly ScheduleName[] = ['linear', 'cosine', 'step', 'constant'];

/** The learning rate of `epoch` (0-based) in a run of `epochs`. */
export function learningRate(schedule: Schedule, baseLr: number, epoch: number, epochs: number): number {
  switch (schedule.kind) {
    case 'linear':
      return baseLr * (1 - epoch / epochs);
    case 'cosine':
      return baseLr * 0.5 * (1 + Math.cos((Math.PI * epoch) / epochs));
    case 'step': {
      const passed = schedule.milestones.filter((m) => epoch >= m).length;
      return baseLr * (schedule.gamma ?? 0.1) ** passed;
    }
    case 'constant':
      return baseLr;
  }
}

/** A schedule from its CLI name; 'step' milestones default to 60% and 80% of the run. */
export function parseSchedule(name: string, epochs: number, milestones?: number[]): Schedule {
  switch (name) {
    case 'linear':
    case 'cosine':
    case 'constant':
      return { kind: name };
    case 'step':
      return { kind: 'step', milestones: milestones ?? [Math.round(epochs * 0.6), Math.round(epochs * 0.8)] };
    default:
      throw new Error(`unknown schedule '${name}' (expected linear, cosine, step or constant)`);
  }
}
