import { describe, expect, it } from 'vitest';
import {
  joinPairwise,
  pairwisePart,
  pairwiseSegments,
  pairwiseSum,
} from '../../../functions/shared/engine/mean.ts';
import { createRng } from '../../../functions/shared/random.ts';

describe('pairwise sums of an array summed in parts', () => {
  it('join into exactly the sum of the whole, for any length and any split', () => {
    const rng = createRng('parts');
    for (let trial = 0; trial < 300; trial++) {
      const length = trial < 40 ? trial : rng.int(6000);
      // Magnitudes spread over many orders, so that any change of order shows in the last bits.
      const values = Float64Array.from({ length }, () => rng.next() * 10 ** (rng.int(12) - 6));
      const cuts = Array.from({ length: rng.int(4) }, () => rng.int(length + 1)).sort((a, b) => a - b);
      const bounds = [0, ...cuts, length];

      const parts = bounds.slice(1).map((to, i) => {
        const from = bounds[i] as number;
        return { from, to, values: pairwisePart(values.subarray(from, to), length, from, to) };
      });

      expect(
        Object.is(joinPairwise(length, parts), pairwiseSum(values)),
        `length ${length}, cuts ${cuts}`,
      ).toBe(true);
    }
  });

  it('split a part into whole subtrees and only the pieces of the leaves crossing its bounds', () => {
    // 1,000 values: halves of 496 and 504, quarters of 248, leaves of 120 and 128.
    const segments = pairwiseSegments(1000, 100, 700);
    const triples = Array.from({ length: segments.length / 3 }, (_, i) => segments.slice(3 * i, 3 * i + 3));

    expect(triples).toEqual([
      [100, 120, 0],
      [120, 248, 1],
      [248, 496, 1],
      [496, 616, 1],
      [616, 700, 0],
    ]);
  });
});
