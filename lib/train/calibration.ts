// The paper's calibration finding, measured: a real-valued teacher's softmax(q / T) over the
// embedding is confident where a contrastively trained BNN's is flat; distillation moves the
// student's distribution toward the teacher's. Histograms of max-probability and entropy show it.
import * as path from 'path';

import { Model } from '../models';
import { tidy } from '../tensor';
import { writeHistogramChart } from '../report';
import { BatchSource } from './loop';
import { extractFeatures } from './evaluate';

export interface PredictionStats {
  /** max_c softmax(q / T)_c per image. */
  maxProbability: Float32Array;
  /** -sum_c p_c log p_c per image, in nats. */
  entropy: Float32Array;
}

export async function predictionStats(model: Model, data: BatchSource, options: { temperature: number; maxImages?: number }): Promise<PredictionStats> {
  const { features } = await extractFeatures(model, data, { head: true, normalize: false, maxImages: options.maxImages });
  try {
    return tidy(() => {
      const logp = features.div(options.temperature).logSoftmax(1);
      const p = logp.exp();
      return {
        maxProbability: Float32Array.from(p.max(1).toTypedArray() as Float32Array),
        entropy: Float32Array.from(p.mul(logp).sum(1).neg().toTypedArray() as Float32Array),
      };
    });
  } finally {
    features.dispose();
  }
}

const mean = (values: Float32Array) => values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1);

/**
 * Writes calibration-max-probability.png and calibration-entropy.png (teacher vs student) into
 * `out` and returns the means.
 */
export async function writeCalibrationPlots(
  out: string,
  models: { teacher: Model; student: Model },
  data: BatchSource,
  options: { temperature: number; maxImages?: number },
): Promise<{ teacher: { maxProbability: number; entropy: number }; student: { maxProbability: number; entropy: number } }> {
  const teacher = await predictionStats(models.teacher, data, options);
  const student = await predictionStats(models.student, data, options);
  writeHistogramChart(
    path.join(out, 'calibration-max-probability.png'),
    [
      { name: 'teacher', values: teacher.maxProbability },
      { name: 'student', values: student.maxProbability },
    ],
    { title: `max softmax(q/T), T=${options.temperature}`, xLabel: 'max probability', yLabel: 'fraction', normalize: 'fraction', bins: 40 },
  );
  writeHistogramChart(
    path.join(out, 'calibration-entropy.png'),
    [
      { name: 'teacher', values: teacher.entropy },
      { name: 'student', values: student.entropy },
    ],
    { title: `entropy of softmax(q/T), T=${options.temperature}`, xLabel: 'entropy (nats)', yLabel: 'fraction', normalize: 'fraction', bins: 40 },
  );
  return {
    teacher: { maxProbability: mean(teacher.maxProbability), entropy: mean(teacher.entropy) },
    student: { maxProbability: mean(student.maxProbability), entropy: mean(student.entropy) },
  };
}
