/**
 * Diversity per iteration and the plateau rule of "Enough instructions?". The paper saw diversity
 * plateau after about ten iterations; a run that only produces variations of what it has spends money
 * for little. "Save iteration" measures each iteration's added tasks against what the run added before:
 * - verb–noun pairs (the paper's diversity analysis): the distinct root-verb/direct-object pairs of the
 *   added tasks, those new to the run, and `newPairShare` = new pairs / added tasks;
 * - the highest ROUGE-L to the pool of the added tasks (what the gate measured), as a histogram;
 * - embeddings, when the near-duplicate gate ran: `newClusterShare` = the share of added tasks whose
 *   nearest instruction by embedding (pool or accepted before them) is below `newClusterCosine`, i.e.
 *   that open a new cluster, and their mean nearest cosine;
 * - the acceptance rate (accepted / generated candidates).
 * The run's `diversityPlateau` rule reads one of the shares: when it stays below `floor` for
 * `iterations` iterations in a row, the run stops with the reason "diversity plateau".
 */
import type { PoolTask } from '../shared/ports.ts';
import { type IterationDiversity, ROUGE_BUCKETS } from '../shared/records.ts';
import type { PlateauMetric } from '../shared/schemas.ts';

/** The metrics the plateau rule can watch. */
export const PLATEAU_METRICS = {
  'new-pairs': 'newPairShare',
  'new-clusters': 'newClusterShare',
} as const satisfies Record<PlateauMetric, keyof IterationDiversity>;

/** A verb–noun pair as stored in the run's list of pairs. */
export const pairKey = ({ verb, noun }: { verb: string; noun: string }) => `${verb} ${noun}`;

const share = (part: number, whole: number) => (whole > 0 ? part / whole : null);
const mean = (values: readonly number[]) =>
  values.length > 0 ? values.reduce((sum, value) => sum + value, 0) / values.length : null;

/**
 * The diversity of an iteration's `added` tasks, given the verb–noun pairs earlier iterations of the run
 * added (`seen`, which it extends with this iteration's).
 */
export function measureDiversity(
  added: readonly Pick<PoolTask, 'verbNoun' | 'maxSimilarity' | 'nearestCosine'>[],
  seen: Set<string>,
  {
    generated,
    accepted,
    newClusterCosine,
  }: { generated: number; accepted: number; newClusterCosine: number },
): IterationDiversity {
  const pairs = new Set<string>();
  let newPairs = 0;
  for (const { verbNoun } of added) {
    if (!verbNoun) continue;
    const key = pairKey(verbNoun);
    if (pairs.has(key)) continue;
    pairs.add(key);
    if (!seen.has(key)) newPairs++;
  }
  for (const key of pairs) seen.add(key);
  const rouge = added.flatMap(({ maxSimilarity }) => (maxSimilarity === undefined ? [] : [maxSimilarity]));
  const rougeHistogram = new Array<number>(ROUGE_BUCKETS).fill(0);
  for (const score of rouge) {
    const bucket = Math.min(ROUGE_BUCKETS - 1, Math.floor(score * ROUGE_BUCKETS));
    rougeHistogram[bucket] = (rougeHistogram[bucket] ?? 0) + 1;
  }
  const cosines = added.flatMap(({ nearestCosine }) => (nearestCosine === undefined ? [] : [nearestCosine]));
  return {
    added: added.length,
    distinctPairs: pairs.size,
    newPairs,
    newPairShare: share(newPairs, added.length),
    rougeHistogram,
    meanMaxRouge: mean(rouge),
    newClusterShare:
      cosines.length > 0
        ? (share(cosines.filter((c) => c < newClusterCosine).length, cosines.length) ?? null)
        : null,
    meanNearestCosine: mean(cosines),
    acceptanceRate: share(accepted, generated),
  };
}

/**
 * How many iterations in a row, ending with this one, stayed below the rule's floor: `streak` (the
 * previous iterations') plus one when this one is below, else 0. An iteration without the metric (no
 * embeddings for `new-clusters`, nothing added) counts as below: it added no diversity.
 */
export function lowDiversityStreak(
  diversity: IterationDiversity,
  rule: { metric: PlateauMetric; floor: number },
  streak: number,
): number {
  const value = diversity[PLATEAU_METRICS[rule.metric]];
  return value === null || value < rule.floor ? streak + 1 : 0;
}
