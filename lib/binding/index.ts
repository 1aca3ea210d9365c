// The native addon's whole surface, declared once: one slice per area, composed here. Every
// module reaches the addon through `native()` (lib/native.ts), typed by this contract.
import type { CheckpointBinding } from './checkpoint';
import type { DataBinding } from './data';
import type { DeployBinding } from './deploy';
import type { ModelBinding } from './models';
import type { OpsBinding } from './ops';
import type { RuntimeBinding } from './runtime';
import type { TensorBinding } from './tensor';
import type { TrainBinding } from './train';

export interface NativeAddon
  extends RuntimeBinding,
    TensorBinding,
    OpsBinding,
    ModelBinding,
    CheckpointBinding,
    DataBinding,
    TrainBinding,
    DeployBinding {}

export type * from './checkpoint';
export type * from './data';
export type * from './deploy';
export type * from './models';
export type * from './ops';
export type * from './runtime';
export type * from './tensor';
export type * from './train';
