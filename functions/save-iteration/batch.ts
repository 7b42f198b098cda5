/**
 * Batch mode's figures of an iteration (`IterationBatch`, run input `batch`), for "Save iteration": what
 * "Submit the instance batch" did (`batch/submission.json`: the job, or why none), the job's records
 * (`batch/records.jsonl`) and the iteration's instance calls in the call ledger. A record is served when
 * the ledger holds a batch reply under its call key, failed otherwise (the job failed it or left it
 * out), and made on demand when the ledger also holds an on-demand call under that key (the Map's).
 * Counted from what is stored, so a retried save reaches the same figures.
 */
import { BatchCompletion, BatchRecord, BatchSubmission, recordCallKey } from '../shared/batch/jobs.ts';
import { fromJsonLines } from '../shared/json-lines.ts';
import { runKeys } from '../shared/keys.ts';
import type { ObjectStore, StoredCall } from '../shared/ports.ts';
import type { IterationBatch } from '../shared/records.ts';

/** The iteration's batch figures; undefined when it made no batch submit (batch mode off). */
export async function iterationBatch(
  objects: ObjectStore,
  runId: string,
  iteration: number,
  calls: readonly StoredCall[],
): Promise<IterationBatch | undefined> {
  const keys = runKeys(runId, iteration).batch;
  const text = await objects.getText(keys.submission);
  if (text === undefined) return undefined;
  const submission = BatchSubmission.parse(JSON.parse(text));
  if (submission.jobId === undefined) {
    return {
      provider: submission.provider,
      planned: submission.records,
      sent: 0,
      served: 0,
      failed: 0,
      madeOnDemand: 0,
      belowMinimum: true,
      ...(submission.reason === undefined ? {} : { reason: submission.reason }),
    };
  }
  const completion = await objects.getText(keys.completion);
  const looks = completion === undefined ? undefined : BatchCompletion.parse(JSON.parse(completion)).looks;
  const records = fromJsonLines<unknown>((await objects.getText(keys.records)) ?? '').map((line) =>
    BatchRecord.parse(line),
  );
  const instanceCalls = calls.filter((call) => call.stage === 'generate-instances');
  const answered = new Set(instanceCalls.filter((call) => call.batch).map((call) => call.callKey));
  const onDemand = new Set(instanceCalls.filter((call) => !call.batch).map((call) => call.callKey));
  const failed = records
    .map((record) => recordCallKey(iteration, record))
    .filter((key) => !answered.has(key));
  return {
    provider: submission.provider,
    jobId: submission.jobId,
    planned: submission.records,
    sent: records.length,
    served: records.length - failed.length,
    failed: failed.length,
    madeOnDemand: failed.filter((key) => onDemand.has(key)).length,
    belowMinimum: false,
    ...(looks === undefined ? {} : { looks }),
  };
}
