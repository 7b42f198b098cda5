/**
 * Stage "Prepare run": validates the run input and the seed file, records the run, and seeds the pool
 * (DynamoDB items, the pool's seed list and its ROUGE-L index in S3). Nothing is written, and no model
 * is called, unless both the input and the whole seed file are valid.
 */
import { z } from 'zod';
import { type FileProblem, NotFound, RunInputInvalid, SeedFileInvalid } from '../shared/errors.ts';
import { parseRecords } from '../shared/input-files.ts';
import { DEFAULT_SEED_KEY, poolKeys, SEED_UPLOAD_PREFIX } from '../shared/keys.ts';
import { checkOperatorLimits, type OperatorLimits } from '../shared/limits.ts';
import { fromJsonLines, toJsonLines } from '../shared/model-calls.ts';
import { parseReplayId } from '../shared/models/replay.ts';
import { taskId } from '../shared/pool-ids.ts';
import { loadIndex, saveIndex } from '../shared/pool-index.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, PoolTask } from '../shared/ports.ts';
import { modelCost } from '../shared/pricing/pricing.ts';
import { priceTable } from '../shared/pricing/run-prices.ts';
import { AlpacaTask, PoolName, RunConfig, RunInput, type RunState, SeedTask } from '../shared/schemas.ts';

export interface PrepareDeps {
  objects: ObjectStore;
  pool: PoolStore;
  now?: () => Date;
  /** What the operator allows runs (model endpoints, concurrency caps). @default DEFAULT_OPERATOR_LIMITS */
  limits?: OperatorLimits;
}

/** `seeds/<pool>/<file>` names its pool; any other key grows the default pool. */
export function poolFromSeedKey(seedKey: string | undefined): string {
  const [prefix, pool, ...file] = (seedKey ?? '').split('/');
  return `${prefix}/` === SEED_UPLOAD_PREFIX && file.length > 0 && PoolName.safeParse(pool).success
    ? (pool as string)
    : 'default';
}

/** Validates `input` into the run's full configuration, or throws `RunInputInvalid` naming every bad field. */
export function parseRunInput(input: unknown, runId: string): RunConfig {
  const parsed = RunInput.safeParse(input ?? {});
  if (!parsed.success) {
    throw new RunInputInvalid(
      `Run input is invalid: ${parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(input)'}: ${issue.message}`)
        .join('; ')}`,
    );
  }
  const value = parsed.data;
  return RunConfig.parse({
    ...value,
    pool: value.pool ?? poolFromSeedKey(value.seedKey),
    seedKey: value.seedKey ?? DEFAULT_SEED_KEY,
    seed: value.seed ?? runId,
  });
}

/** Reads and validates a seed file; every problem is reported with its line and field. */
export async function readSeedFile(objects: ObjectStore, seedKey: string): Promise<SeedTask[]> {
  const text = await objects.getText(seedKey);
  if (text === undefined) throw new NotFound(`Seed file s3://…/${seedKey} does not exist`);
  const fail = (problems: FileProblem[]) => new SeedFileInvalid(problems);
  // Alpaca's JSON array: one instance per task, classification unknown (decided by the model later).
  const tasks = text.trimStart().startsWith('[')
    ? parseRecords(text, AlpacaTask, seedKey, fail).map(
        (task, i): SeedTask => ({
          id: `seed_task_${i}`,
          name: `alpaca-${i}`,
          instruction: task.instruction,
          instances: [{ input: task.input, output: task.output }],
          is_classification: false,
        }),
      )
    : parseRecords(text, SeedTask, seedKey, fail);
  const seen = new Map<string, number>();
  const problems = tasks.flatMap((task, i) => {
    const first = seen.get(task.id);
    seen.set(task.id, first ?? i);
    return first === undefined ? [] : [{ file: seedKey, field: 'id', message: `duplicate id "${task.id}"` }];
  });
  if (problems.length > 0) throw new SeedFileInvalid(problems);
  return tasks;
}

export const PrepareInput = z.object({ runId: z.string().min(1), input: z.unknown() });

export async function prepareRun(
  { runId, input }: z.infer<typeof PrepareInput>,
  { objects, pool, now = () => new Date(), limits }: PrepareDeps,
): Promise<RunState> {
  // Validate everything before writing anything.
  const config = parseRunInput(input, runId);
  checkOperatorLimits(config, limits);
  if (config.model.startsWith('replay:')) await inheritRecordedRun(config, input, pool);
  if (config.maxCostUsd !== undefined) await requirePrice(config, objects);
  const seeds = await readSeedFile(objects, config.seedKey);
  await holdPool(pool, config.pool, runId, now());

  await pool.putRun({
    runId,
    pool: config.pool,
    status: 'RUNNING',
    config,
    startedAt: now().toISOString(),
    iteration: 0,
  });

  const keys = poolKeys(config.pool);
  const known = fromJsonLines<SeedTask>(await objects.getText(keys.seeds));
  const knownIds = new Set(known.map((task) => taskId(task.instruction)));
  const fresh = seeds.filter((task) => {
    const id = taskId(task.instruction);
    if (knownIds.has(id)) return false;
    knownIds.add(id);
    return true;
  });

  if (fresh.length > 0) {
    const index = (await loadIndex(objects, keys.index)) ?? undefined;
    const stored = await Promise.all(
      fresh.map((task) =>
        pool.putTaskIfAbsent(seedToPoolTask(config.pool, task, runId, now().toISOString())),
      ),
    );
    const added = fresh.filter((_, i) => stored[i]);
    await pool.addToPoolCount(config.pool, added.length);
    await saveIndex(
      objects,
      keys.index,
      index,
      added.map((task) => task.instruction),
    );
    await objects.put(keys.seeds, toJsonLines([...known, ...fresh]), 'application/jsonl');
  }

  return {
    runId,
    config,
    progress: {
      iteration: 0,
      added: 0,
      poolSize: await pool.countComplete(config.pool),
      costUsd: 0,
      projectedCostUsd: 0,
      withinBudget: true,
    },
  };
}

/**
 * A replay reproduces its recording only with the same prompts: unless the input says otherwise, it
 * takes the recorded run's seed (which drives the sampling of demonstrations) and profile.
 */
async function inheritRecordedRun(config: RunConfig, input: unknown, pool: PoolStore): Promise<void> {
  const { runId: recordedId } = parseReplayId(config.model);
  const recorded = await pool.getRun(recordedId);
  if (!recorded?.config) throw new NotFound(`Run ${recordedId} to replay is not recorded in this stack`);
  const given = (input ?? {}) as { seed?: unknown; profile?: unknown };
  const previous = RunConfig.partial().parse(recorded.config);
  if (given.seed === undefined && previous.seed) config.seed = previous.seed;
  if (given.profile === undefined && previous.profile) config.profile = previous.profile;
}

/** A budget can only be held with a price for the model. */
async function requirePrice(config: RunConfig, objects: ObjectStore): Promise<void> {
  const price = modelCost(await priceTable(config.priceTableKey, objects), config.model, {
    inputTokens: 0,
    outputTokens: 0,
  });
  if (!price.priced) throw new RunInputInvalid(`maxCostUsd needs a price for the model: ${price.message}`);
}

function seedToPoolTask(pool: string, task: SeedTask, runId: string, createdAt: string): PoolTask {
  return {
    id: taskId(task.instruction),
    pool,
    instruction: task.instruction.trim(),
    source: 'seed',
    status: 'complete',
    isClassification: task.is_classification,
    instances: task.instances,
    name: task.name,
    runId,
    iteration: 0,
    createdAt,
  };
}
