/**
 * End to end, through the state machine on the local stack: a run whose pool is past `shardGateAbove`
 * gates every iteration in shard Lambdas ("Gate in shards?" → plan, two Maps of shards, decide, merge)
 * and writes the same `gate.jsonl` (decisions, max, top neighbour, mean) as the same run gated in
 * "Filter and deduplicate".
 */
import { describe, expect, it } from 'vitest';
import { runKeys } from '../../functions/shared/keys.ts';
import { SHARDED_GATE_STATES, STAGES } from '../../functions/stages.ts';
import { useLocalStack } from '../support/local-stack.ts';

const local = useLocalStack('sharded-gate');
const { run } = local;

const gateLines = async (runId: string, iteration: number) =>
  (await local.stack.objects.getText(runKeys(runId, iteration).gate)) as string;

describe('the gate in shards', { timeout: 300_000 }, () => {
  it('gates a pool past the threshold in 3 shard Lambdas and writes the gate.jsonl of the gate in one', async () => {
    // A fixed seed: the offline model's replies, so the candidates, are the same in both runs.
    const input = { seed: 'sharded-gate-e2e', target: 1000, maxIterations: 2, promptsPerIteration: 6 };
    const whole = await run({ ...input, pool: 'whole' });
    const sharded = await run({ ...input, pool: 'sharded', shardGateAbove: 1, gateShards: 3 });

    expect(whole.entered).toContain(STAGES.filter.state);
    expect(whole.entered).not.toContain(STAGES.gateShard.mapState);
    expect(sharded.entered).not.toContain(STAGES.filter.state);
    for (const name of [
      SHARDED_GATE_STATES.plan,
      STAGES.gateShard.mapState,
      SHARDED_GATE_STATES.decide,
      SHARDED_GATE_STATES.rescoreMap,
      SHARDED_GATE_STATES.merge,
    ]) {
      expect(
        sharded.entered.filter((entered) => entered === name),
        name,
      ).toHaveLength(2);
    }
    // Three shards each iteration, each a Map item of both Maps.
    expect(sharded.entered.filter((name) => name === STAGES.gateShard.state)).toHaveLength(6);
    expect(sharded.entered.filter((name) => name === SHARDED_GATE_STATES.rescore)).toHaveLength(6);
    const keys = runKeys(sharded.summary.runId, 2).gateShards;
    expect(await local.stack.objects.getText(keys.scores(2))).toBeDefined();

    expect(sharded.summary.iterations).toBe(2);
    expect(sharded.summary.counts).toEqual(whole.summary.counts);
    // The same calls, so the same model cost; the AWS cost of each iteration includes its shards.
    expect(sharded.summary.cost?.modelUsd).toBe(whole.summary.cost?.modelUsd);
    expect(sharded.summary.cost?.awsUsd).toBeGreaterThan(whole.summary.cost?.awsUsd ?? Infinity);
    for (const iteration of [1, 2]) {
      const lines = await gateLines(whole.summary.runId, iteration);
      expect(lines.split('\n').length).toBeGreaterThan(20);
      expect(await gateLines(sharded.summary.runId, iteration)).toBe(lines);
    }
  });
});
