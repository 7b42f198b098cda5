/**
 * Histograms and summaries of the report's distributions: ROUGE-L scores in fixed bins of 0.1, word
 * counts in bins of a "nice" width (1, 2 or 5 times a power of ten).
 */
import type { Distribution, Histogram } from './schema.ts';

/** Bins of the ROUGE-L histograms: 0.1 wide over [0, 1]. */
export const SIMILARITY_BINS = 10;
/** At most this many bins in a length histogram; the bin width is 1, 2 or 5 times a power of 10. */
export const MAX_LENGTH_BINS = 20;

/**
 * Counts `values` in `bins` equal bins over `[min, max]`. A value on an inner edge goes to the bin it
 * opens (0.7 → [0.7, 0.8)); `max` goes to the last bin; values outside the range are clamped.
 */
export function histogram(values: readonly number[], min: number, max: number, bins: number): Histogram {
  const counts = new Array<number>(bins).fill(0);
  for (const value of values) {
    // (value - min) * bins / span, not (value - min) / width: 0.7 / 0.1 is 6.999….
    const bin = Math.floor(((value - min) * bins) / (max - min));
    const index = Math.min(bins - 1, Math.max(0, bin));
    counts[index] = (counts[index] ?? 0) + 1;
  }
  const edges = Array.from({ length: bins + 1 }, (_, i) => round(min + ((max - min) * i) / bins));
  return { edges, counts };
}

/** A bin width of 1, 2 or 5 times a power of ten that covers `[0, max]` in at most `maxBins` bins. */
export function niceBinWidth(max: number, maxBins = MAX_LENGTH_BINS): number {
  for (let scale = 1; ; scale *= 10) {
    for (const step of [1, 2, 5]) {
      if (Math.floor(max / (step * scale)) + 1 <= maxBins) return step * scale;
    }
  }
}

/** The distribution of word counts: bins of a nice width from 0. */
export function lengthDistribution(lengths: readonly number[]): Distribution {
  const max = lengths.reduce((a, b) => Math.max(a, b), 0);
  const width = niceBinWidth(max);
  const bins = Math.floor(max / width) + 1;
  // Integer edges: [0, w), [w, 2w), …; the histogram's last bin is closed, so give it one more width.
  return summarize(lengths, histogram(lengths, 0, bins * width, bins));
}

/** The distribution of ROUGE-L scores in bins of 0.1 over [0, 1]. */
export const similarityDistribution = (scores: readonly number[]) =>
  summarize(scores, histogram(scores, 0, 1, SIMILARITY_BINS));

function summarize(values: readonly number[], bins: Histogram): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median =
    n === 0
      ? null
      : n % 2
        ? (sorted[mid] as number)
        : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return {
    count: n,
    mean: n === 0 ? null : sorted.reduce((a, b) => a + b, 0) / n,
    median,
    max: n === 0 ? null : (sorted[n - 1] as number),
    histogram: bins,
  };
}

const round = (value: number) => Math.round(value * 1e9) / 1e9;
