/**
 * Stage "Record failure": the target of every Catch. It turns the error Step Functions caught into
 * a readable cause, marks the run failed on its record, and hands error and cause to the Fail state.
 */
import { z } from 'zod';
import type { PoolStore } from '../shared/ports.ts';

export const FailureInput = z.object({
  runId: z.string().min(1),
  pool: z.string().optional(),
  failure: z.object({ Error: z.string(), Cause: z.string().optional() }),
});
export type FailureInput = z.infer<typeof FailureInput>;

/** Lambda's error cause is JSON (`errorType`, `errorMessage`, `trace`): keep the message only. */
export function readableCause(error: string, cause: string | undefined): string {
  if (!cause) return error;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // Not JSON: a cause written by Step Functions itself (timeouts, states errors).
  }
  return cause;
}

export async function recordFailure(
  { runId, failure }: FailureInput,
  { pool }: { pool: PoolStore },
): Promise<{ error: string; cause: string }> {
  const cause = readableCause(failure.Error, failure.Cause);
  await pool.finishRun(runId, { status: 'FAILED', error: failure.Error, cause });
  // The pool is free again (a run that failed before taking it holds nothing: the release is a no-op).
  const run = await pool.getRun(runId);
  if (run?.pool) await pool.releasePool(run.pool, runId);
  return { error: failure.Error, cause };
}
