/**
 * Stage "Export dataset": writes the pool's machine-generated tasks with valid instances as a
 * training dataset (JSON Lines with provenance, Alpaca JSON, and the seed-file format, which can seed
 * another run), plus the run's summary, under `exports/<run>/`, and marks the run succeeded.
 */

import { toAlpacaRecord, toRecords, toSeedFormat } from '../shared/exports/formats.ts';
import { exportKeys } from '../shared/keys.ts';
import { stageUsageCounters, totalUsage, usageOfCalls } from '../shared/model-calls.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, PoolTask, RunRecord } from '../shared/ports.ts';
import { formatUsd } from '../shared/pricing/money.ts';
import type { IterationRecord, RunSummary } from '../shared/records.ts';
import type { RunState } from '../shared/schemas.ts';

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

export async function exportDataset(
  state: RunState,
  { objects, pool }: { objects: ObjectStore; pool: PoolStore },
): Promise<RunSummary> {
  const { runId, config, progress } = state;
  const keys = exportKeys(runId);
  await holdPool(pool, config.pool, runId, progress.fence);
  // Committed tasks only: staged work of an iteration that never committed is not part of the pool.
  const files = await serializePool(pool.listTasks(config.pool));
  await objects.put(keys.dataset, files.dataset, 'application/jsonl');
  await objects.put(keys.alpaca, files.alpaca, 'application/json');
  await objects.put(keys.tasks, files.tasks, 'application/jsonl');

  const run = await pool.getRun(runId);
  // Every billed call of the run, including those of attempts that failed: the sum of its call records.
  const calls = await pool.listCalls(runId, '');
  const byStage = usageOfCalls(calls);
  const total = totalUsage(byStage);
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
    cost: runCost(run, Object.values(await pool.getIterations(runId)), progress.added),
    exportPrefix: keys.prefix,
    files: { dataset: keys.dataset, alpaca: keys.alpaca, tasks: keys.tasks, summary: keys.summary },
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

/** The export's three files and what they hold. */
export interface SerializedPool {
  dataset: string;
  alpaca: string;
  tasks: string;
  taskCount: number;
  recordCount: number;
}

/**
 * The pool's machine tasks with valid instances as the export's files, oldest first: by run, then
 * iteration, then id. One pass over the paged query: each task is turned into its lines as its page
 * arrives and only the lines are kept (grouped by run and iteration; the query returns id order, so each
 * group is in order as it fills), never the pool's items, records or a second copy of them.
 * `alpaca.json` is the one array `JSON.stringify(records, null, 2)` writes, built entry by entry.
 */
export async function serializePool(items: AsyncIterable<PoolTask>): Promise<SerializedPool> {
  const groups = new Map<
    string,
    { runId: string; iteration: number; dataset: string[]; alpaca: string[]; tasks: string[] }
  >();
  let taskCount = 0;
  let recordCount = 0;
  for await (const item of items) {
    if (item.source !== 'machine' || item.status !== 'complete') continue;
    const task = toSeedFormat(item);
    const runId = task.run_id ?? '';
    const iteration = task.iteration ?? 0;
    const name = `${runId}\u0000${iteration}`;
    let group = groups.get(name);
    if (group === undefined) {
      group = { runId, iteration, dataset: [], alpaca: [], tasks: [] };
      groups.set(name, group);
    }
    group.tasks.push(JSON.stringify(task));
    taskCount++;
    for (const record of toRecords(task)) {
      group.dataset.push(JSON.stringify(record));
      // An entry of the pretty-printed array: its lines indented one level.
      group.alpaca.push(`  ${JSON.stringify(toAlpacaRecord(record), null, 2).replaceAll('\n', '\n  ')}`);
      recordCount++;
    }
  }
  const ordered = [...groups.values()].sort(
    (a, b) => a.runId.localeCompare(b.runId) || a.iteration - b.iteration,
  );
  const lines = (pick: (group: (typeof ordered)[number]) => string[]) =>
    ordered
      .flatMap(pick)
      .map((line) => `${line}\n`)
      .join('');
  const alpaca = ordered.flatMap((group) => group.alpaca);
  return {
    dataset: lines((group) => group.dataset),
    tasks: lines((group) => group.tasks),
    alpaca: alpaca.length === 0 ? '[]\n' : `[\n${alpaca.join(',\n')}\n]\n`,
    taskCount,
    recordCount,
  };
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
