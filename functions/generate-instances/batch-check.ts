/**
 * "Check the instance batch", a step of the "Generate instances" function (batch mode; `handler.ts`
 * dispatches on `step`): one look at the iteration's batch job, after each Wait.
 * While the job runs it only counts the look (the poll loop's counter: at `maxPolls` looks, past the
 * provider's window, it fails the run with `BatchJobFailed`, so the loop is bounded) and renews
 * the pool's lease, which a job of hours would otherwise let expire. When the job has finished, it
 * records every answered record in the run's call ledger as a billed call of step `generate-instances`,
 * marked `batch` (priced at the batch rate), under the call key the Map item will ask for, so the
 * "Generate instances" Map serves those replies instead of calling the model. A record the job failed
 * is counted and left to the Map, which makes it on demand. A job that failed, expired or was stopped
 * fails the run with `BatchJobFailed`, naming the job and the provider's reason.
 *
 * Idempotent: a reply is recorded under a call id derived from the job and the record, and the ledger
 * keeps the first write of a call id, so a retried look records nothing twice.
 */
import { z } from 'zod';
import {
  BATCH_WINDOW_HOURS,
  type BatchCompletion,
  type BatchJobs,
  BatchRecord,
  BatchState,
  recordCallKey,
} from '../shared/batch/jobs.ts';
import { BatchJobFailed } from '../shared/errors.ts';
import { fromJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import { MAX_STORED_REPLY_CHARS } from '../shared/model-calls.ts';
import { holdPool } from '../shared/pool-lease.ts';
import type { ObjectStore, PoolStore } from '../shared/ports.ts';
import { RunState } from '../shared/schemas.ts';

export const CheckBatchInput = RunState.extend({
  step: z.literal('check-batch'),
  batch: BatchState,
});
export type CheckBatchInput = z.infer<typeof CheckBatchInput>;

export interface CheckBatchDeps {
  objects: ObjectStore;
  pool: PoolStore;
  jobs: BatchJobs;
  log?: (message: string, details: Record<string, unknown>) => void;
}

export async function checkBatch(
  { runId, config, progress, execution, batch }: CheckBatchInput,
  { objects, pool, jobs, log }: CheckBatchDeps,
): Promise<BatchState> {
  const iteration = progress.iteration + 1;
  const keys = runKeys(runId, iteration).batch;
  await holdPool(pool, { runId, config, progress, execution });
  const polls = batch.polls + 1;
  const jobId = batch.jobId;
  if (jobId === undefined) {
    throw new BatchJobFailed(`Run ${runId} iteration ${iteration}: the state names no batch job to look at`);
  }
  const status = await jobs.status(jobId);
  if (status.status === 'failed') {
    throw new BatchJobFailed(
      `The instance batch of iteration ${iteration} (${jobs.provider} job ${jobId}, ${batch.records} records): ${status.message}`,
    );
  }
  if (status.status === 'running') {
    // The poll loop's bound: the provider's window is over, and the job with it.
    if (polls >= batch.maxPolls) {
      throw new BatchJobFailed(
        `The instance batch of iteration ${iteration} (${jobs.provider} job ${jobId}) was still ${status.providerStatus} after ${polls} looks ${batch.waitSeconds} s apart, past the provider's ${BATCH_WINDOW_HOURS} h window`,
      );
    }
    log?.('instance batch running', { jobId, providerStatus: status.providerStatus, polls });
    return { ...batch, status: 'running', polls };
  }

  const records = new Map(
    fromJsonLines<unknown>(await objects.getText(keys.records)).map((line) => {
      const record = BatchRecord.parse(line);
      return [record.recordId, record] as const;
    }),
  );
  const results = await jobs.results(jobId, keys.input, keys.output);
  let answered = 0;
  let failedRecords = 0;
  const at = new Date().toISOString();
  const jobKey = jobId.split('/').at(-1);
  for (const result of results) {
    const record = records.get(result.recordId);
    if (!record) continue;
    if ('error' in result) {
      failedRecords++;
      continue;
    }
    answered++;
    const { reply } = result;
    await pool.putCall(runId, {
      callKey: recordCallKey(iteration, record),
      callId: `batch-${jobKey}-${record.recordId}`,
      stage: record.stage,
      iteration,
      // The hash of the prompt the job was sent: the Map serves the reply to that prompt only.
      promptHash: result.promptHash,
      model: config.model,
      // As the on-demand runner: a reply too long for an item is not kept (the Map makes the call again).
      reply: reply.text.length <= MAX_STORED_REPLY_CHARS ? reply.text : undefined,
      finish: reply.finish,
      inputTokens: reply.usage.inputTokens,
      outputTokens: reply.usage.outputTokens,
      estimated: reply.usage.estimated,
      latencyMs: 0,
      at,
      batch: true,
    });
  }
  // Records the output left out are failed records too: the Map makes them on demand.
  failedRecords += Math.max(0, records.size - answered - failedRecords);
  // For "Save iteration"'s AWS cost: the loop's looks (a retried last look writes the same).
  await objects.put(
    keys.completion,
    JSON.stringify({ looks: polls } satisfies BatchCompletion),
    'application/json',
  );
  log?.('instance batch completed', {
    jobId,
    providerStatus: status.providerStatus,
    answered,
    failedRecords,
  });
  return { ...batch, status: 'completed', polls, answered, failedRecords };
}
