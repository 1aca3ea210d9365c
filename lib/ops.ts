// The S2-BNN operators (native/ops) for TypeScript. Each runs the fused CPU or CUDA kernel and
// records autograd; `reference` holds the same formulas composed from plain libtorch ops, the
// way the public PyTorch code writes them (for checks and baselines).
import { NativeOps, NativePackedOps, native } from './native';
import { Tensor } from './tensor';

export interface BinaryConv2dOptions {
  /** Default 1. */
  stride?: number | [number, number];
  /** Default 0. Zero padding: the border contributes 0, not -1, exactly as in training. */
  padding?: number | [number, number];
  /** sign_ste on the input (default true). */
  binarizeInput?: boolean;
  /** alpha * sign(w) with the clipped STE (default true); false is step 1 of two-step training. */
  binarizeWeight?: boolean;
  /**
   * A per-channel bias added before binarizing the input (ReActNet's move11/move21): the op then
   * computes sign(x + bias) itself and saves only x, recomputing the sign in the backward.
   */
  inputBias?: Tensor;
}

export interface InfoNceResult {
  /** Mean cross-entropy with the positive at index 0. */
  loss: Tensor;
  /** [batch, 1 + K] logits divided by the temperature (no gradient). */
  logits: Tensor;
}

export interface Operators extends PackedOperators {
  /** sign(x) forward (sign(0) = 0); backward x ApproxSign'(x) = max(0, 2 - 2|x|). */
  signSte(x: Tensor): Tensor;
  /** signSte(x + bias) with a per-channel bias (dim 1), in one pass each way. */
  signSteBiased(x: Tensor, bias: Tensor): Tensor;
  /** alpha_o * sign(w), alpha_o = mean |w[o]| (constant); backward passes where |w| <= 1. */
  binarizeWeight(w: Tensor): Tensor;
  binaryConv2d(x: Tensor, w: Tensor, options?: BinaryConv2dOptions): Tensor;
  /** prelu(x + biasIn, weight) + biasOut, per channel (dim 1). */
  rprelu(x: Tensor, biasIn: Tensor, weight: Tensor, biasOut: Tensor): Tensor;
  /** Guided distribution calibration loss: mean_b -sum softmax(t/T) log_softmax(s/T); no gradient to t. */
  distributionLoss(student: Tensor, teacher: Tensor, temperature?: number): Tensor;
  /** MoCo InfoNCE over [q.k, q.queue] / T; queue is [dim, K]. */
  infoNce(q: Tensor, k: Tensor, queue: Tensor, temperature?: number): InfoNceResult;
}

export interface Bconv2dPackedOptions {
  /** The real number of input channels C (at most 64 x the packed words per pixel). */
  channels: number;
  /** Default 1. */
  stride?: number;
  /** Default 0. Zero padding: out-of-image taps contribute 0, exactly as in training. */
  padding?: number;
  /** float32, one value per output channel: the result becomes float32 acc * scale[o] (+ shift[o]). */
  scale?: Tensor;
  /** float32, one value per output channel; needs scale. */
  shift?: Tensor;
  /**
   * A CPU kernel by name ('avx512', 'avx2', 'scalar', 'reference'; see bconv2dPackedKernels()),
   * for tests and benchmarks. Default: the fastest the CPU supports (or S2BNN_BCONV_KERNEL).
   */
  kernel?: string;
}

/** Packed (1-bit) inference ops, CPU and CUDA, no autograd (docs/bconv.md). */
export interface PackedOperators {
  /**
   * x float [N, C, H, W] (any memory format; fastest channels_last), optional bias with C values
   * -> int64 [N, H, W, ceil(C/64)]: bit c%64 of word c/64 is 1 iff x + bias < 0, so 0 and NaN
   * pack as +1; bits of channels >= C are 0.
   */
  packSigns(x: Tensor, bias?: Tensor): Tensor;
  /** w float [O, C, kh, kw] -> int64 [O, kh, kw, ceil(C/64)], bit set iff w < 0. */
  packWeights(w: Tensor): Tensor;
  /**
   * The zero-padded convolution of the +-1 tensors behind packSigns(x) and packWeights(w):
   * int32 [N, O, Ho, Wo] accumulators (channels_last strides), or float32 acc * scale + shift.
   */
  bconv2dPacked(x: Tensor, w: Tensor, options: Bconv2dPackedOptions): Tensor;
  /** The CPU kernels this machine supports; the default first. */
  bconv2dPackedKernels(): string[];
}

// `kernel`: the CPU kernel used when the call names none (reference: the scalar reference kernel).
function bindPacked(source: () => NativePackedOps, kernel?: string): PackedOperators {
  return {
    packSigns: (x, bias) => new Tensor(source().packSigns(x.handle, bias?.handle ?? null)),
    packWeights: (w) => new Tensor(source().packWeights(w.handle)),
    bconv2dPacked: (x, w, options) =>
      new Tensor(
        source().bconv2dPacked(
          x.handle,
          w.handle,
          options.channels,
          options.stride ?? 1,
          options.padding ?? 0,
          options.scale?.handle ?? null,
          options.shift?.handle ?? null,
          options.kernel ?? (x.device === 'cpu' ? kernel ?? null : null),
        ),
      ),
    bconv2dPackedKernels: () => source().bconv2dPackedKernels(),
  };
}

function bind(source: () => NativeOps): Omit<Operators, keyof PackedOperators> {
  return {
    signSte: (x) => new Tensor(source().signSte(x.handle)),
    signSteBiased: (x, bias) => new Tensor(source().signSteBiased(x.handle, bias.handle)),
    binarizeWeight: (w) => new Tensor(source().binarizeWeight(w.handle)),
    binaryConv2d: (x, w, options = {}) =>
      new Tensor(
        source().binaryConv2d(
          x.handle,
          w.handle,
          options.stride ?? 1,
          options.padding ?? 0,
          options.binarizeInput ?? true,
          options.binarizeWeight ?? true,
          options.inputBias?.handle ?? null,
        ),
      ),
    rprelu: (x, biasIn, weight, biasOut) =>
      new Tensor(source().rprelu(x.handle, biasIn.handle, weight.handle, biasOut.handle)),
    distributionLoss: (student, teacher, temperature = 0.2) =>
      new Tensor(source().distributionLoss(student.handle, teacher.handle, temperature)),
    infoNce: (q, k, queue, temperature = 0.2) => {
      const [loss, logits] = source().infoNce(q.handle, k.handle, queue.handle, temperature);
      return { loss: new Tensor(loss), logits: new Tensor(logits) };
    },
  };
}

/** The fused operators. */
export const ops: Operators = {
  ...bind(() => native().ops),
  ...bindPacked(() => native().ops),
};

/**
 * The reference compositions of the same formulas. The packed ops have no composition twin: here
 * they are the same ops, with bconv2dPacked on the scalar reference kernel (CPU).
 */
export const reference: Operators = {
  ...bind(() => native().ops.reference),
  ...bindPacked(() => native().ops, 'reference'),
};

export const { signSte, signSteBiased, binarizeWeight, binaryConv2d, rprelu, distributionLoss, infoNce } = ops;
export const { packSigns, packWeights, bconv2dPacked } = ops;
