/**
 * NumPy's summation, so that the mean similarity equals the original's `float(np.mean(rouge_scores))`
 * to the last bit: `np.add.reduce` on a contiguous float64 array uses pairwise summation
 * (blocks of at most 128 summed with 8 interleaved accumulators, split in halves rounded down to a
 * multiple of 8 above that), and `np.mean` divides that sum by the count.
 * Checked against NumPy 2.4 for sizes from 5 to 60,001.
 */

const BLOCK = 128;

/**
 * Sum of `values[start .. start + length)` in NumPy's pairwise order (`pairwise_sum` in
 * `loops_utils.h.src`).
 */
export function pairwiseSum(values: ArrayLike<number>, start = 0, length = values.length - start): number {
  if (length < 8) {
    // NumPy starts from -0.0 so that a sum of negative zeros stays -0.0.
    let res = -0;
    for (let i = start; i < start + length; i++) res += values[i] as number;
    return res;
  }
  if (length <= BLOCK) {
    let r0 = values[start] as number;
    let r1 = values[start + 1] as number;
    let r2 = values[start + 2] as number;
    let r3 = values[start + 3] as number;
    let r4 = values[start + 4] as number;
    let r5 = values[start + 5] as number;
    let r6 = values[start + 6] as number;
    let r7 = values[start + 7] as number;
    const unrolled = start + length - (length % 8);
    let i = start + 8;
    for (; i < unrolled; i += 8) {
      r0 += values[i] as number;
      r1 += values[i + 1] as number;
      r2 += values[i + 2] as number;
      r3 += values[i + 3] as number;
      r4 += values[i + 4] as number;
      r5 += values[i + 5] as number;
      r6 += values[i + 6] as number;
      r7 += values[i + 7] as number;
    }
    // ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), as NumPy groups them.
    const low = r0 + r1 + (r2 + r3);
    const high = r4 + r5 + (r6 + r7);
    let res = low + high;
    for (; i < start + length; i++) res += values[i] as number;
    return res;
  }
  let half = Math.floor(length / 2);
  half -= half % 8;
  return pairwiseSum(values, start, half) + pairwiseSum(values, start + half, length - half);
}

/** `float(np.mean(values[:length]))` for a non-empty array (NaN when empty, as NumPy's). */
export function numpyMean(values: ArrayLike<number>, length = values.length): number {
  return pairwiseSum(values, 0, length) / length;
}
