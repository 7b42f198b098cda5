/**
 * Stage "Save iteration" (Self-Instruct step 5): the accepted tasks join the pool. It promotes the
 * iteration's ROUGE-L index to the pool's, writes the pool snapshot of the tasks the iteration added,
 * adds the iteration's counts and token usage to the run record (once, even when retried) and returns
 * the run's new progress, which the "Enough instructions?" choice reads. Its output replaces the
 * whole execution state, so the state stays small however many iterations run.
 */
import { z } from 'zod';
import { poolKeys, runKeys } from '../shared/keys.ts';
import { addUsageByStage, fromJsonLines, toJsonLines, totalUsage } from '../shared/model-calls.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore } from '../shared/ports.ts';
import { DEFAULT_USAGE_ASSUMPTIONS, iterationAwsUsage } from '../shared/pricing/aws-usage.ts';
import { awsCost, modelCost } from '../shared/pricing/pricing.ts';
import { priceTable } from '../shared/pricing/run-prices.ts';
import { addCounts, Chunk, Counts, RunState, UsageByStage } from '../shared/schemas.ts';

export const SaveInput = RunState.extend({
  generated: z.object({
    prompts: z.int(),
    candidates: z.int(),
    malformed: z.int(),
    droppedByTruncation: z.int(),
    usage: UsageByStage,
  }),
  gated: z.object({ chunks: z.array(Chunk), counts: Counts }),
  instances: z.array(z.object({ chunk: z.int(), counts: Counts, usage: UsageByStage })),
});
export type SaveInput = z.infer<typeof SaveInput>;

export async function saveIteration(
  { runId, config, progress, generated, gated, instances }: SaveInput,
  { objects, pool }: { objects: ObjectStore; pool: PoolStore },
): Promise<RunState> {
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration);
  // Still ours? (A lease that expired may have been taken by another run: then stop, writing nothing.)
  await holdPool(pool, config.pool, runId);
  const poolPaths = poolKeys(config.pool);

  const counts: Counts = {
    prompts: generated.prompts,
    'reply-malformed': generated.malformed,
    'reply-truncated': generated.droppedByTruncation,
  };
  addCounts(counts, gated.counts);
  for (const result of instances) addCounts(counts, result.counts);
  const byStage = instances.reduce(
    (sum, result) => addUsageByStage(sum, result.usage),
    addUsageByStage({}, generated.usage),
  );
  const { calls, inputTokens, outputTokens, estimated } = totalUsage(byStage);
  const stageUsage = Object.fromEntries(
    Object.entries(byStage).flatMap(([stage, usage]) => [
      [`${stage}:calls`, usage.calls],
      [`${stage}:inputTokens`, usage.inputTokens],
      [`${stage}:outputTokens`, usage.outputTokens],
    ]),
  );
  const complete = counts.complete ?? 0;

  const tasks = (
    await Promise.all(gated.chunks.map((chunk) => objects.getText(keys.chunkTasks(chunk.index))))
  ).flatMap((text) => fromJsonLines(text));
  await objects.put(poolPaths.snapshot(runId, iteration), toJsonLines(tasks), 'application/jsonl');
  await objects.copy(keys.index, poolPaths.index);

  // Once per iteration, even if this state is retried after a partial success.
  const cost = await iterationCost(
    { config, byStage, poolSize: progress.poolSize },
    { generated, accepted: counts.accepted ?? 0, mapItems: gated.chunks.length },
    objects,
  );
  const update = {
    stats: { counts, usage: byStage, tokensEstimated: estimated, cost },
    increments: {
      counts,
      usage: { calls, inputTokens, outputTokens },
      stageUsage,
      cost: {
        modelUsd: cost.modelUsd,
        awsUsd: cost.awsUsd,
        totalUsd: cost.totalUsd,
        ...Object.fromEntries(
          Object.entries(cost.modelUsdByStage).map(([stage, usd]) => [`model:${stage}`, usd]),
        ),
      },
    },
  };
  if (await pool.addIteration(runId, iteration, update)) {
    await pool.addToPoolCount(config.pool, complete);
  }

  const costUsd = progress.costUsd + cost.totalUsd;
  // After one more iteration like this one: what "Enough instructions?" holds against the budget.
  const projectedCostUsd = costUsd + cost.totalUsd;
  return {
    runId,
    config,
    progress: {
      iteration,
      added: progress.added + complete,
      poolSize: await pool.countComplete(config.pool),
      yieldPerPrompt: generated.prompts > 0 ? complete / generated.prompts : progress.yieldPerPrompt,
      costUsd,
      projectedCostUsd,
      withinBudget: config.maxCostUsd === undefined || projectedCostUsd <= config.maxCostUsd,
    },
  };
}

/** Estimated cost of one iteration: its model tokens at the price table's rates, and its AWS usage. */
export interface IterationCost {
  modelUsd: number;
  awsUsd: number;
  totalUsd: number;
  /** Model USD per step that calls the model. */
  modelUsdByStage: Record<string, number>;
  /** True when the model has no price in the table (its cost then counts as 0) . */
  modelUnpriced: boolean;
}

async function iterationCost(
  { config, byStage, poolSize }: { config: RunState['config']; byStage: UsageByStage; poolSize: number },
  shape: { generated: SaveInput['generated']; accepted: number; mapItems: number },
  objects: ObjectStore,
): Promise<IterationCost> {
  const table = await priceTable(config.priceTableKey, objects);
  const modelUsdByStage: Record<string, number> = {};
  let modelUnpriced = false;
  for (const [stage, usage] of Object.entries(byStage)) {
    const priced = modelCost(table, config.model, usage);
    if (!priced.priced) modelUnpriced = true;
    modelUsdByStage[stage] = priced.usd ?? 0;
  }
  const map = Object.entries(byStage).filter(([stage]) => stage !== 'generate-instructions');
  const aws = awsCost(
    table,
    iterationAwsUsage(
      {
        instructionCalls: shape.generated.prompts,
        instructionOutputTokens: byStage['generate-instructions']?.outputTokens ?? 0,
        candidates: shape.generated.candidates,
        acceptedInstructions: shape.accepted,
        mapItems: shape.mapItems,
        mapCalls: map.reduce((sum, [, usage]) => sum + usage.calls, 0),
        mapOutputTokens: map.reduce((sum, [, usage]) => sum + usage.outputTokens, 0),
        poolInstructions: poolSize,
      },
      { ...DEFAULT_USAGE_ASSUMPTIONS, callConcurrency: config.callConcurrency },
    ),
  );
  const modelUsd = Object.values(modelUsdByStage).reduce((sum, usd) => sum + usd, 0);
  return { modelUsd, awsUsd: aws.usd, totalUsd: modelUsd + aws.usd, modelUsdByStage, modelUnpriced };
}
