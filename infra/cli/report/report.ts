/**
 * The run report: reads a run's record (DynamoDB), its gate decisions, its export and its pool's seeds
 * (S3), computes the stats and renders the page, and stores both next to the export as
 * `exports/<run>/report.html` and `exports/<run>/stats.json`. A run that stopped before its export
 * still gets a report: its tasks then come from the pool.
 */
import { z } from 'zod';
import { NotFound } from '../../../functions/shared/errors.ts';
import { toSeedFormat } from '../../../functions/shared/exports/formats.ts';
import { exportKeys, poolKeys } from '../../../functions/shared/keys.ts';
import type { ObjectStore, PoolStore } from '../../../functions/shared/ports.ts';
import { GateRecord, RunSummary, TaskLine } from '../../../functions/shared/records.ts';
import { readStoredJson, readStoredLines } from '../stored.ts';
import { renderReport } from './html.ts';
import type { ReportStats } from './schema.ts';
import { computeStats, type ReportInput } from './stats.ts';

/** Where the report lives: next to the run's export. */
export const reportKeys = (runId: string) => {
  const { prefix } = exportKeys(runId);
  return { html: `${prefix}report.html`, stats: `${prefix}stats.json` };
};

/** The report of a run: the page, its numbers, and the keys both were stored under. */
export interface RunReport {
  html: string;
  stats: ReportStats;
  keys: ReturnType<typeof reportKeys>;
}

/** What the report reads of a seed line. */
const SeedInstruction = z.object({ instruction: z.string() });

/**
 * Builds the report of `runId` from the stores and writes it to S3 (`reportKeys`). Throws `NotFound`
 * when there is no such run.
 */
export async function buildReport(
  objects: ObjectStore,
  pool: PoolStore,
  runId: string,
  options: Pick<ReportInput, 'sample'> = {},
): Promise<RunReport> {
  const record = await pool.getRun(runId);
  if (!record) throw new NotFound(`Run ${runId} does not exist: no run record in the table`);
  const run = { ...record, iterations: await pool.getIterations(runId) };
  const exported = exportKeys(runId);

  const gate = await Promise.all(
    (await objects.list(`runs/${runId}/`)).flatMap((key) => {
      const match = /\/iteration-(\d+)\/gate\.jsonl$/.exec(key);
      if (!match) return [];
      return objects.getText(key).then((text) => ({
        iteration: Number(match[1]),
        decisions: readStoredLines(text, GateRecord, key),
      }));
    }),
  );

  const tasksText = await objects.getText(exported.tasks);
  let tasks: TaskLine[];
  if (tasksText !== undefined) {
    tasks = readStoredLines(tasksText, TaskLine, exported.tasks);
  } else {
    tasks = [];
    for await (const task of pool.listTasks(run.pool)) {
      if (task.runId === runId && task.source === 'machine' && task.status === 'complete') {
        tasks.push(TaskLine.parse(toSeedFormat(task)));
      }
    }
  }
  await findVerbNouns(tasks);
  const ofRun = new Set(tasks.filter((task) => task.run_id === runId).map((task) => task.id));

  const seedsKey = poolKeys(run.pool).seeds;
  const seeds = readStoredLines(await objects.getText(seedsKey), SeedInstruction, seedsKey);

  const summaryText = await objects.getText(exported.summary);
  const poolSizeAfter = summaryText
    ? readStoredJson(summaryText, RunSummary, exported.summary).poolSize
    : await pool.countComplete(run.pool);

  // Why the tasks that passed the gate but are not in the export were dropped.
  const dropped = gate.flatMap(({ decisions }) =>
    decisions.flatMap((d) => (d.status === 'accepted' && d.id && !ofRun.has(d.id) ? [d.id] : [])),
  );
  const droppedTasks = await pool.getTasks(run.pool, dropped);
  const instanceRejections = Object.fromEntries(
    droppedTasks.flatMap((task) => (task.rejectReason ? [[task.id, task.rejectReason]] : [])),
  );
  // Tasks dropped after the judge's verdict still count in its score distribution.
  const judgedRejected = droppedTasks.filter((task) => task.quality).map(toSeedFormat);

  const stats = computeStats({
    run,
    gate,
    tasks,
    seeds,
    poolSizeAfter,
    instanceRejections,
    judgedRejected,
    sample: options.sample,
  });
  const html = renderReport(stats);
  const keys = reportKeys(runId);
  await objects.put(keys.html, html, 'text/html; charset=utf-8');
  await objects.put(keys.stats, `${JSON.stringify(stats, null, 2)}\n`, 'application/json');
  return { html, stats, keys };
}

/**
 * Tasks exported without their verb–noun structure (seeds, runs before it was found at completion) get
 * it here; the tagger is loaded only when one needs it.
 */
async function findVerbNouns(tasks: TaskLine[]): Promise<void> {
  const missing = tasks.filter((task) => task.root_verb === undefined);
  if (missing.length === 0) return;
  const { verbNouns } = await import('../../../functions/shared/engine/verb-noun.ts');
  verbNouns(missing.map((task) => task.instruction)).forEach((pair, i) => {
    const task = missing[i] as TaskLine;
    task.root_verb = pair?.verb ?? null;
    task.direct_object = pair?.noun ?? null;
  });
}
