import { describe, expect, it } from 'vitest';
import { scoreGateShard } from '../../../functions/gate-shard/core.ts';
import { DEFAULT_TOP_K, type GateResult, gate, RougeIndex } from '../../../functions/shared/engine/gate.ts';
import {
  commitBatch,
  decideBatch,
  mergeBatch,
  prepareBatch,
} from '../../../functions/shared/engine/scoring.ts';
import { highestOver, tailScores } from '../../../functions/shared/engine/sharded.ts';
import { planShards, readHighest, readScores } from '../../../functions/shared/gate-shards.ts';
import { runKeys } from '../../../functions/shared/keys.ts';
import { appendSegment, EMPTY_MANIFEST, openPoolIndex } from '../../../functions/shared/pool-index.ts';
import type { IndexManifest } from '../../../functions/shared/records.ts';
import { workload } from '../../support/gate-workload.ts';
import { MemoryObjects } from '../fakes.ts';

const runId = 'run-sharded';
const progress = { iteration: 0 };
const keys = runKeys(runId, 1).gateShards;

/** The parts of a result compared bit for bit. */
const summary = (result: GateResult) => ({
  instruction: result.instruction,
  accepted: result.accepted,
  vetoed: result.vetoed,
  max: result.maxSimilarity,
  mean: result.avgSimilarity,
  top: result.mostSimilar.map(({ instruction, position, score }) => `${score} ${position} ${instruction}`),
});

/** `pool` committed as segments of the given sizes, as iterations' commits leave it. */
async function committed(objects: MemoryObjects, pool: readonly string[], sizes: readonly number[]) {
  let manifest: IndexManifest = EMPTY_MANIFEST;
  let at = 0;
  for (const [i, size] of sizes.entries()) {
    const key = `pools/p/segments/${runId}/iteration-${i}.bin`;
    manifest = await appendSegment(objects, manifest, { writeTo: key, key }, pool.slice(at, at + size));
    at += size;
  }
  return manifest;
}

/**
 * The sharded gate as the state machine runs it: the Filter's plan, the shard Lambdas' first step, the
 * Filter's decisions, the shards' second step and the Filter's merge, each through S3 (the in-memory store).
 */
async function shardedGate(
  objects: MemoryObjects,
  manifest: IndexManifest,
  survivors: readonly string[],
  { shards, limit, veto }: { shards: number; limit?: number; veto?: (c: number) => string | null },
): Promise<GateResult[]> {
  await objects.put(keys.survivors, JSON.stringify(survivors));
  const plan = await planShards(objects, manifest, shards);
  for (const shard of plan) await scoreGateShard({ runId, progress, shard, step: 'highest' }, { objects });

  const decide = async (copy: RougeIndex) => {
    const batch = prepareBatch(copy, survivors);
    const highest = highestOver(await readHighest(objects, runId, 1, plan), survivors.length);
    return { batch, decisions: decideBatch(batch, highest, copy.size, 0.7, true, veto, limit) };
  };
  const lease = await openPoolIndex(objects, manifest, { cacheDir: false });
  const index = new RougeIndex();
  index.append(lease.index);
  lease.release();
  const committedSize = index.size;
  const { decisions } = await decide(index);
  await objects.put(keys.sizes, JSON.stringify(decisions.map((decision) => decision.size)));

  for (const shard of plan) await scoreGateShard({ runId, progress, shard, step: 'scores' }, { objects });

  const again = await decide(index);
  commitBatch(index, again.batch, again.decisions);
  const parts = await readScores(objects, runId, 1, plan);
  parts.push({ from: committedSize, scores: tailScores(again.decisions, committedSize, DEFAULT_TOP_K) });
  return mergeBatch(index, again.batch, again.decisions, parts, DEFAULT_TOP_K);
}

describe('the gate in shards', () => {
  it('gives the decisions, max, top 10 and means of the gate in one process, shards cutting through segments', async () => {
    const { pool, candidates } = workload('sharded', 700, 300);
    const objects = new MemoryObjects();
    const manifest = await committed(objects, pool, [175, 225, 300]);

    const whole = gate(RougeIndex.from(pool), candidates);
    const plan = await planShards(objects, manifest, 4);
    const sharded = await shardedGate(objects, manifest, candidates, { shards: 4 });

    expect(plan.map(({ from, to, segments }) => [from, to, segments.length])).toEqual([
      [0, 175, 1],
      [175, 350, 1],
      [350, 525, 2],
      [525, 700, 1],
    ]);
    expect(whole.filter((result) => result.accepted).length).toBeGreaterThan(30);
    expect(whole.filter((result) => !result.accepted).length).toBeGreaterThan(30);
    expect(sharded.map(summary)).toEqual(whole.map(summary));
  });

  it('stops at the quota and applies a veto in order, as the Filter slices the gate in-process', async () => {
    const { pool, candidates } = workload('sharded-quota', 400, 250);
    const objects = new MemoryObjects();
    const manifest = await committed(objects, pool, [100, 300]);
    const veto = (c: number) => (c % 4 === 1 ? 'near-duplicate' : null);

    const whole = gate(RougeIndex.from(pool), candidates, { veto });
    let accepted = 0;
    const expected = whole.slice(0, whole.findIndex((result) => result.accepted && ++accepted === 40) + 1);
    const sharded = await shardedGate(objects, manifest, candidates, { shards: 3, limit: 40, veto });

    expect(expected.some((result) => result.vetoed)).toBe(true);
    expect(expected.length).toBeLessThan(candidates.length);
    expect(sharded.map(summary)).toEqual(expected.map(summary));
  });

  it('writes the same objects when a shard runs twice (a retry or a duplicated Map item)', async () => {
    const { pool, candidates } = workload('sharded-twice', 300, 100);
    const objects = new MemoryObjects();
    const manifest = await committed(objects, pool, [300]);
    await shardedGate(objects, manifest, candidates, { shards: 3 });
    const [shard] = await planShards(objects, manifest, 3);
    const first = objects.objects.get(keys.scores(0));

    await scoreGateShard({ runId, progress, shard: shard as never, step: 'scores' }, { objects });

    expect(first).toBeDefined();
    expect(objects.objects.get(keys.scores(0))).toEqual(first);
  });

  it('plans one shard per position at most, and one empty shard for an empty pool', async () => {
    const objects = new MemoryObjects();
    const manifest = await committed(objects, ['a b c', 'd e f'], [2]);

    expect((await planShards(objects, manifest, 5)).map(({ from, to }) => [from, to])).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect(await planShards(objects, EMPTY_MANIFEST, 5)).toEqual([
      { shard: 0, from: 0, to: 0, segments: [] },
    ]);
  });
});
