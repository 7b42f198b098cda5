/**
 * Writes a planned import (`plan.ts`) into a pool the way the stages write their work, so that a later
 * run and `export --pool` see it as they see a run's: under the pool's lease (`pool-lease.ts`), after
 * finishing or removing what a dead run left (`recoverPool`), the tasks are staged under the marker
 * `<import id>#1` (seeds as "Prepare run" stages them, the rest as complete or rejected tasks of
 * iteration 1), the ROUGE-L index with their instructions is written under a new key, and one conditional
 * commit on the pool's `META` counts them and points at the index (and the seed list); then the markers
 * are cleared, the iteration's snapshot written and the import recorded as a run (`RunRecord`, id
 * `import-…`, its counts in `iterations.1`). With `gate`, the tasks meet the ROUGE-L gate in order first,
 * against the pool and every task accepted before them, as candidates do ("Filter and deduplicate"), and
 * the decisions are written to `runs/<import id>/iteration-1/gate.jsonl`.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import { seedToPoolTask } from '../../../functions/prepare/core.ts';
import { committedSample, extendSample } from '../../../functions/shared/demonstrations.ts';
import { type Decision, DecisionWriter } from '../../../functions/shared/engine/decisions.ts';
import { type GateResult, gate } from '../../../functions/shared/engine/gate.ts';
import { verbNouns } from '../../../functions/shared/engine/verb-noun.ts';
import { PoolBusy } from '../../../functions/shared/errors.ts';
import { fromJsonLines, toJsonLines } from '../../../functions/shared/json-lines.ts';
import { poolKeys, runKeys } from '../../../functions/shared/keys.ts';
import { recoverPool, stagedBy, writeSnapshot } from '../../../functions/shared/pool-commit.ts';
import { instructionKey, taskId } from '../../../functions/shared/pool-ids.ts';
import {
  appendSegment,
  committedManifest,
  committedPool,
  loadIndex,
} from '../../../functions/shared/pool-index.ts';
import { POOL_LEASE_MS } from '../../../functions/shared/pool-lease.ts';
import type { ObjectStore, PoolStore, PoolTask } from '../../../functions/shared/ports.ts';
import { createRng } from '../../../functions/shared/random.ts';
import type { IterationRecord, MachineSample } from '../../../functions/shared/records.ts';
import { addCounts, type Counts, type SeedTask, taskCounts } from '../../../functions/shared/schemas.ts';
import type { ImportPlan, PlannedTask } from './plan.ts';

/** The iteration an import commits its tasks as. */
export const IMPORT_ITERATION = 1;

/** Where to import, and how. */
export interface ImportTarget {
  pool: string;
  /** The import's run id (`import-…`): the provenance of its tasks. */
  importId: string;
  /** Gate the tasks with ROUGE-L, in order, against the pool (else they are added as they are). */
  gate: boolean;
  /** The gate's threshold. @default 0.7 */
  rougeThreshold?: number;
}

export interface ImportDeps {
  objects: ObjectStore;
  pool: PoolStore;
  now?: () => Date;
  /**
   * Whether the run holding the pool's lease has ended. @default its run record says it is not running
   * (the local CLI: always, since one process at a time opens a data folder)
   */
  ended?: (runId: string) => Promise<boolean>;
}

/** What an import did. */
export interface ImportResult {
  importId: string;
  pool: string;
  /** `read`, `duplicate`, `rouge`, `complete`, `rejected` with their reasons, `seeds`, instance outcomes. */
  counts: Counts;
  /** Complete tasks in the pool after the import, seeds included. */
  poolSize: number;
  snapshotKey: string;
  /** The gate's decisions (with `gate`). */
  decisionsKey?: string;
}

/** Imports `plan` into `target.pool` (see the module comment). Throws `PoolBusy` while a live run holds the pool. */
export async function applyImport(
  plan: ImportPlan,
  target: ImportTarget,
  { objects, pool, now = () => new Date(), ended }: ImportDeps,
): Promise<ImportResult> {
  const { pool: name, importId } = target;
  const fence = await takeLease(pool, name, importId, now(), ended);
  try {
    await recoverPool(pool, objects, name, { except: importId });
    await pool.putRun({
      runId: importId,
      pool: name,
      status: 'RUNNING',
      config: {
        import: {
          files: plan.files,
          seeds: plan.seedsFile,
          gate: target.gate,
          rougeThreshold: target.gate ? (target.rougeThreshold ?? 0.7) : undefined,
        },
      },
      startedAt: now().toISOString(),
      iteration: 0,
    });
    const result = await importTasks(plan, target, fence, { objects, pool, now });
    const stats: IterationRecord = {
      counts: result.counts,
      usage: {},
      tokensEstimated: false,
      cost: { modelUsd: 0, awsUsd: 0, totalUsd: 0, modelUsdByStage: {}, modelUnpriced: false },
    };
    await pool.addIteration(importId, IMPORT_ITERATION, { stats, increments: { counts: result.counts } });
    await pool.finishRun(importId, {
      status: 'SUCCEEDED',
      stopReason: 'imported',
      iteration: IMPORT_ITERATION,
    });
    return result;
  } catch (error) {
    await pool
      .finishRun(importId, {
        status: 'FAILED',
        error: (error as Error).name,
        cause: (error as Error).message,
      })
      .catch(() => undefined);
    throw error;
  } finally {
    await pool.releasePool(name, importId);
  }
}

/** Takes the pool's lease for the import, from a holder that has ended too (marking its run abandoned). */
async function takeLease(
  pool: PoolStore,
  name: string,
  importId: string,
  now: Date,
  ended = async (runId: string) => {
    const run = await pool.getRun(runId);
    return run !== undefined && run.status !== 'RUNNING';
  },
): Promise<number> {
  const holder = (await pool.getMeta(name))?.lease?.runId;
  const abandoned = holder !== undefined && (await ended(holder)) ? holder : undefined;
  const lease = await pool.takeLease(name, importId, new Date(now.getTime() + POOL_LEASE_MS), now, abandoned);
  if (!lease.taken) {
    throw new PoolBusy(
      `Pool "${name}" is being grown by run ${lease.holder} (its lease runs until ${lease.until}); import once it has ended`,
    );
  }
  if (abandoned !== undefined && (await pool.getRun(abandoned))?.status === 'RUNNING') {
    await pool.finishRun(abandoned, {
      status: 'FAILED',
      error: 'RunAbandoned',
      cause: `it no longer runs; ${importId} took pool "${name}" over`,
    });
  }
  return lease.fence;
}

async function importTasks(
  plan: ImportPlan,
  { pool: name, importId, gate: gated, rougeThreshold }: ImportTarget,
  fence: number,
  { objects, pool, now }: Required<Pick<ImportDeps, 'objects' | 'pool' | 'now'>>,
): Promise<ImportResult> {
  const staged = stagedBy(importId, IMPORT_ITERATION);
  const keys = poolKeys(name);
  const createdAt = now().toISOString();
  const limit = pLimit(16);
  const counts: Counts = { ...plan.counts };
  const committed = await committedPool(pool, name);
  const manifest = await committedManifest(objects, committed);
  const index = await loadIndex(objects, committed.indexKey);
  const committedSize = index.size;
  const known = new Set(index.instructions.map(instructionKey));

  // The seeds first, as "Prepare run" adds a seed file's: those the pool's seed list lacks.
  const seedList = fromJsonLines<SeedTask>(await objects.getText(committed.seedsKey));
  const seedIds = new Set(seedList.map((task) => taskId(task.instruction)));
  const freshSeeds = plan.seeds.filter((task) => {
    const id = taskId(task.instruction);
    return !seedIds.has(id) && seedIds.add(id);
  });
  const storedSeeds = await putAll(freshSeeds, limit, (task) =>
    pool.putTaskIfAbsent({ ...seedToPoolTask(name, task, importId, createdAt), staged }),
  );
  for (const task of storedSeeds) {
    index.add(task.instruction.trim());
    known.add(instructionKey(task.instruction));
  }
  if (storedSeeds.length > 0) counts.seeds = storedSeeds.length;

  // Then the tasks, in file order: through the gate, or added as they are.
  const reject = (reason: string) => {
    counts[reason] = (counts[reason] ?? 0) + 1;
  };
  const results: (GateResult | undefined)[] = gated
    ? gate(
        index,
        plan.tasks.map((task) => task.instruction),
        { threshold: rougeThreshold },
      )
    : plan.tasks.map(() => undefined);
  const decisions: Decision[] = [];
  const admitted: { task: PlannedTask; gated?: GateResult }[] = [];
  plan.tasks.forEach((task, i) => {
    const result = results[i];
    const decision: Decision = {
      raw: task.instruction,
      instruction: task.instruction,
      filtered: null,
      reason: result && !result.accepted ? 'rouge' : null,
      gated: result,
    };
    // Accepted by a gate of threshold 1, or not gated: the same instruction is never stored twice.
    if (decision.reason === null && known.has(instructionKey(task.instruction)))
      decision.reason = 'duplicate';
    if (decision.reason === null) {
      known.add(instructionKey(task.instruction));
      if (!gated) index.add(task.instruction);
      decision.id = task.id;
      admitted.push({ task, gated: result });
    } else reject(decision.reason);
    decisions.push(decision);
  });

  const items = admitted.map(({ task, gated }) =>
    toPoolTask(task, gated, { name, importId, staged, createdAt }),
  );
  const complete = items.filter((item) => item.status === 'complete');
  verbNouns(complete.map((item) => item.instruction)).forEach((pair, i) => {
    (complete[i] as PoolTask).verbNoun = pair ?? null;
  });
  const stored = await putAll(items, limit, (item) => pool.putTaskIfAbsent(item));
  // Already in the pool without being in its index (never expected): a duplicate all the same.
  for (let n = items.length - stored.length; n > 0; n--) reject('duplicate');
  for (const item of stored) addCounts(counts, taskCounts(item));

  let decisionsKey: string | undefined;
  if (gated) {
    decisionsKey = runKeys(importId, IMPORT_ITERATION).gate;
    await objects.put(decisionsKey, new DecisionWriter().lines(decisions), 'application/jsonl');
  }
  // The committed index plus segments of what the import added (its seeds, then its tasks), and the
  // demonstrations sample extended with the tasks, as "Prepare run" and a commit of "Save iteration" do.
  const indexKey = keys.indexVersion(importId, IMPORT_ITERATION);
  const seedTexts = storedSeeds.map((task) => task.instruction.trim());
  const taskTexts = index.instructions.slice(committedSize + seedTexts.length, index.size) as string[];
  const withSeeds = await appendSegment(
    objects,
    manifest,
    { writeTo: keys.segment(importId, 0), key: keys.segment(importId, 0), seeds: true },
    seedTexts,
  );
  const withTasks = await appendSegment(
    objects,
    withSeeds,
    { writeTo: keys.segment(importId, IMPORT_ITERATION), key: keys.segment(importId, IMPORT_ITERATION) },
    taskTexts,
  );
  const rng = createRng(`${importId}:demonstrations`);
  const previous = await committedSample(
    objects,
    manifest,
    committed.seedsKey,
    () => index.instructions.slice(0, committedSize),
    rng,
  );
  const demonstrations = keys.demonstrations(importId, IMPORT_ITERATION);
  await objects.put(
    demonstrations,
    JSON.stringify(extendSample(previous, taskTexts, rng) satisfies MachineSample),
    'application/json',
  );
  await objects.put(indexKey, JSON.stringify({ ...withTasks, demonstrations }), 'application/json');
  const seedsKey = storedSeeds.length > 0 ? keys.seedsVersion(importId) : undefined;
  if (seedsKey) await objects.put(seedsKey, toJsonLines([...seedList, ...storedSeeds]), 'application/jsonl');
  const commit = await pool.commit(name, {
    runId: importId,
    iteration: IMPORT_ITERATION,
    fence,
    complete: storedSeeds.length + stored.filter((item) => item.status === 'complete').length,
    seeds: storedSeeds.length,
    seedsKey,
    indexKey,
  });
  if (commit === 'lease-lost') {
    throw new PoolBusy(`Import ${importId} lost the lease of pool "${name}" before it committed`);
  }

  // After the commit, as "Save iteration" does.
  const ids = [...storedSeeds.map((task) => taskId(task.instruction)), ...stored.map((item) => item.id)];
  await pool.clearStaged(name, ids, staged);
  const snapshotKey = await writeSnapshot(objects, name, importId, IMPORT_ITERATION, stored);
  if (seedsKey) await objects.copy(seedsKey, keys.seeds);
  return {
    importId,
    pool: name,
    counts,
    poolSize: await pool.countComplete(name),
    snapshotKey,
    decisionsKey,
  };
}

/** Puts each item with `put` (at most `limit` at once) and returns those it stored, in order. */
async function putAll<T>(items: readonly T[], limit: LimitFunction, put: (item: T) => Promise<boolean>) {
  const stored = await Promise.all(items.map((item) => limit(() => put(item))));
  return items.filter((_, i) => stored[i]);
}

/** A planned task as the pool stores a machine task of the import's iteration. */
function toPoolTask(
  task: PlannedTask,
  gated: GateResult | undefined,
  {
    name,
    importId,
    staged,
    createdAt,
  }: { name: string; importId: string; staged: string; createdAt: string },
): PoolTask {
  const [top] = gated?.mostSimilar ?? [];
  return {
    id: task.id,
    pool: name,
    instruction: task.instruction,
    source: 'machine',
    status: task.rejectReason === undefined ? 'complete' : 'rejected',
    rejectReason: task.rejectReason,
    isClassification: task.isClassification,
    instances: task.rejectReason === undefined ? task.instances : [],
    name: task.name,
    runId: importId,
    iteration: IMPORT_ITERATION,
    maxSimilarity: gated?.maxSimilarity,
    mostSimilar: gated ? top && { instruction: top.instruction, score: top.score } : task.mostSimilar,
    avgSimilarity: gated ? gated.avgSimilarity : task.avgSimilarity,
    outcome: Object.keys(task.outcome).length > 0 ? task.outcome : undefined,
    quality: task.quality,
    staged,
    createdAt,
  };
}
