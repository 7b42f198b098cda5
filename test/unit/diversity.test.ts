import { describe, expect, it } from 'vitest';
import { lowDiversityStreak, measureDiversity } from '../../functions/save-iteration/diversity.ts';

const task = (verb: string | null, maxSimilarity: number, nearestCosine?: number) => ({
  verbNoun: verb === null ? null : { verb, noun: 'poem' },
  maxSimilarity,
  nearestCosine,
});
const options = { generated: 10, accepted: 5, newClusterCosine: 0.8 };

describe('diversity of an iteration', () => {
  it('counts the verb–noun pairs new to the run, as a share of the added tasks, and remembers them', () => {
    const seen = new Set(['write poem']);

    const diversity = measureDiversity(
      [task('write', 0.31), task('compose', 0.42), task('compose', 0.55), task(null, 0.7)],
      seen,
      options,
    );

    expect(diversity).toMatchObject({ added: 4, distinctPairs: 2, newPairs: 1, newPairShare: 0.25 });
    expect([...seen]).toEqual(['write poem', 'compose poem']);
    // The next iteration meets "compose poem" as known.
    expect(measureDiversity([task('compose', 0.2)], seen, options).newPairs).toBe(0);
  });

  it('buckets the highest ROUGE-L by tenths, an exact 0.7 in the 0.7 bucket, and averages it', () => {
    const diversity = measureDiversity(
      [task('a', 0.05), task('b', 0.69), task('c', 0.7)],
      new Set(),
      options,
    );

    expect(diversity.rougeHistogram).toEqual([1, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
    expect(diversity.meanMaxRouge).toBeCloseTo((0.05 + 0.69 + 0.7) / 3, 12);
    expect(diversity.acceptanceRate).toBe(0.5);
  });

  it('counts the added tasks farther than newClusterCosine from everything before them, with embeddings only', () => {
    const embedded = measureDiversity(
      [task('a', 0.1, 0.5), task('b', 0.1, 0.79), task('c', 0.1, 0.8), task('d', 0.1, 0.95)],
      new Set(),
      options,
    );
    expect(embedded.newClusterShare).toBe(0.5);
    expect(embedded.meanNearestCosine).toBeCloseTo((0.5 + 0.79 + 0.8 + 0.95) / 4, 12);

    const without = measureDiversity([task('a', 0.1)], new Set(), options);
    expect(without.newClusterShare).toBeNull();
    expect(without.meanNearestCosine).toBeNull();
  });

  it('has no shares for an iteration that added nothing', () => {
    const diversity = measureDiversity([], new Set(), { ...options, generated: 0 });
    expect(diversity).toMatchObject({ newPairShare: null, meanMaxRouge: null, acceptanceRate: null });
  });
});

describe('the plateau streak', () => {
  const rule = { metric: 'new-pairs' as const, floor: 0.1 };
  const of = (newPairShare: number | null) => ({
    ...measureDiversity([], new Set(), options),
    newPairShare,
  });

  it('grows while the metric stays below the floor and restarts at 0 when it reaches it', () => {
    expect(lowDiversityStreak(of(0.09), rule, 2)).toBe(3);
    expect(lowDiversityStreak(of(0.1), rule, 2)).toBe(0);
  });

  it('counts an iteration without the metric as below the floor', () => {
    expect(lowDiversityStreak(of(null), rule, 0)).toBe(1);
    expect(lowDiversityStreak(of(0.5), { metric: 'new-clusters', floor: 0.1 }, 1)).toBe(2);
  });
});
