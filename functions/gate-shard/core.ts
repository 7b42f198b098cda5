/**
 * Stage "Score a gate shard" (the Map items of "Gate shards: highest" and "Gate shards: top and mean"):
 * scores the iteration's survivors against one range of the pool as committed, for the sharded ROUGE-L
 * gate (`shared/engine/sharded.ts`). It loads only its range's segments (cached in `/tmp` by digest,
 * like the Filter's index) and reads and writes only the iteration's `gate-shards/` objects:
 * - `highest`: each survivor's highest score over the range (step 1);
 * - `scores`: for the survivors the Filter decided, their top 10 over the range and the range's share of
 *   each one's pairwise sum (the mean), for the pool sizes the decisions fixed (step 3).
 * What it writes depends only on the committed pool and the survivors: a retry or a duplicated item
 * writes the same object.
 */
import { z } from 'zod';
import { DEFAULT_TOP_K } from '../shared/engine/gate.ts';
import { scoresToJson, shardHighest, shardScores } from '../shared/engine/sharded.ts';
import { GateShard, readStep } from '../shared/gate-shards.ts';
import { runKeys } from '../shared/keys.ts';
import { openPoolIndex } from '../shared/pool-index.ts';
import type { ObjectStore } from '../shared/ports.ts';
import { RunState } from '../shared/schemas.ts';

export const GateShardInput = RunState.extend({
  shard: GateShard,
  step: z.enum(['highest', 'scores']),
});
export type GateShardInput = z.infer<typeof GateShardInput>;

/** What a shard returns to its Map: where its result is, not the result. */
export interface GateShardResult {
  shard: number;
  key: string;
  candidates: number;
}

export async function scoreGateShard(
  {
    runId,
    progress,
    shard,
    step,
  }: Pick<GateShardInput, 'runId' | 'shard' | 'step'> & { progress: { iteration: number } },
  { objects }: { objects: ObjectStore },
): Promise<GateShardResult> {
  const keys = runKeys(runId, progress.iteration + 1).gateShards;
  const survivors = await readStep<string[]>(objects, keys.survivors);
  const segments = shard.segments.map(({ start: _start, ...segment }) => segment);
  const lease = await openPoolIndex(objects, { version: 1, segments });
  try {
    // The lent index holds the shard's segments: its position 0 is the first one's start in the pool.
    const offset = shard.segments[0]?.start ?? shard.from;
    const from = shard.from - offset;
    const to = shard.to - offset;
    if (step === 'highest') {
      const highest = shardHighest(lease.index, from, to, survivors);
      const key = keys.highest(shard.shard);
      await objects.put(key, JSON.stringify(Array.from(highest)), 'application/json');
      return { shard: shard.shard, key, candidates: survivors.length };
    }
    const sizes = await readStep<number[]>(objects, keys.sizes);
    const scores = shardScores(
      lease.index,
      { from, to, offset },
      survivors.slice(0, sizes.length),
      sizes,
      DEFAULT_TOP_K,
    );
    const key = keys.scores(shard.shard);
    await objects.put(key, scoresToJson(scores), 'application/json');
    return { shard: shard.shard, key, candidates: sizes.length };
  } finally {
    lease.release();
  }
}
