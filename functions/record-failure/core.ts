/**
 * Stage "Record failure": the target of the EventBridge rule on the state machine's "Step Functions
 * Execution Status Change" events for FAILED, TIMED_OUT and ABORTED executions. The execution itself
 * fails at the stage that failed (so `RedriveExecution` restarts it there); this marks the run with its
 * status and a readable cause, and gives the pool's lease back.
 */
import { z } from 'zod';
import type { PoolStore } from '../shared/ports.ts';
import { ContinuedRun } from '../shared/schemas.ts';

/** The statuses the rule delivers. */
export const UNSUCCESSFUL = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/**
 * The EventBridge event (only the fields read here): the execution's name and input say whose run it
 * is (`runOfExecution`); `error` and `cause` are the execution's, as `DescribeExecution` reports them (absent for an abort).
 */
export const FailureInput = z.object({
  source: z.literal('aws.states'),
  'detail-type': z.literal('Step Functions Execution Status Change'),
  detail: z.object({
    name: z.string().min(1),
    status: z.enum(UNSUCCESSFUL),
    error: z.string().nullish(),
    cause: z.string().nullish(),
    /** The execution's input as JSON (left out by EventBridge above 248 KB). */
    input: z.string().nullish(),
  }),
});
export type FailureInput = z.infer<typeof FailureInput>;

/**
 * The run an execution belongs to: the run id is the first execution's name; a later execution of the
 * run (`<run>-2` …) has the run's state as its input (`ContinuedRun`), which names it.
 */
export function runOfExecution({ name, input }: Pick<FailureInput['detail'], 'name' | 'input'>): string {
  try {
    const continued = ContinuedRun.safeParse(JSON.parse(input ?? 'null'));
    if (continued.success) return continued.data.continueRun.runId;
  } catch {
    // Not JSON: the run's own input, never a continued one.
  }
  return name;
}

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
  const runId = runOfExecution(detail);
  const error = detail.error || DEFAULT_ERRORS[detail.status].error;
  const cause = detail.error ? readableCause(error, detail.cause) : DEFAULT_ERRORS[detail.status].cause;
  const run = await pool.getRun(runId);
  // Recorded even for a run that failed before "Prepare run" recorded it (bad input), so `status` finds it.
  await pool.finishRun(runId, { status: detail.status, error, cause });
  // The pool is free again (a run that failed before taking it holds nothing: the release is a no-op).
  if (run?.pool) await pool.releasePool(run.pool, runId);
  return { runId, status: detail.status, error, cause };
}
