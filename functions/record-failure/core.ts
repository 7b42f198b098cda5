/**
 * Stage "Record failure": the target of the EventBridge rule on the state machine's "Step Functions
 * Execution Status Change" events for FAILED, TIMED_OUT and ABORTED executions. The execution itself
 * fails at the stage that failed (so `RedriveExecution` restarts it there); this marks the run with its
 * status and a readable cause, and gives the pool's lease back.
 */
import { z } from 'zod';
import type { PoolStore } from '../shared/ports.ts';

/** The statuses the rule delivers. */
export const UNSUCCESSFUL = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/**
 * The EventBridge event (only the fields read here): the run id is the execution's name; `error` and
 * `cause` are the execution's, as `DescribeExecution` reports them (absent for an abort).
 */
export const FailureInput = z.object({
  source: z.literal('aws.states'),
  'detail-type': z.literal('Step Functions Execution Status Change'),
  detail: z.object({
    name: z.string().min(1),
    status: z.enum(UNSUCCESSFUL),
    error: z.string().nullish(),
    cause: z.string().nullish(),
  }),
});
export type FailureInput = z.infer<typeof FailureInput>;

/** Lambda's error cause is JSON (`errorType`, `errorMessage`, `trace`): keep the message only. */
export function readableCause(error: string, cause: string | null | undefined): string {
  if (!cause) return error;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // Not JSON: a cause written by Step Functions itself (timeouts, states errors).
  }
  return cause;
}

/** What the run record says when the execution gave no error of its own. */
const DEFAULT_ERRORS: Record<(typeof UNSUCCESSFUL)[number], { error: string; cause: string }> = {
  FAILED: { error: 'States.Runtime', cause: 'The execution failed without an error' },
  TIMED_OUT: { error: 'States.Timeout', cause: 'The execution ran longer than the state machine allows' },
  ABORTED: { error: 'Aborted', cause: 'The execution was stopped before it finished' },
};

export async function recordFailure(
  { detail }: FailureInput,
  { pool }: { pool: PoolStore },
): Promise<{ runId: string; status: string; error: string; cause: string }> {
  const runId = detail.name;
  const error = detail.error || DEFAULT_ERRORS[detail.status].error;
  const cause = detail.error ? readableCause(error, detail.cause) : DEFAULT_ERRORS[detail.status].cause;
  const run = await pool.getRun(runId);
  // Recorded even for a run that failed before "Prepare run" recorded it (bad input), so `status` finds it.
  await pool.finishRun(runId, { status: detail.status, error, cause });
  // The pool is free again (a run that failed before taking it holds nothing: the release is a no-op).
  if (run?.pool) await pool.releasePool(run.pool, runId);
  return { runId, status: detail.status, error, cause };
}
