/**
 * "Submit the instance batch", a step of the "Generate instances" function (batch mode, run input
 * `batch`; `handler.ts` dispatches on `step`): renders the instance-generation
 * calls of every instruction the iteration accepted, exactly as the "Generate instances" Map items would
 * (the same prompt builders, templates, sampling and call keys), and sends them to the provider's batch
 * API as one job. The classification question each instance prompt depends on is asked on demand first,
 * under the Map item's own call key, so the Map item finds it recorded and does not pay for it again.
 *
 * Below the provider's minimum of records per job (Bedrock: 100), nothing is submitted: the iteration's
 * instances are made on demand by the Map, and the stage says so (`status: 'on-demand'`, logged).
 *
 * Idempotent: a retry plans the same calls (the classification replies are recorded, the record ids are
 * hashed from the calls' keys) and starts the job under the same name: Bedrock answers the same
 * idempotency token with the job it already has, and OpenAI's adapter finds the batch its note in the
 * pool table names (`shared/batch/openai.ts`): never a second job.
 *
 * What it did (the job, or why none) goes to `batch/submission.json`, for the iteration's batch figures
 * ("Save iteration", `save-iteration/batch.ts`).
 */
import { z } from 'zod';
import {
  type BatchJobs,
  type BatchRecord,
  type BatchState,
  type BatchSubmission,
  batchJobName,
  maxPolls,
  recordId,
} from '../shared/batch/jobs.ts';
import { toJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import { ModelCalls, withSampling } from '../shared/model-calls.ts';
import { stagedBy } from '../shared/pool-commit.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ModelRequest, ObjectStore, PoolStore, TextModel } from '../shared/ports.ts';
import { runTemplates } from '../shared/prompt-templates.ts';
import { Chunk, RunState } from '../shared/schemas.ts';
import { classifyTask } from './core.ts';
import { renderInstancesRequest } from './prompt.ts';

export const SubmitBatchInput = RunState.extend({
  step: z.literal('submit-batch'),
  chunks: z.array(Chunk),
});
export type SubmitBatchInput = z.infer<typeof SubmitBatchInput>;

export interface SubmitBatchDeps {
  objects: ObjectStore;
  pool: PoolStore;
  /** The run's model: the classification calls are made on demand. */
  model: TextModel;
  jobs: BatchJobs;
  remainingMs?: () => number;
  log?: (message: string, details: Record<string, unknown>) => void;
}

/** The instance calls of the iteration: one per accepted task without an instance, per round. */
async function planCalls(
  { runId, config, progress, chunks }: SubmitBatchInput,
  { objects, pool, model, remainingMs }: SubmitBatchDeps,
): Promise<{ record: BatchRecord; request: ModelRequest }[]> {
  const iteration = progress.iteration + 1;
  const staged = stagedBy(runId, iteration);
  const templates = await runTemplates(objects, runId, config);
  const planned: { record: BatchRecord; request: ModelRequest }[] = [];
  for (const chunk of chunks) {
    // The Map item's ledger scope: its classification calls are then recorded replies for it.
    const calls = new ModelCalls(model, {
      sampling: config,
      ledger: { pool, runId, iteration, scope: `chunk-${chunk.index}` },
      concurrency: config.callConcurrency,
      remainingMs,
    });
    const tasks = await pool.getTasks(config.pool, chunk.ids);
    const classified = await Promise.all(
      tasks.map(async (task) => {
        if (task.status !== 'pending' || task.staged !== staged) return undefined;
        // A task that arrived with its instance makes no instance call.
        if (task.proposed?.output !== undefined) return undefined;
        const answer = await classifyTask(task, config.profile, calls, templates);
        // A lost classification: the Map item asks again, and makes the task's calls on demand.
        return 'lost' in answer ? undefined : { task, isClassification: answer.isClassification };
      }),
    );
    calls.checkLosses();
    for (const item of classified) {
      if (!item) continue;
      for (let round = 0; round < config.instanceRounds; round++) {
        const request = withSampling(
          renderInstancesRequest(config.profile, item.task.instruction, item.isClassification, templates),
          config,
        );
        planned.push({
          record: {
            recordId: recordId(chunk.index, `${item.task.id}/instances-${round}`),
            chunk: chunk.index,
            key: `${item.task.id}/instances-${round}`,
            stage: 'generate-instances',
          },
          request,
        });
      }
    }
  }
  return planned;
}

/** Starts the iteration's instance batch, or gets the one an earlier attempt started (see the module comment). */
export async function submitBatch(input: SubmitBatchInput, deps: SubmitBatchDeps): Promise<BatchState> {
  const { runId, config, progress } = input;
  const { objects, pool, jobs, log } = deps;
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration).batch;
  const waitSeconds = config.batchPollSeconds;
  const loop = { polls: 0, maxPolls: maxPolls(waitSeconds), waitSeconds };
  await holdPool(pool, input);
  const planned = await planCalls(input, deps);
  // What the submit did, for the iteration's batch figures ("Save iteration").
  const note = (submission: Omit<BatchSubmission, 'provider' | 'records' | 'minRecords'>) =>
    objects.put(
      keys.submission,
      JSON.stringify({
        provider: jobs.provider,
        records: planned.length,
        minRecords: jobs.minRecords,
        ...submission,
      } satisfies BatchSubmission),
      'application/json',
    );
  if (planned.length < jobs.minRecords) {
    const reason = `${planned.length} instance calls, below the ${jobs.provider} minimum of ${jobs.minRecords} records per batch job: made on demand`;
    log?.('instance batch not submitted', { records: planned.length, minRecords: jobs.minRecords, reason });
    await note({ reason });
    return { status: 'on-demand', records: planned.length, reason, ...loop };
  }
  await objects.put(keys.records, toJsonLines(planned.map(({ record }) => record)), 'application/jsonl');
  const jobId = await jobs.submit({
    runId,
    name: batchJobName(runId, iteration),
    modelId: config.model.slice(config.model.indexOf(':') + 1),
    inputKey: keys.input,
    outputPrefix: keys.output,
    records: planned.map(({ record, request }) => ({ recordId: record.recordId, request })),
  });
  await note({ jobId });
  log?.('instance batch submitted', { jobId, records: planned.length });
  return { status: 'submitted', jobId, records: planned.length, ...loop };
}
