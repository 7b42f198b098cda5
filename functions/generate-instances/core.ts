/**
 * Stage "Generate instances" (Self-Instruct step 3), run by the Map state once per chunk of accepted
 * instructions: for each, decide whether it is a classification task (unless the instruction stage
 * already said), generate instances output-first for classification and input-first otherwise (unless
 * the task arrived with its instance, as in Alpaca), and keep the instances that pass the paper's
 * instance filters. A task left with none is marked rejected. Every prompt is the profile's, or the run's
 * own template of it (run input `templates`). The chunk's tasks run concurrently,
 * under the call runner's adaptive limit.
 *
 * Safe to run twice, even at once: a task moves `pending → complete | rejected` with a conditional
 * write, so the first delivery to finish it wins and the other reads its result; the replies of calls
 * an earlier attempt made are served again from their records. A task whose calls were lost (within
 * the share a stage may lose) is rejected as `model-call-failed`; one a `replay:` model has no recorded
 * reply for (the recorded run never accepted it), as `not-recorded`.
 *
 * Then a judge (`judgeModel`, by default the run's model; see `judge.ts`) rates each task that kept valid
 * instances: its verdict (score, the paper's three audit answers, a reason) is stored on the task, and a
 * task scored below `minQuality` is rejected as `low-quality`. A verdict that can't be parsed, or a judge
 * call lost or not recorded, leaves the task unscored but kept, counted (`judge-unparseable`,
 * `judge-call-failed`, `judge-not-recorded`). The judge runs in this function, not a state of its own, so a
 * chunk stays one Task state (history events and transitions per Map item unchanged).
 *
 * With `responseStyle` `explained`, a teacher model (`teacherModel`; see `explain.ts`) writes the output
 * of each instance the filters kept again, under a system message chosen per task type; the explained
 * instances are then screened and judged, and the task records its style and system message.
 */
import type { z } from 'zod';
import { filterInstances } from '../shared/engine/instances.ts';
import { verbNouns } from '../shared/engine/verb-noun.ts';
import { toJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import type { MethodTable } from '../shared/methods.ts';
import { addUsageByStage, ModelCalls } from '../shared/model-calls.ts';
import { judgeModelOf, teacherModelOf } from '../shared/models/judge-ids.ts';
import { stagedBy } from '../shared/pool-commit.ts';
import { holdPool } from '../shared/pool-lease.ts';
import {
  type ObjectStore,
  type PoolStore,
  type PoolTask,
  SAFETY_STAGE,
  type TaskQuality,
  type TextModel,
} from '../shared/ports.ts';
import { PROFILES } from '../shared/profiles.ts';
import { runTemplates, type TemplateOverrides } from '../shared/prompt-templates.ts';
import { createSafetyScreen, type SafetyScreen, unsafeReason } from '../shared/safety.ts';
import {
  addCounts,
  Chunk,
  type Counts,
  type Instance,
  RunState,
  taskCounts,
  type UsageByStage,
} from '../shared/schemas.ts';
import { evolResponseElimination } from './evol.ts';
import { type Explained, explainInstances } from './explain.ts';
import { parseJudgeReply, renderJudgeRequest } from './judge.ts';
import {
  parseClassifyReply,
  parseInstancesReply,
  renderClassifyRequest,
  renderInstancesRequest,
} from './prompt.ts';

export const InstancesInput = RunState.extend({
  chunk: Chunk,
});
export type InstancesInput = z.infer<typeof InstancesInput>;

/**
 * The longest instance kept (input and output together, in characters): five of them, with the task's
 * other attributes, stay far below DynamoDB's 400 KB item limit.
 */
export const MAX_INSTANCE_CHARS = 32_000;

export interface InstancesResult {
  chunk: number;
  /** `complete`, `rejected`, one key per task rejection reason, and per-instance drop reasons. */
  counts: Counts;
  /** What this attempt was billed (the run's usage is the sum of the recorded calls). */
  usage: UsageByStage;
}

export interface InstancesDeps {
  objects: ObjectStore;
  pool: PoolStore;
  model: TextModel;
  /**
   * The judge when `config.judgeModel` is another model than the run's; otherwise the run's model judges.
   * Unused when the run has no judge.
   */
  judge?: TextModel;
  /** The teacher when `config.teacherModel` is another model than the run's (explained responses only). */
  teacher?: TextModel;
  /** Milliseconds the function has left. */
  remainingMs?: () => number;
  /** The run's safety screen (billed calls in the run's ledger). @default createSafetyScreen(config.safetyScreen, …) */
  safety?: SafetyScreen;
}

/**
 * What a method rejects a task for after its instances are kept (before the judge): nothing for
 * Self-Instruct and backtranslation (the judge curates); Evol-Instruct's response rules (`evol.ts`).
 */
export const RESPONSE_RULES: MethodTable<
  (instances: readonly Instance[], isClassification: boolean) => string | undefined
> = {
  'self-instruct': () => undefined,
  evol: evolResponseElimination,
  backtranslate: () => undefined,
};

/**
 * Whether a task is a classification task: what it arrived with (a task that carries its instance is
 * not), else the model's answer (an unreadable one read as "no", as the paper does), or the key of the
 * classification call when it was lost. Shared with batch mode, which classifies before it batches the
 * instance calls (`functions/submit-batch/`), under the same call key.
 */
export async function classifyTask(
  task: PoolTask,
  profile: InstancesInput['config']['profile'],
  calls: ModelCalls,
  templates: TemplateOverrides,
): Promise<{ isClassification: boolean; unparseable?: true } | { lost: string }> {
  const known = task.proposed?.isClassification ?? (task.proposed?.output !== undefined ? false : undefined);
  if (known !== undefined) return { isClassification: known };
  const key = `${task.id}/classify`;
  const reply = await calls.call(renderClassifyRequest(profile, task.instruction, templates), key);
  if (!reply) return { lost: key };
  const parsed = parseClassifyReply(profile, reply.text);
  return parsed === null ? { isClassification: false, unparseable: true } : { isClassification: parsed };
}

export async function generateInstances(
  { runId, config, progress, execution, chunk }: InstancesInput,
  {
    objects,
    pool,
    model,
    judge,
    teacher,
    remainingMs,
    safety = createSafetyScreen(config.safetyScreen, {
      ledger: { pool, runId, iteration: progress.iteration + 1, scope: `chunk-${chunk.index}` },
      concurrency: config.callConcurrency,
      remainingMs,
    }),
  }: InstancesDeps,
): Promise<InstancesResult> {
  const profile = PROFILES[config.profile];
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration);
  const staged = stagedBy(runId, iteration);
  await holdPool(pool, { runId, config, progress, execution });
  const options = {
    sampling: config,
    ledger: { pool, runId, iteration, scope: `chunk-${chunk.index}` },
    concurrency: config.callConcurrency,
    remainingMs,
  };
  const calls = new ModelCalls(model, options);
  // The judge's runner: its own sampling (the run's overrides are the generator's), the same ceiling of
  // calls at once as the instance calls (one function's calls, one cap).
  const judgeCalls =
    judgeModelOf(config) === undefined
      ? undefined
      : new ModelCalls(judge ?? model, { ...options, sampling: undefined, limit: calls.limit });
  // The teacher's runner likewise (explained responses only).
  const teachCalls =
    teacherModelOf(config) === undefined
      ? undefined
      : new ModelCalls(teacher ?? model, { ...options, sampling: undefined, limit: calls.limit });
  const runners = [calls, judgeCalls, teachCalls].filter((runner) => runner !== undefined);

  const templates = await runTemplates(objects, runId, config);
  const tasks = await pool.getTasks(config.pool, chunk.ids);
  const results = await Promise.all(
    tasks.map(async (task): Promise<PoolTask> => {
      // A retried or duplicated Map item finds the tasks already finished; a task not staged by this
      // iteration is not this item's to finish.
      if (task.status !== 'pending' || task.staged !== staged) return task;
      const outcome: Counts = {};
      const count = (key: string, n = 1) => {
        outcome[key] = (outcome[key] ?? 0) + n;
      };
      // A call given up after its retries, or one a replay has no recording for.
      const lost = (key: string, runner = calls): PoolTask => ({
        ...task,
        status: 'rejected',
        rejectReason: runner.notRecorded.has(key) ? 'not-recorded' : 'model-call-failed',
        instances: [],
        outcome,
      });

      // A task that arrived with its instance (Alpaca's batched generation) needs no classification:
      // it only decides how instances are generated. Stanford Alpaca does not classify either.
      const carriesInstance = task.proposed?.output !== undefined;
      const classified = await classifyTask(task, config.profile, calls, templates);
      if ('lost' in classified) return lost(classified.lost);
      if (classified.unparseable) count('classify-unparseable');
      const { isClassification } = classified;

      const raw: Instance[] = [];
      if (carriesInstance) {
        raw.push({ input: task.proposed?.input ?? '', output: task.proposed?.output ?? '' });
      } else {
        for (let round = 0; round < config.instanceRounds; round++) {
          const request = renderInstancesRequest(
            config.profile,
            task.instruction,
            isClassification,
            templates,
          );
          const key = `${task.id}/instances-${round}`;
          const reply = await calls.call(request, key);
          if (!reply) return lost(key);
          const parsed = parseInstancesReply(config.profile, reply, isClassification);
          if (parsed.malformed) count('instances-unparseable');
          raw.push(...parsed.instances);
        }
      }

      // Model output is untrusted: an instance too long for a pool item (400 KB) is dropped, counted.
      const fitting = raw.filter(
        (instance) => instance.input.length + instance.output.length <= MAX_INSTANCE_CHARS,
      );
      if (fitting.length < raw.length) count('instance-too-long', raw.length - fitting.length);
      const filtered = filterInstances(fitting, { maxInstances: profile.maxInstances });
      for (const [reason, n] of Object.entries<number>(filtered.dropped)) count(`instance-${reason}`, n);
      // Explained responses: the teacher writes each kept instance's output again (see `explain.ts`).
      let explained: Explained | undefined;
      if (teachCalls && !filtered.taskRejected) {
        const about = { id: task.id, instruction: task.instruction, isClassification };
        explained = await explainInstances(about, filtered.kept, teachCalls, MAX_INSTANCE_CHARS);
        if (explained.lost) return lost(explained.lost, teachCalls);
        addCounts(outcome, explained.counts);
      }
      const answered = explained?.instances ?? filtered.kept;
      // The safety screen over the instances kept: a flagged one is dropped (see `safety.ts`).
      const verdicts = safety
        ? await safety.screen(
            answered.map(({ input, output }) => `${input}\n${output}`),
            'instances',
          )
        : [];
      const kept = answered.filter((_, i) => {
        const category = verdicts[i];
        if (category) count(`instance-${unsafeReason(category)}`);
        return !category;
      });
      const rejectReason =
        filtered.taskRejected ??
        (kept.length === 0 ? 'no-valid-instances' : RESPONSE_RULES[config.method](kept, isClassification));
      if (rejectReason) {
        return { ...task, isClassification, instances: [], status: 'rejected', rejectReason, outcome };
      }

      let quality: TaskQuality | undefined;
      if (judgeCalls) {
        const key = `${task.id}/judge`;
        const reply = await judgeCalls.call(renderJudgeRequest(task.instruction, kept, templates), key);
        if (!reply) count(judgeCalls.notRecorded.has(key) ? 'judge-not-recorded' : 'judge-call-failed');
        else {
          quality = parseJudgeReply(reply.text) ?? undefined;
          if (!quality) count('judge-unparseable');
        }
      }
      // A low-quality task keeps its instances and verdict, for the audit; it never joins the pool.
      const low =
        quality !== undefined && config.minQuality !== undefined && quality.score < config.minQuality;
      return {
        ...task,
        isClassification,
        instances: kept,
        status: low ? 'rejected' : 'complete',
        rejectReason: low ? 'low-quality' : undefined,
        outcome,
        ...(quality ? { quality } : {}),
        ...(explained ? { responseStyle: 'explained', systemMessage: explained.systemMessage } : {}),
      };
    }),
  );
  // Too many lost calls: throw for the state machine's Retry before finishing any task, so the retry
  // (which reuses the replies recorded so far) gets another go at the tasks that lost theirs.
  for (const runner of runners) runner.checkLosses();

  // The verb–noun structure of the completed instructions, tagged together (one pass of the tagger).
  const completed = results.filter((task, i) => task !== tasks[i] && task.status === 'complete');
  verbNouns(completed.map((task) => task.instruction)).forEach((pair, i) => {
    (completed[i] as PoolTask).verbNoun = pair ?? null;
  });

  const done = await Promise.all(
    results.map(async (task, i) => {
      const before = tasks[i] as PoolTask;
      if (task === before) return before;
      if (await pool.finishTask(task)) return task;
      // Another delivery of this item finished it first: its result is the task's.
      return (await pool.getTasks(config.pool, [task.id]))[0] ?? task;
    }),
  );

  const counts: Counts = { complete: 0, rejected: 0 };
  for (const task of done) {
    if (task.runId === runId && task.iteration === iteration) addCounts(counts, taskCounts(task));
  }
  const records = runners.flatMap((runner) => runner.records);
  if (records.length > 0) {
    await objects.put(keys.raw('generate-instances', chunk.index), toJsonLines(records), 'application/jsonl');
  }
  const usage = runners.reduce<UsageByStage>((sum, runner) => addUsageByStage(sum, runner.usage), {});
  if (safety?.usage && safety.usage.calls > 0) addUsageByStage(usage, { [SAFETY_STAGE]: safety.usage });
  return { chunk: chunk.index, counts, usage };
}
