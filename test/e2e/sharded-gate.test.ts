/**
 * End to end, through the state machine on the local stack: a run whose pool is past `shardGateAbove`
 * gates every iteration in shard Lambdas ("Gate in shards?" → plan, two Maps of shards, decide, merge)
 * and writes the same `gate.jsonl` (decisions, max, top neighbour, mean) as the same run gated in
 * "Filter and deduplicate".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKeys } from '../../functions/shared/keys.ts';
import { RunSummary } from '../../functions/shared/records.ts';
import { SHARDED_GATE_STATES, STAGES } from '../../functions/stages.ts';
import { LocalStack } from '../../infra/local/stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-sharded-gate-'));
let stack: LocalStack;

const run = async (input: Record<string, unknown>) => {
  const result = await stack.execute(input, { retryIntervalMs: 10 });
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  const entered = result.events.flatMap((event) =>
    event.type === 'StateEntered' && 'state' in event && event.state ? [event.state.name] : [],
  );
  return { summary: RunSummary.parse(result.output), entered };
};

const gateLines = async (runId: string, iteration: number) =>
  (await stack.objects.getText(runKeys(runId, iteration).gate)) as string;

beforeAll(async () => {
  stack = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
}, 120_000);

afterAll(async () => {
  await stack?.close();
  rmSync(work, { recursive: true, force: true });
});

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
    expect(await stack.objects.getText(keys.scores(2))).toBeDefined();

    expect(sharded.summary.iterations).toBe(2);
    expect(sharded.summary.counts).toEqual(whole.summary.counts);
    for (const iteration of [1, 2]) {
      const lines = await gateLines(whole.summary.runId, iteration);
      expect(lines.split('\n').length).toBeGreaterThan(20);
      expect(await gateLines(sharded.summary.runId, iteration)).toBe(lines);
    }
  });
});
