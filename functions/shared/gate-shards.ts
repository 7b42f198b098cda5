/**
 * The gate sharded across Lambdas (`engine/sharded.ts`), as the stages store it: the shard descriptors
 * the state machine's Maps carry (ranges of the committed pool's segments: keys, digests and offsets, no
 * instructions), and the objects under the iteration's `gate-shards/` folder the steps hand each other
 * (the survivors' texts, their pool sizes once decided, each shard's highest scores and its parts). Each
 * object is a pure function of the committed pool and the iteration's candidates, so a retried or
 * duplicated step writes the same bytes under the same key.
 */
import { z } from 'zod';
import { RougeIndex } from './engine/gate.ts';
import type { ShardScores } from './engine/shard.ts';
import { scoresFromJson, splitRange } from './engine/sharded.ts';
import { SelfInstructError } from './errors.ts';
import { runKeys } from './keys.ts';
import type { ObjectStore } from './ports.ts';
import { type IndexManifest, IndexSegment } from './records.ts';

/** A step of the sharded gate found an object an earlier step should have written missing. */
export class GateShardMissing extends SelfInstructError {}

/** The merge step decided otherwise than the decide step it follows (a changed pool or candidates). */
export class GateShardsDisagree extends SelfInstructError {}

/** One shard: the pool's positions `[from, to)` and the segments that hold them, `start` being each one's first position. */
export const GateShard = z.object({
  shard: z.int().nonnegative(),
  from: z.int().nonnegative(),
  to: z.int().nonnegative(),
  segments: z.array(IndexSegment.extend({ start: z.int().nonnegative(), size: z.int().nonnegative() })),
});
export type GateShard = z.infer<typeof GateShard>;

/** Where the Filter stage is in the sharded gate (absent: the gate in-process). */
export const GatePhase = z.enum(['plan', 'decide', 'merge']);
export type GatePhase = z.infer<typeof GatePhase>;

/**
 * Splits the pool of `manifest` into `shards` ranges of about equal size (fewer when the pool is
 * smaller), each with the segments it needs. A segment without a recorded size (a legacy index) is read
 * once to count it.
 */
export async function planShards(
  objects: ObjectStore,
  manifest: IndexManifest,
  shards: number,
): Promise<GateShard[]> {
  const sized: GateShard['segments'] = [];
  let start = 0;
  for (const segment of manifest.segments) {
    let size = segment.size;
    if (size === undefined) {
      const bytes = await objects.getBytes(segment.key);
      size = bytes === undefined ? 0 : RougeIndex.fromBuffer(bytes).size;
    }
    if (size > 0) sized.push({ ...segment, start, size });
    start += size;
  }
  const bounds = splitRange(start, shards);
  return bounds.slice(0, -1).map((from, shard) => {
    const to = bounds[shard + 1] as number;
    return {
      shard,
      from,
      to,
      segments: sized.filter((segment) => segment.start < to && segment.start + segment.size > from),
    };
  });
}

/** Reads a JSON object a step before this one wrote. */
export async function readStep<T>(objects: ObjectStore, key: string): Promise<T> {
  const text = await objects.getText(key);
  if (text === undefined) throw new GateShardMissing(`The sharded gate's ${key} is missing`);
  return JSON.parse(text) as T;
}

/** Each shard's highest scores of the survivors, in shard order. */
export async function readHighest(
  objects: ObjectStore,
  runId: string,
  iteration: number,
  shards: readonly GateShard[],
): Promise<number[][]> {
  const keys = runKeys(runId, iteration).gateShards;
  return Promise.all(shards.map(({ shard }) => readStep<number[]>(objects, keys.highest(shard))));
}

/** Each shard's part (top k and pairwise shares) of the decided survivors, in shard order. */
export async function readScores(
  objects: ObjectStore,
  runId: string,
  iteration: number,
  shards: readonly GateShard[],
): Promise<{ from: number; scores: ShardScores }[]> {
  const keys = runKeys(runId, iteration).gateShards;
  return Promise.all(
    shards.map(async ({ shard, from }) => {
      const text = await objects.getText(keys.scores(shard));
      if (text === undefined)
        throw new GateShardMissing(`The sharded gate's ${keys.scores(shard)} is missing`);
      return { from, scores: scoresFromJson(text) };
    }),
  );
}
