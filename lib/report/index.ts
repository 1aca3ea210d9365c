// Reporting a training run: progress on the terminal, metrics as JSON Lines, TensorBoard event
// files and PNG charts. Each piece stands alone; see docs/reporting.md for the file formats.
export { ProgressReporter, formatDuration, formatValue } from './progress';
export type { ProgressFields, ProgressOptions, ProgressStream } from './progress';
export { MetricsWriter, parseMetrics, readMetrics } from './metrics';
export type { MetricFields, MetricKind, MetricRecord, MetricValue, MetricsOpenOptions, ParsedMetrics } from './metrics';
export { TensorBoardWriter, crc32c, maskedCrc32c, tfRecord } from './tensorboard';
export type { TensorBoardWriterOptions } from './tensorboard';
export { histogram } from './histogram';
export type { Histogram, HistogramOptions } from './histogram';
export { crc32, encodePng, writePng } from './png';
export type { RasterImage } from './png';
export { PALETTE, histogramChart, lineChart, writeHistogramChart, writeLineChart } from './plot';
export type { Chart, ChartFrame, ChartOptions, Color, HistogramChart, HistogramChartOptions, HistogramSeries, LineChartOptions, LineSeries } from './plot';
export type { Box } from './canvas';
