/**
 * Stage "Export dataset": writes the pool's machine-generated tasks with valid instances as a
 * training dataset (JSON Lines with provenance, Alpaca JSON, and the seed-file format, which can seed
 * another run), plus the run's summary, under `exports/<run>/`, and marks the run succeeded.
 */

import { exportKeys } from '../shared/keys.ts';
import { stageUsageCounters, totalUsage, usageOfCalls } from '../shared/model-calls.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, ObjectStreams, PoolStore, RunRecord } from '../shared/ports.ts';
import { formatUsd } from '../shared/pricing/money.ts';
import type { IterationRecord, RunSummary } from '../shared/records.ts';
import type { RunState } from '../shared/schemas.ts';
import { type GatherOptions, gatherPoolFiles } from './pool-files.ts';

/** Why the loop stopped, as the "Enough instructions?" choice decided. */
export function stopReason({ config, progress }: RunState): string {
  if (progress.added >= config.target) {
    return `target reached (${progress.added} ≥ ${config.target} new tasks)`;
  }
  if (!progress.withinBudget) {
    return `budget: another iteration would bring the estimated cost to ${formatUsd(progress.projectedCostUsd)}, over the ${formatUsd(config.maxCostUsd ?? 0)} limit (spent ${formatUsd(progress.costUsd)}; ${progress.added} of ${config.target} new tasks)`;
  }
  if (progress.diversityPlateau && config.diversityPlateau !== false) {
    const { metric, floor, iterations } = config.diversityPlateau;
    return `diversity plateau: ${metric === 'new-pairs' ? 'tasks with a new verb–noun pair' : 'tasks opening a new cluster'} below ${Math.round(floor * 100)}% of those added for ${iterations} iterations in a row (${progress.added} of ${config.target} new tasks)`;
  }
  return `iteration cap reached (${progress.iteration} of ${config.maxIterations}) with ${progress.added} of ${config.target} new tasks`;
}

/**
 * Writes the export: one pass over the pool's committed tasks (`gatherPoolFiles`), then each file
 * streamed to the bucket (`ObjectStreams`: multipart on S3), so memory is bounded whatever the pool's
 * size; then the summary, the run's end and the pool's lease. A retry writes the same files again.
 * `options`: the text kept in memory before it goes to disk (tests make it small), and the most that may
 * go to disk (the function's ephemeral storage), past which it fails with `ExportTooLarge`.
 */
export async function exportDataset(
  state: RunState,
  { objects, pool }: { objects: ObjectStore & ObjectStreams; pool: PoolStore },
  options: GatherOptions = {},
): Promise<RunSummary> {
  const { runId, config, progress } = state;
  const keys = exportKeys(runId);
  await holdPool(pool, state);
  // Committed tasks only: staged work of an iteration that never committed is not part of the pool.
  const files = await gatherPoolFiles(pool.listTasks(config.pool), options);
  try {
    // All three settled before the spilled text goes: one failing must not cut the others' reads short.
    const writes = await Promise.allSettled([
      objects.upload(keys.dataset, files.read('dataset'), 'application/jsonl'),
      objects.upload(keys.alpaca, files.read('alpaca'), 'application/json'),
      objects.upload(keys.tasks, files.read('tasks'), 'application/jsonl'),
    ]);
    for (const write of writes) if (write.status === 'rejected') throw write.reason;
  } finally {
    await files.dispose();
  }

  const run = await pool.getRun(runId);
  // Every billed call of the run, including those of attempts that failed: the sum of its call records.
  const calls = await pool.listCalls(runId, '');
  const byStage = usageOfCalls(calls);
  const total = totalUsage(byStage);
  const iterations = await pool.getIterations(runId);
  const batch = Object.fromEntries(
    Object.entries(iterations).flatMap(([n, stats]) => (stats.batch ? [[n, stats.batch]] : [])),
  );
  const summary = {
    runId,
    pool: config.pool,
    profile: config.profile,
    model: config.model,
    stopReason: stopReason(state),
    config,
    iterations: progress.iteration,
    added: progress.added,
    poolSize: progress.poolSize,
    exportedTasks: files.taskCount,
    exportedRecords: files.recordCount,
    counts: run?.counts ?? {},
    usage: { calls: total.calls, inputTokens: total.inputTokens, outputTokens: total.outputTokens },
    cost: runCost(run, Object.values(iterations), progress.added),
    exportPrefix: keys.prefix,
    files: { dataset: keys.dataset, alpaca: keys.alpaca, tasks: keys.tasks, summary: keys.summary },
    ...(Object.keys(batch).length > 0 ? { batch } : {}),
  } satisfies RunSummary;
  await objects.put(keys.summary, `${JSON.stringify(summary, null, 2)}\n`, 'application/json');
  await pool.finishRun(runId, {
    status: 'SUCCEEDED',
    stopReason: summary.stopReason,
    exportPrefix: keys.prefix,
    iteration: progress.iteration,
    usage: summary.usage,
    stageUsage: stageUsageCounters(byStage),
  });
  await pool.releasePool(config.pool, runId);
  return summary;
}

function runCost(
  run: RunRecord | undefined,
  iterations: readonly IterationRecord[],
  added: number,
): RunSummary['cost'] {
  const modelUsd = run?.cost?.modelUsd ?? 0;
  const awsUsd = run?.cost?.awsUsd ?? 0;
  const totalUsd = modelUsd + awsUsd;
  return {
    modelUsd,
    awsUsd,
    totalUsd,
    perTaskUsd: added > 0 ? totalUsd / added : null,
    per1000TasksUsd: added > 0 ? (1000 * totalUsd) / added : null,
    modelUnpriced: iterations.some((iteration) => iteration.cost.modelUnpriced),
  };
}
