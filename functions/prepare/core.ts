/**
 * Stage "Prepare run": validates the run input and the seed file, takes the pool's lease (a fencing
 * token for the run), finishes or removes what a dead run left in the pool, records the run, and seeds
 * the pool (DynamoDB items, the pool's seed list and its ROUGE-L index in S3), committing the seeds as
 * the pool's iteration 0 of this run. Nothing is written, and no model is called, unless the input, the
 * model id, the run's templates and the whole seed file are valid. A new pool gets the bundled seeds when no seed file is
 * given; an existing one grows from its own. A new pool exists once its seeds commit, or not at all.
 */

import pLimit from 'p-limit';
import { z } from 'zod';
import { checkBatchModel } from '../shared/batch/jobs.ts';
import { NotFound, PoolBusy, RunInputInvalid } from '../shared/errors.ts';
import { checkExecutionLimits } from '../shared/execution-limits.ts';
import { parseSeedFile } from '../shared/input-files.ts';
import { fromJsonLines, toJsonLines } from '../shared/json-lines.ts';
import { DEFAULT_SEED_KEY, poolKeys, SEED_UPLOAD_PREFIX } from '../shared/keys.ts';
import { checkOperatorLimits, type OperatorLimits } from '../shared/limits.ts';
import { METHOD_DEFAULTS, type MethodTable } from '../shared/methods.ts';
import { checkEmbedderId, defaultEmbeddingModel, NO_EMBEDDINGS } from '../shared/models/embedding-ids.ts';
import { NO_JUDGE } from '../shared/models/judge-ids.ts';
import { parseModelId } from '../shared/models/model-ids.ts';
import { parseReplayId } from '../shared/models/replay.ts';
import { describeRepair, poolExists, recoverPool, stagedBy } from '../shared/pool-commit.ts';
import { taskId } from '../shared/pool-ids.ts';
import { appendSegment, committedManifest, committedPool } from '../shared/pool-index.ts';
import { holdPool, takePool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore, PoolTask } from '../shared/ports.ts';
import { modelCost } from '../shared/pricing/pricing.ts';
import { priceTable } from '../shared/pricing/run-prices.ts';
import { readTemplates } from '../shared/prompt-templates.ts';
import { checkSafetyScreenId } from '../shared/safety.ts';
import {
  ContinuedRun,
  executionName,
  MAX_EXECUTION_NAME,
  PoolName,
  RunConfig,
  RunInput,
  type RunState,
  type SeedTask,
} from '../shared/schemas.ts';
import { poolOfDocuments, preparePassages } from './passages.ts';

/** What "Prepare run" reads for each method before writing anything, and what it then writes. */
const METHOD_PREPARE: MethodTable<
  (config: RunConfig, runId: string, objects: ObjectStore) => Promise<{ write(): Promise<void> } | undefined>
> = {
  'self-instruct': async () => undefined,
  evol: async () => undefined,
  backtranslate: preparePassages,
};

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

/**
 * Validates `input` into the run's full configuration, or throws `RunInputInvalid` naming every bad
 * field, the model id included. `seedKey` stays unset when none is given: "Prepare run" seeds a new pool
 * with the bundled seeds, and grows an existing one from its own.
 */
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
  checkField('model', () => parseModelId(value.model));
  const embeddingModel = value.embeddingModel ?? defaultEmbeddingModel(value.model);
  checkField('embeddingModel', () => embeddingModel === NO_EMBEDDINGS || checkEmbedderId(embeddingModel));
  checkField('safetyScreen', () => checkSafetyScreenId(value.safetyScreen));
  const judgeModel = value.judgeModel ?? value.model;
  checkField('judgeModel', () => judgeModel === NO_JUDGE || parseModelId(judgeModel));
  // The teacher writes the responses of an explained run only: a direct run has none unless given.
  const teacherModel =
    value.responseStyle === 'explained' ? (value.teacherModel ?? value.model) : value.teacherModel;
  if (teacherModel !== undefined) checkField('teacherModel', () => parseModelId(teacherModel));
  checkField('method', () => METHOD_INPUT[value.method](value));
  if (value.batch) checkField('batch', () => checkBatchModel(value.model));
  return RunConfig.parse({
    ...value,
    minQuality: value.minQuality ?? METHOD_DEFAULTS[value.method].minQuality,
    embeddingModel,
    judgeModel,
    ...(teacherModel === undefined ? {} : { teacherModel }),
    pool: value.pool ?? (value.documents ? poolOfDocuments(value.documents) : poolFromSeedKey(value.seedKey)),
    seed: value.seed ?? runId,
  });
}

/** What each method asks of the run input (see `methods.ts`). */
const METHOD_INPUT: MethodTable<(input: { documents?: string; responseStyle?: string }) => void> = {
  'self-instruct': withoutDocuments,
  evol: withoutDocuments,
  backtranslate: ({ documents, responseStyle }) => {
    if (documents === undefined) throw new Error('backtranslate needs documents (documents/<pool>/)');
    // The output of a backtranslated task is the passage (its provenance cites it): no teacher rewrites it.
    if (responseStyle === 'explained')
      throw new Error(
        'backtranslate keeps each passage as its output: responseStyle explained does not apply',
      );
  },
};

function withoutDocuments({ documents }: { documents?: string }): void {
  if (documents !== undefined) throw new Error('documents are read by method backtranslate only');
}

/** Runs a check of one run input field; its error becomes a RunInputInvalid naming the field. */
function checkField(field: string, check: () => unknown): void {
  try {
    check();
  } catch (error) {
    throw new RunInputInvalid(`Run input is invalid: ${field}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Reads and validates a seed file; every problem is reported with its line and field. */
export async function readSeedFile(objects: ObjectStore, seedKey: string): Promise<SeedTask[]> {
  const bytes = await objects.getBytes(seedKey);
  if (bytes === undefined) throw new NotFound(`Seed file s3://…/${seedKey} does not exist`);
  return parseSeedFile(bytes, seedKey).tasks;
}

export const PrepareInput = z.object({ runId: z.string().min(1), input: z.unknown() });

export async function prepareRun(
  { runId, input }: z.infer<typeof PrepareInput>,
  { objects, pool, now = () => new Date(), limits }: PrepareDeps,
): Promise<RunState> {
  const continued = ContinuedRun.safeParse(input);
  if (continued.success) return continueRun(continued.data.continueRun, runId, { pool, now });
  // Validate everything before writing anything.
  const config = parseRunInput(input, runId);
  checkOperatorLimits(config, limits);
  const { executions } = checkExecutionLimits(config);
  const last = executionName(runId, Math.min(executions, config.maxIterations + 1));
  if (executions > 1 && last.length > MAX_EXECUTION_NAME) {
    throw new RunInputInvalid(
      `Run input is invalid: the run may go on in up to ${executions} executions named after it (${last}), over Step Functions' ${MAX_EXECUTION_NAME} characters: start it under a name of at most ${MAX_EXECUTION_NAME - (last.length - runId.length)} characters`,
    );
  }
  if (config.model.startsWith('replay:')) await inheritRecordedRun(config, input, pool);
  if (config.maxCostUsd !== undefined) await requirePrice(config, objects);
  // The run's templates: names and placeholders checked before anything is written or called; the
  // files found are the ones the model stages read (by key: they may not list the bucket).
  if (config.templates !== undefined) {
    config.templateFiles = Object.keys(await readTemplates(objects, config.templates));
  }
  // Method backtranslate: the documents split into passages, checked here (no document, a broken one).
  const passages = await METHOD_PREPARE[config.method](config, runId, objects);
  const asked = config.seedKey !== undefined;
  // The bundled seeds only seed a new pool; an existing pool grows from its own seeds.
  config.seedKey ??= poolExists(await pool.getMeta(config.pool)) ? undefined : DEFAULT_SEED_KEY;
  const seeds = config.seedKey === undefined ? [] : await readSeedFile(objects, config.seedKey);

  const { fence, previous } = await takePool(pool, config.pool, runId, now());
  await passages?.write();
  if (previous !== undefined && previous !== runId) {
    const abandoned = await pool.getRun(previous);
    if (abandoned?.status === 'RUNNING') {
      await pool.finishRun(previous, {
        status: 'FAILED',
        error: 'RunAbandoned',
        cause: `its lease on pool "${config.pool}" ran out; run ${runId} took the pool over`,
      });
    }
  }
  const repaired = await recoverPool(pool, objects, config.pool, { except: runId });
  const committed = await committedPool(pool, config.pool);
  const { meta, seedsKey } = committed;
  // Another run may have created the pool since it was read: then only the seed file asked for counts.
  const adding = !asked && poolExists(meta) && meta?.commit?.runId !== runId ? [] : seeds;
  const existing = await pool.getRun(runId);
  if (!existing) {
    await pool.putRun({
      runId,
      pool: config.pool,
      status: 'RUNNING',
      config,
      startedAt: now().toISOString(),
      iteration: 0,
      ...(repaired.finished + repaired.removed > 0 ? { repaired: describeRepair(repaired) } : {}),
    });
  }
  const state = (poolSize: number): RunState => ({
    runId,
    config,
    progress: {
      iteration: 0,
      added: 0,
      poolSize,
      costUsd: 0,
      projectedCostUsd: 0,
      withinBudget: true,
      fence,
      lowDiversity: 0,
      diversityPlateau: false,
      execution: 1,
      executionFirstIteration: 0,
      withinHistory: true,
    },
  });
  const staged = stagedBy(runId, 0);
  const keys = poolKeys(config.pool);
  if (meta?.commit?.runId === runId) {
    // A retry after the seeds committed: finish what the commit left to do.
    await finishSeeds(pool, objects, config.pool, adding, staged, meta.seedsKey);
    return state(meta.taskCount);
  }

  const known = fromJsonLines<SeedTask>(await objects.getText(seedsKey));
  const knownIds = new Set(known.map((task) => taskId(task.instruction)));
  const fresh = adding.filter((task) => {
    const id = taskId(task.instruction);
    if (knownIds.has(id)) return false;
    knownIds.add(id);
    return true;
  });

  // Stage the new seed tasks; those already there from an earlier attempt of this run are ours too.
  const createdAt = now().toISOString();
  const limit = pLimit(16);
  const stored = await Promise.all(
    fresh.map((task) =>
      limit(async () => {
        const item = { ...seedToPoolTask(config.pool, task, runId, createdAt), staged };
        if (await pool.putTaskIfAbsent(item)) return true;
        return (await pool.getTasks(config.pool, [item.id]))[0]?.staged === staged;
      }),
    ),
  );
  const added = fresh.filter((_, i) => stored[i]);
  let commit = { seedsKey: meta?.seedsKey, indexKey: meta?.indexKey };
  if (added.length > 0) {
    const versions = { seedsKey: keys.seedsVersion(runId), indexKey: keys.indexVersion(runId, 0) };
    await objects.put(versions.seedsKey, toJsonLines([...known, ...fresh]), 'application/jsonl');
    // The committed index plus a segment of the seeds added (its demonstrations sample unchanged).
    const manifest = await appendSegment(
      objects,
      await committedManifest(objects, committed),
      { writeTo: keys.segment(runId, 0), key: keys.segment(runId, 0), seeds: true },
      added.map((task) => task.instruction.trim()),
    );
    await objects.put(versions.indexKey, JSON.stringify(manifest), 'application/json');
    commit = versions;
  }
  const result = await pool.commit(config.pool, {
    runId,
    iteration: 0,
    fence,
    complete: added.length,
    seeds: added.length,
    ...commit,
  });
  if (result === 'lease-lost') {
    throw new PoolBusy(`Run ${runId} lost the lease of pool "${config.pool}" before its seeds committed`);
  }
  await finishSeeds(pool, objects, config.pool, added, staged, commit.seedsKey);
  return state(await pool.countComplete(config.pool));
}

/** After the seeds' commit: their markers cleared, the committed seed list published. */
async function finishSeeds(
  pool: PoolStore,
  objects: ObjectStore,
  name: string,
  seeds: readonly SeedTask[],
  staged: string,
  seedsKey: string | undefined,
): Promise<void> {
  await pool.clearStaged(
    name,
    seeds.map((task) => taskId(task.instruction)),
    staged,
  );
  if (seedsKey) await objects.copy(seedsKey, poolKeys(name).seeds);
}

/**
 * What a replay takes from its recorded run unless the input says otherwise: the seed (which drives the
 * sampling of demonstrations), its seed file (the same seeds for a new pool), the profile and the
 * templates (the prompts), the method and its documents, and the loop's shape (target, iteration cap,
 * instance rounds), so that by default it re-runs the recorded run's calls, only filtered differently.
 */
const INHERITED = [
  'seed',
  'seedKey',
  'profile',
  'templates',
  'method',
  'documents',
  'groundedQuestions',
  'target',
  'maxIterations',
  'instanceRounds',
] as const;

/** A replay: see `INHERITED`. */
async function inheritRecordedRun(config: RunConfig, input: unknown, pool: PoolStore): Promise<void> {
  const { runId: recordedId } = parseReplayId(config.model);
  const recorded = await pool.getRun(recordedId);
  if (!recorded?.config) throw new NotFound(`Run ${recordedId} to replay is not recorded in this stack`);
  const given = (input ?? {}) as Record<string, unknown>;
  const previous = RunConfig.partial().parse(recorded.config);
  for (const key of INHERITED) {
    if (given[key] === undefined && previous[key] !== undefined)
      Object.assign(config, { [key]: previous[key] });
  }
  // The inherited method's defaults, for what the input does not say.
  if (given.minQuality === undefined) config.minQuality = METHOD_DEFAULTS[config.method].minQuality;
}

/** A budget can only be held with a price for the model. */
async function requirePrice(config: RunConfig, objects: ObjectStore): Promise<void> {
  const price = modelCost(await priceTable(config.priceTableKey, objects), config.model, {
    inputTokens: 0,
    outputTokens: 0,
  });
  if (!price.priced) throw new RunInputInvalid(`maxCostUsd needs a price for the model: ${price.message}`);
}

/**
 * "Prepare run" of a run's next execution (`execution` = its name): the run goes on where the last one
 * stopped, with the same configuration, progress and lease. Nothing is validated again but that the run
 * is still running and still holds its pool (a run that ended or lost its lease stops here), and that
 * this execution is the one the last handed it to. A retry returns the same state.
 */
export async function continueRun(
  state: RunState,
  execution: string,
  { pool, now }: Pick<PrepareDeps, 'pool'> & { now: () => Date },
): Promise<RunState> {
  const { runId, config, progress } = state;
  const expected = executionName(runId, progress.execution + 1);
  if (execution !== expected) {
    throw new RunInputInvalid(
      `Run input is invalid: run ${runId} goes on in execution ${expected}, not ${execution}`,
    );
  }
  const run = await pool.getRun(runId);
  if (run?.status !== 'RUNNING') {
    throw new RunInputInvalid(
      `Run input is invalid: run ${runId} ${run ? `has ended (${run.status})` : 'does not exist'}: it can't go on in execution ${execution}`,
    );
  }
  await holdPool(pool, state, { now: now() });
  return {
    runId,
    config,
    progress: {
      ...progress,
      execution: progress.execution + 1,
      executionFirstIteration: progress.iteration,
      withinHistory: true,
    },
  };
}

/** A seed task as the pool stores it: complete, of iteration 0 of the run (or import) that added it. */
export function seedToPoolTask(pool: string, task: SeedTask, runId: string, createdAt: string): PoolTask {
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
