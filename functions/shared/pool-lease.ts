/**
 * One run grows a pool at a time. "Prepare run" takes the pool's lease, which gives the run a fencing
 * token (carried in its state as `progress.fence`); every later stage and every Map item renews the
 * lease with that token before it writes, and "Save iteration" commits only while it holds. A run that
 * lost its lease (it expired and another run took it) stops with `PoolBusy` and commits nothing.
 * "Export dataset" and "Record failure" give the lease up.
 *
 * A failed run's execution may be redriven (`RedriveExecution` restarts it at the failed stage, with
 * that stage's input, so with the same token). The first stage of the redrive finds the pool free and
 * takes it back, if no run has taken the pool since (the token is unchanged) and Step Functions says its
 * execution is RUNNING again. The last check tells a redrive from a zombie: a Lambda invocation of the
 * failed or stopped execution, still running, whose execution is not RUNNING, and which must not write.
 */
import { StepFunctionsExecutions } from './adapters/step-functions.ts';
import { PoolBusy } from './errors.ts';
import type { Executions, PoolStore } from './ports.ts';

/** The longest a stage function may run (Lambda's cap, and the state machine's task timeout). */
export const STAGE_TIMEOUT_MS = 15 * 60 * 1000;
/** Attempts of a stage under the state machine's Retry policy (the first and six retries). */
export const STAGE_ATTEMPTS = 7;
/** The Retry policy's longest wait between two attempts. */
export const RETRY_MAX_DELAY_MS = 60 * 1000;

/**
 * How long a lease lasts from its last renewal: the longest a live run can go without renewing it, one
 * stage retried to the end of its policy (every attempt timing out, each followed by the longest wait),
 * so a lease can't expire under a live run. A dead run's lease frees the pool that much later (at most
 * about two hours); `repair`, and a local run, free it at once.
 */
export const POOL_LEASE_MS = STAGE_ATTEMPTS * (STAGE_TIMEOUT_MS + RETRY_MAX_DELAY_MS);

const busy = (pool: string, holder: string, until: string) =>
  new PoolBusy(
    `Pool "${pool}" is being grown by run ${holder} (its lease runs until ${until}); wait for that run to end, or grow another pool`,
  );

/**
 * Takes (or, for the run holding it, renews) the lease of `pool` for `runId` and returns its fencing
 * token and the run it was taken from, if any; throws `PoolBusy` naming the run that holds it. A holder
 * whose run record says it has ended (failed, aborted, succeeded) no longer holds the pool.
 */
export async function takePool(
  store: PoolStore,
  pool: string,
  runId: string,
  now = new Date(),
): Promise<{ fence: number; previous?: string }> {
  const until = new Date(now.getTime() + POOL_LEASE_MS);
  let lease = await store.takeLease(pool, runId, until, now);
  if (!lease.taken) {
    const holder = await store.getRun(lease.holder);
    if (holder && holder.status !== 'RUNNING') {
      lease = await store.takeLease(pool, runId, until, now, lease.holder);
    }
    if (!lease.taken) throw busy(pool, lease.holder, lease.until);
  }
  return { fence: lease.fence, previous: lease.previous?.runId };
}

/** What a stage knows of its run: the pool, its token, and the execution it runs in (`$$.Execution.Id`). */
export interface LeaseHolder {
  runId: string;
  config: { pool: string };
  progress: { fence: number };
  /** The ARN of the execution running the stage; without it a lease given up is never taken back. */
  execution?: string;
}

let stepFunctions: Executions | undefined;
/** Step Functions, its client made on first use (a stage asks it only after a redrive). */
function stepFunctionsExecutions(): Executions {
  stepFunctions ??= new StepFunctionsExecutions();
  return stepFunctions;
}

/**
 * Renews the lease the run holds on its pool with its token, before a stage writes; takes back a lease
 * the run gave up when its execution was redriven (see the module comment); throws `PoolBusy` when the
 * run has lost it, so it writes nothing more.
 */
export async function holdPool(
  store: PoolStore,
  { runId, config: { pool }, progress: { fence }, execution }: LeaseHolder,
  { now = new Date(), executions }: { now?: Date; executions?: Executions } = {},
): Promise<void> {
  const until = new Date(now.getTime() + POOL_LEASE_MS);
  if (await store.renewLease(pool, runId, fence, until)) return;
  let meta = await store.getMeta(pool);
  // Free (or taken back meanwhile by another stage of the same redrive, a Map item), same token.
  const givenUp = meta?.fence === fence && (!meta.lease || meta.lease.runId === runId);
  if (
    execution &&
    givenUp &&
    (await (executions ?? stepFunctionsExecutions()).status(execution)) === 'RUNNING'
  ) {
    // Reopened first: if the lease can't be taken after all, the stage fails and "Record failure"
    // marks the run failed again.
    await store.reopenRun(runId);
    if (await store.resumeLease(pool, runId, fence, until)) return;
    if (await store.renewLease(pool, runId, fence, until)) return;
    meta = await store.getMeta(pool);
  }
  const holder = meta?.lease;
  const why = holder
    ? ` to run ${holder.runId} (until ${holder.until})`
    : meta?.fence === fence
      ? ' (it gave the lease up when it ended)'
      : ' (it gave the lease up when it ended, and another run has grown the pool since)';
  throw new PoolBusy(
    `Run ${runId} lost the lease of pool "${pool}"${why}: it stops here, writing nothing more`,
  );
}
