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
  const half = halfOf(length);
  return pairwiseSum(values, start, half) + pairwiseSum(values, start + half, length - half);
}

/** Where NumPy splits more than 128 values: at half, rounded down to a multiple of 8. */
function halfOf(length: number): number {
  const half = Math.floor(length / 2);
  return half - (half % 8);
}

/** `float(np.mean(values[:length]))` for a non-empty array (NaN when empty, as NumPy's). */
export function numpyMean(values: ArrayLike<number>, length = values.length): number {
  return pairwiseSum(values, 0, length) / length;
}

/**
 * How the part `[from, to)` of an array of `length` values enters NumPy's pairwise sum of the whole: the
 * tree's largest subtrees lying inside the part, whose sums can be computed apart, and the pieces of the
 * leaf blocks (at most 128 values) crossing the part's bounds, whose values must be added in the leaf's
 * order. In order, as flat triples `start, end, whole` (`whole`: 1 for a subtree, 0 for a piece). Parts of
 * one array summed apart this way are put together by `joinPairwise` into exactly the sum of the whole: a
 * part contributes about 2·log₂(length) sums plus at most 2 × 128 values. The tree, and so the
 * segments, depend on the whole length.
 */
export function pairwiseSegments(length: number, from: number, to: number): number[] {
  const out: number[] = [];
  segmentsOf(0, length, from, to, out);
  return out;
}

function segmentsOf(start: number, n: number, from: number, to: number, out: number[]): void {
  const end = start + n;
  if (n === 0 || end <= from || start >= to) return;
  if (start >= from && end <= to) out.push(start, end, 1);
  else if (n <= BLOCK) out.push(Math.max(start, from), Math.min(end, to), 0);
  else {
    const half = halfOf(n);
    segmentsOf(start, half, from, to, out);
    segmentsOf(start + half, n - half, from, to, out);
  }
}

/** One part of an array summed apart: `[from, to)`, and per segment its sum or its values, in order. */
export interface PairwisePart {
  from: number;
  to: number;
  values: ArrayLike<number>;
}

/**
 * `pairwiseSum` of an array of `length` values given as consecutive parts covering `[0, length)`, each
 * summed apart along `pairwiseSegments`: bit for bit the sum of the whole.
 */
export function joinPairwise(length: number, parts: readonly PairwisePart[]): number {
  if (length === 0) return pairwiseSum([]);
  return joinNode(0, length, parts, new Int32Array(parts.length));
}

const leaf = new Float64Array(BLOCK);

function joinNode(start: number, n: number, parts: readonly PairwisePart[], used: Int32Array): number {
  const end = start + n;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p] as PairwisePart;
    if (start >= part.from && end <= part.to) return part.values[take(used, p)] as number;
  }
  if (n <= BLOCK) {
    let filled = 0;
    for (let p = 0; p < parts.length; p++) {
      const part = parts[p] as PairwisePart;
      for (let i = Math.max(start, part.from); i < Math.min(end, part.to); i++) {
        leaf[filled++] = part.values[take(used, p)] as number;
      }
    }
    return pairwiseSum(leaf, 0, filled);
  }
  const half = halfOf(n);
  return joinNode(start, half, parts, used) + joinNode(start + half, n - half, parts, used);
}

/** The next unused index of part `p`'s values. */
function take(used: Int32Array, p: number): number {
  const at = used[p] as number;
  used[p] = at + 1;
  return at;
}

/**
 * What `values`, the part `[from, to)` of an array of `length` values, contributes to its pairwise sum
 * (see `pairwiseSegments`), appended to `out`. `sum(start, n)` is `pairwiseSum(values, start, n)`, or
 * the same computed elsewhere (the WebAssembly kernel).
 */
export function pairwisePart(
  values: ArrayLike<number>,
  length: number,
  from: number,
  to: number,
  out: number[] = [],
  sum: (start: number, n: number) => number = (start, n) => pairwiseSum(values, start, n),
): number[] {
  const segments = pairwiseSegments(length, from, to);
  for (let i = 0; i < segments.length; i += 3) {
    const start = (segments[i] as number) - from;
    const end = (segments[i + 1] as number) - from;
    if (segments[i + 2] === 1) out.push(sum(start, end - start));
    else for (let d = start; d < end; d++) out.push(values[d] as number);
  }
  return out;
}
