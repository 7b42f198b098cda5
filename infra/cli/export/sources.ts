/**
 * Where an export reads its tasks: the bucket only (local or deployed, through the `ObjectStore` port).
 * A run's export stage wrote `exports/<run>/tasks.jsonl` and `summary.json`; a pool's iterations wrote
 * `pools/<pool>/snapshots/<run>/iteration-<n>.jsonl`, and its seed tasks are `pools/<pool>/seeds.jsonl`.
 */
import pLimit from 'p-limit';
import { z } from 'zod';
import { NotFound } from '../../../functions/shared/errors.ts';
import { ExportOptionsInvalid } from '../../../functions/shared/exports/schemas.ts';
import { exportKeys, poolKeys, SEED_UPLOAD_PREFIX } from '../../../functions/shared/keys.ts';
import type { ObjectStore, ObjectStreams } from '../../../functions/shared/ports.ts';
import { RunSummary, TaskLine } from '../../../functions/shared/records.ts';
import { PoolName } from '../../../functions/shared/schemas.ts';
import { readStoredJson, readStoredLinesStreamed } from '../stored.ts';

/** What to export: one run's export, or a whole pool. */
export type SourceRef = { run: string } | { pool: string };

/** A run that contributed tasks, with its summary when its export stage wrote one. */
export interface SourceRun {
  runId: string;
  /** Iterations with a snapshot (pool source) or the summary's count (run source). */
  iterations: number;
  summary?: RunSummary;
}

/** The tasks of a source and what the dataset card says about where they came from. */
export interface TaskSource {
  kind: 'run' | 'pool';
  /** The run id or the pool name. */
  name: string;
  pool: string;
  /** Machine-generated tasks with their instances, oldest first, each id once. */
  tasks: TaskLine[];
  /** The pool's seed tasks (`source: 'seed'`). */
  seeds: TaskLine[];
  /** The object the seed tasks come from, and the seed files uploaded for the pool (`seeds/<pool>/…`). */
  seedKey: string;
  seedUploads: string[];
  runs: SourceRun[];
}

/** A bucket the export reads: objects by key, and large ones streamed. */
export type SourceBucket = ObjectStore & Pick<ObjectStreams, 'download'>;

/** Object reads at once. */
const limit = pLimit(16);

/** Run ids become S3 prefixes and folder names: an execution name's characters, no path separators. */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/;

/**
 * Reads the tasks of a run (`{ run }`: the pool's machine tasks as that run's export stage wrote them,
 * with its summary) or of a pool (`{ pool }`: every iteration snapshot of every run). Throws `NotFound`
 * when the bucket has nothing for it, and `InputFileInvalid` naming the object and line of a bad record.
 */
export async function readTasks(objects: SourceBucket, ref: SourceRef): Promise<TaskSource> {
  return 'run' in ref ? readRun(objects, ref.run) : readPool(objects, ref.pool);
}

async function readRun(objects: SourceBucket, runId: string): Promise<TaskSource> {
  if (!RUN_ID.test(runId)) {
    throw new ExportOptionsInvalid(`"${runId}" is not a run id (letters, digits, "-", "_", ".")`);
  }
  const keys = exportKeys(runId);
  // The tasks parsed as they download: a large pool's file is never whole in memory.
  const [summaryText, taskLines] = await Promise.all([
    objects.getText(keys.summary),
    readLines(objects, keys.tasks, 'machine'),
  ]);
  if (summaryText === undefined || taskLines === undefined) {
    const started = (await objects.list(`runs/${runId}/`)).length > 0;
    const known = await recentRuns(objects);
    throw new NotFound(
      started
        ? `run ${runId} has no export (${keys.prefix}): it failed or has not finished`
        : `no run ${runId} in the bucket (nothing under ${keys.prefix})` +
            (known.length > 0
              ? `; latest exported runs: ${known.join(', ')}`
              : '; no run has been exported yet'),
    );
  }
  const summary = readStoredJson(summaryText, RunSummary, keys.summary);
  const tasks = dedupe(taskLines);
  // A run exports every machine task of its pool, earlier runs' too: describe each run they came from.
  const iterations = new Map([[runId, summary.iterations]]);
  for (const task of tasks) {
    if (task.run_id === undefined || task.run_id === runId) continue;
    iterations.set(task.run_id, Math.max(iterations.get(task.run_id) ?? 0, task.iteration ?? 0));
  }
  const runs = await describeRuns(objects, iterations, new Map([[runId, summary]]));
  return {
    kind: 'run',
    name: runId,
    pool: summary.pool,
    tasks,
    ...(await readPoolSeeds(objects, summary.pool)),
    runs,
  };
}

async function readPool(objects: SourceBucket, pool: string): Promise<TaskSource> {
  const name = PoolName.safeParse(pool);
  if (!name.success) {
    throw new ExportOptionsInvalid(`"${pool}" is not a pool name: ${name.error.issues[0]?.message}`);
  }
  const prefix = `pools/${pool}/snapshots/`;
  const snapshots = (await objects.list(prefix))
    .map((key) => ({ key, match: /^([^/]+)\/iteration-(\d+)\.jsonl$/.exec(key.slice(prefix.length)) }))
    .flatMap(({ key, match }) =>
      match ? [{ key, runId: match[1] as string, iteration: Number(match[2]) }] : [],
    )
    // Oldest first: run ids start with their start time; iterations in numeric order (10 after 9).
    .sort((a, b) => a.runId.localeCompare(b.runId) || a.iteration - b.iteration);
  const seeds = await readPoolSeeds(objects, pool);
  if (snapshots.length === 0 && seeds.seeds.length === 0) {
    throw new NotFound(`no pool "${pool}" in the bucket (nothing under pools/${pool}/)`);
  }
  const read = await Promise.all(snapshots.map(({ key }) => limit(() => readLines(objects, key, 'machine'))));
  const tasks = dedupe(read.flatMap((lines) => lines ?? []));
  const iterations = new Map<string, number>();
  for (const { runId } of snapshots) iterations.set(runId, (iterations.get(runId) ?? 0) + 1);
  return { kind: 'pool', name: pool, pool, tasks, ...seeds, runs: await describeRuns(objects, iterations) };
}

/** Each run with its summary, read from its export when it has one. */
async function describeRuns(
  objects: ObjectStore,
  iterations: ReadonlyMap<string, number>,
  known: ReadonlyMap<string, RunSummary> = new Map(),
): Promise<SourceRun[]> {
  const runs = await Promise.all(
    [...iterations].map(([runId, count]) =>
      limit(async (): Promise<SourceRun> => {
        const key = exportKeys(runId).summary;
        const text = known.has(runId) ? undefined : await objects.getText(key);
        const summary =
          known.get(runId) ?? (text === undefined ? undefined : readStoredJson(text, RunSummary, key));
        return { runId, iterations: summary?.iterations ?? count, summary };
      }),
    ),
  );
  return runs.sort((a, b) => a.runId.localeCompare(b.runId));
}

async function readPoolSeeds(objects: SourceBucket, pool: string) {
  const seedKey = poolKeys(pool).seeds;
  const [seeds, uploads] = await Promise.all([
    readLines(objects, seedKey, 'seed'),
    objects.list(`${SEED_UPLOAD_PREFIX}${pool}/`),
  ]);
  // Not deduplicated by id: "Prepare run" keeps seed files' own ids, which two seed files can share.
  return { seeds: seeds ?? [], seedKey, seedUploads: uploads };
}

/** The last few run ids with an export, newest first, for a "did you mean" hint. */
async function recentRuns(objects: ObjectStore, count = 5): Promise<string[]> {
  const ids = new Set((await objects.list('exports/')).map((key) => key.split('/')[1] ?? ''));
  ids.delete('');
  return [...ids].sort().reverse().slice(0, count);
}

/**
 * Every line of a JSON Lines object as a task, read as it downloads; an empty object (an iteration that
 * added none) has none, an absent one is `undefined`.
 */
function readLines(
  objects: SourceBucket,
  key: string,
  source: 'seed' | 'machine',
): Promise<TaskLine[] | undefined> {
  // Seed lines carry no `source`; machine lines do, and theirs wins.
  return readStoredLinesStreamed(
    objects,
    key,
    TaskLine.extend({ source: z.enum(['seed', 'machine']).default(source) }),
  );
}

/** Each task id once, at its first place (machine task ids are hashes of the instruction). */
function dedupe(tasks: TaskLine[]): TaskLine[] {
  const seen = new Set<string>();
  return tasks.filter((task) => !seen.has(task.id) && seen.add(task.id));
}
