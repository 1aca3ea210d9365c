// The S2-BNN operators (native/ops) for TypeScript. Each runs the fused CPU or CUDA kernel and
// records autograd; `reference` holds the same formulas composed from plain libtorch ops, the
// way the public PyTorch code writes them (for checks and baselines).
import { NativeOps, native } from './native';
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

export interface Operators {
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

function bind(source: () => NativeOps): Operators {
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
export const ops: Operators = bind(() => native().ops);

/** The reference compositions of the same formulas. */
export const reference: Operators = bind(() => native().ops.reference);

export const { signSte, signSteBiased, binarizeWeight, binaryConv2d, rprelu, distributionLoss, infoNce } = ops;
