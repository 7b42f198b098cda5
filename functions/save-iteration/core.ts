/**
 * Stage "Save iteration" (Self-Instruct step 5): the accepted tasks join the pool. It counts the
 * iteration's tasks from their items, sums its billed calls from their records, and commits the
 * iteration with one conditional write on the pool's `META` item (the complete tasks added to the
 * pool's count, `META` pointing at the iteration's ROUGE-L index), which holds only while the run holds
 * the lease with its fencing token and has not committed the iteration yet. Then, redone by a retry
 * as often as needed: the tasks' staged markers are cleared, the iteration's snapshot written, and its
 * counts, usage and cost added to the run record once. It returns the run's new progress, which the
 * "Enough instructions?" choice reads; its output replaces the whole execution state, so the state stays
 * small however many iterations run.
 */
import { z } from 'zod';
import { IterationIncomplete, PoolBusy } from '../shared/errors.ts';
import { historyEventsLimit, nextIterationFits } from '../shared/execution-limits.ts';
import { poolKeys, runKeys } from '../shared/keys.ts';
import { stageUsageCounters, totalUsage, usageOfCalls } from '../shared/model-calls.ts';
import { nearDuplicateGateOn } from '../shared/models/embedding-ids.ts';
import { stagedBy, writeSnapshot } from '../shared/pool-commit.ts';
import { holdPool } from '../shared/pool-lease.ts';
import {
  EMBEDDING_STAGE,
  JUDGE_STAGE,
  type ObjectStore,
  type PoolStore,
  type PoolTask,
  SAFETY_STAGE,
  TEACH_STAGE,
} from '../shared/ports.ts';
import { DEFAULT_USAGE_ASSUMPTIONS, gateShardsFor, iterationAwsUsage } from '../shared/pricing/aws-usage.ts';
import { awsCost, modelCost } from '../shared/pricing/pricing.ts';
import { priceTable } from '../shared/pricing/run-prices.ts';
import type { IterationCost, IterationDiversity, IterationRecord } from '../shared/records.ts';
import { GUARDRAIL_PRICE_ID } from '../shared/safety.ts';
import {
  addCounts,
  type Counts,
  type RunConfig,
  type RunState,
  type SaveInput,
  taskCounts,
  type UsageByStage,
} from '../shared/schemas.ts';
import { iterationBatch } from './batch.ts';
import { lowDiversityStreak, measureDiversity } from './diversity.ts';

/**
 * The iteration's counts for the run record. `generated` counts the candidates the replies were parsed
 * into, and `accepted` plus every instruction rejection reason (filters, `rouge`, `duplicate`) adds up
 * to it; `unparseable` counts the reply items (or whole replies) that could not be parsed into a
 * candidate (`reply-malformed` + `reply-truncated`), so `generated + unparseable` is every item the
 * model returned. `lost` counts calls given up after their retries. The tasks' outcomes (complete,
 * rejected by reason, instances dropped) come from the task items, whichever delivery finished them.
 */
export function iterationCounts(
  generated: SaveInput['generated'],
  gated: SaveInput['gated'],
  tasks: readonly PoolTask[],
  instanceCallsLost: number,
): Counts {
  const unparseable = generated.malformed + generated.droppedByTruncation;
  const counts: Counts = {
    prompts: generated.prompts,
    'reply-malformed': generated.malformed,
    'reply-truncated': generated.droppedByTruncation,
    unparseable,
    lost: generated.lost + instanceCallsLost,
    ...(generated.notRecorded ? { 'reply-not-recorded': generated.notRecorded } : {}),
    complete: 0,
    rejected: 0,
  };
  addCounts(counts, gated.counts);
  for (const task of tasks) addCounts(counts, taskCounts(task));
  return counts;
}

export async function saveIteration(
  { runId, config, progress, execution, generated, gated, executionStartTime }: SaveInput,
  { objects, pool, now = () => new Date() }: { objects: ObjectStore; pool: PoolStore; now?: () => Date },
): Promise<RunState> {
  const iteration = progress.iteration + 1;
  const staged = stagedBy(runId, iteration);
  const poolPaths = poolKeys(config.pool);
  await holdPool(pool, { runId, config, progress, execution });

  // The iteration's tasks, as their items say (a duplicated Map item can't count one twice).
  const ids = gated.chunks.flatMap((chunk) => chunk.ids);
  const tasks = (await pool.getTasks(config.pool, ids)).filter(
    (task) => task.runId === runId && task.iteration === iteration,
  );
  const pending = tasks.filter((task) => task.status === 'pending');
  if (pending.length > 0) {
    // A Map item reported success without finishing these: never expected, but never counted silently.
    throw new IterationIncomplete(
      `Iteration ${iteration} of run ${runId} has ${pending.length} unfinished tasks (e.g. ${pending[0]?.id}); not committing it`,
    );
  }
  const complete = tasks.filter((task) => task.status === 'complete').length;
  const calls = await pool.listCalls(runId, `${iteration}#`);
  const byStage = usageOfCalls(calls);
  // Calls given up after their retries: the instance calls of rejected tasks, the judge calls of kept ones.
  const instanceCallsLost = tasks.filter(
    (task) => task.rejectReason === 'model-call-failed' || task.outcome?.['judge-call-failed'] !== undefined,
  ).length;
  const counts = iterationCounts(generated, gated, tasks, instanceCallsLost);

  const meta = await pool.getMeta(config.pool);
  if (!(meta?.commit?.runId === runId && meta.commit.iteration >= iteration)) {
    // The iteration's index segment and demonstrations sample, then the manifest that lists them (only
    // these new, small objects: the pool's other segments stay where they are).
    const iterationKeys = runKeys(runId, iteration);
    await copyIfPresent(objects, iterationKeys.segment, poolPaths.segment(runId, iteration));
    await copyIfPresent(objects, iterationKeys.demonstrations, poolPaths.demonstrations(runId, iteration));
    const indexKey = poolPaths.indexVersion(runId, iteration);
    await objects.copy(iterationKeys.index, indexKey);
    // The near-duplicate gate's vectors, when it ran (else the pool keeps the ones it has).
    const vectorsKey = nearDuplicateGateOn(config) ? poolPaths.vectorsVersion(runId, iteration) : undefined;
    if (vectorsKey !== undefined) await objects.copy(runKeys(runId, iteration).vectors, vectorsKey);
    const result = await pool.commit(config.pool, {
      runId,
      iteration,
      fence: progress.fence,
      complete,
      indexKey,
      vectorsKey,
    });
    if (result === 'lease-lost') {
      throw new PoolBusy(
        `Run ${runId} lost the lease of pool "${config.pool}" before iteration ${iteration} committed`,
      );
    }
  }

  // After the commit: each step can be redone.
  await pool.clearStaged(config.pool, ids, staged);
  await writeSnapshot(objects, config.pool, runId, iteration, tasks);
  const diversity = await saveDiversity({ runId, iteration, config, counts, tasks }, objects);
  const { calls: callCount, inputTokens, outputTokens, estimated } = totalUsage(byStage);
  const stageUsage = stageUsageCounters(byStage);
  const batch = await iterationBatch(objects, runId, iteration, calls);
  const cost = await iterationCost(
    {
      config,
      byStage,
      batchByStage: usageOfCalls(calls.filter((call) => call.batch)),
      poolSize: progress.poolSize,
    },
    {
      generated,
      accepted: counts.accepted ?? 0,
      mapItems: gated.chunks.length,
      batchLooks: batch?.looks ?? 0,
    },
    objects,
  );
  await pool.addIteration(runId, iteration, {
    stats: {
      counts,
      usage: byStage,
      tokensEstimated: estimated,
      cost,
      diversity,
      ...(batch === undefined ? {} : { batch }),
    } satisfies IterationRecord,
    increments: {
      counts,
      usage: { calls: callCount, inputTokens, outputTokens },
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
  });

  const costUsd = progress.costUsd + cost.totalUsd;
  const rule = config.diversityPlateau;
  const lowDiversity = rule === false ? 0 : lowDiversityStreak(diversity, rule, progress.lowDiversity);
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
      fence: progress.fence,
      lowDiversity,
      diversityPlateau: rule !== false && lowDiversity >= rule.iterations,
      execution: progress.execution,
      executionFirstIteration: progress.executionFirstIteration,
      withinHistory: nextIterationFits(
        config,
        { iteration, executionFirstIteration: progress.executionFirstIteration },
        historyEventsLimit(),
        executionStartTime === undefined
          ? undefined
          : { startedAt: new Date(executionStartTime), now: now() },
      ),
    },
  };
}

/** Copies `from` to `to` when `from` exists (an iteration that accepted nothing wrote no segment). */
async function copyIfPresent(objects: ObjectStore, from: string, to: string): Promise<void> {
  const bytes = await objects.getBytes(from);
  if (bytes !== undefined) await objects.put(to, bytes);
}

/**
 * Measures the iteration's diversity against the verb–noun pairs earlier iterations of the run added
 * (read from the previous iteration's list, written again for this one: a retry reads the same list and
 * reaches the same figures).
 */
async function saveDiversity(
  {
    runId,
    iteration,
    config,
    counts,
    tasks,
  }: {
    runId: string;
    iteration: number;
    config: RunState['config'];
    counts: Counts;
    tasks: readonly PoolTask[];
  },
  objects: ObjectStore,
): Promise<IterationDiversity> {
  const previous = iteration > 1 ? await objects.getText(runKeys(runId, iteration - 1).pairs) : undefined;
  const seen = new Set<string>(previous === undefined ? [] : z.array(z.string()).parse(JSON.parse(previous)));
  const diversity = measureDiversity(
    tasks.filter((task) => task.status === 'complete'),
    seen,
    {
      generated: counts.generated ?? 0,
      accepted: counts.accepted ?? 0,
      newClusterCosine: config.newClusterCosine,
    },
  );
  await objects.put(runKeys(runId, iteration).pairs, JSON.stringify([...seen]), 'application/json');
  return diversity;
}

const runModel = (config: RunConfig) => config.model;

/**
 * The price id each step's calls are billed at, where it is not the run's model: embedding calls at the
 * embedding model's, judge calls at the judge's, teacher calls at the teacher's, guardrail calls (their
 * text units) at the guardrail's.
 */
const STAGE_PRICED_AS: Readonly<Record<string, (config: RunConfig) => string>> = {
  [EMBEDDING_STAGE]: (config) => config.embeddingModel ?? config.model,
  [JUDGE_STAGE]: (config) => config.judgeModel ?? config.model,
  [TEACH_STAGE]: (config) => config.teacherModel ?? config.model,
  [SAFETY_STAGE]: () => GUARDRAIL_PRICE_ID,
};

/** Estimated cost of one iteration: its model tokens at the price table's rates, and its AWS usage. */
async function iterationCost(
  {
    config,
    byStage,
    batchByStage,
    poolSize,
  }: {
    config: RunState['config'];
    byStage: UsageByStage;
    /** The part of `byStage` that batch jobs answered (batch mode): priced at the batch rate. */
    batchByStage: UsageByStage;
    poolSize: number;
  },
  shape: {
    generated: SaveInput['generated'];
    accepted: number;
    mapItems: number;
    /** Batch mode: the poll loop's looks at the iteration's job (its submit, checks and states billed). */
    batchLooks: number;
  },
  objects: ObjectStore,
): Promise<IterationCost> {
  const table = await priceTable(config.priceTableKey, objects);
  const modelUsdByStage: Record<string, number> = {};
  let modelUnpriced = false;
  for (const [stage, usage] of Object.entries(byStage)) {
    const model = (STAGE_PRICED_AS[stage] ?? runModel)(config);
    const batched = batchByStage[stage];
    const onDemand = batched
      ? {
          inputTokens: usage.inputTokens - batched.inputTokens,
          outputTokens: usage.outputTokens - batched.outputTokens,
        }
      : usage;
    const prices = [
      modelCost(table, model, onDemand),
      ...(batched ? [modelCost(table, model, batched, { batch: true })] : []),
    ];
    if (prices.some((priced) => !priced.priced)) modelUnpriced = true;
    modelUsdByStage[stage] = prices.reduce((sum, priced) => sum + (priced.usd ?? 0), 0);
  }
  const map = Object.entries(byStage).filter(
    ([stage]) => stage !== 'generate-instructions' && stage !== EMBEDDING_STAGE,
  );
  const aws = awsCost(
    table,
    iterationAwsUsage(
      {
        instructionCalls: shape.generated.prompts,
        instructionBatches: Math.ceil(shape.generated.prompts / config.instructionBatchSize),
        instructionOutputTokens: byStage['generate-instructions']?.outputTokens ?? 0,
        candidates: shape.generated.candidates,
        acceptedInstructions: shape.accepted,
        mapItems: shape.mapItems,
        mapCalls: map.reduce((sum, [, usage]) => sum + usage.calls, 0),
        mapOutputTokens: map.reduce((sum, [, usage]) => sum + usage.outputTokens, 0),
        poolInstructions: poolSize,
        // The pool "Gate in shards?" saw when the iteration started.
        gateShards: gateShardsFor(config, poolSize),
        batchLooks: shape.batchLooks,
      },
      { ...DEFAULT_USAGE_ASSUMPTIONS, callConcurrency: config.callConcurrency },
    ),
  );
  const modelUsd = Object.values(modelUsdByStage).reduce((sum, usd) => sum + usd, 0);
  return { modelUsd, awsUsd: aws.usd, totalUsd: modelUsd + aws.usd, modelUsdByStage, modelUnpriced };
}
