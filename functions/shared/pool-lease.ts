/**
 * One run grows a pool at a time. "Prepare run" takes the pool's lease, which gives the run a fencing
 * token (carried in its state as `progress.fence`); every later stage and every Map item renews the
 * lease with that token before it writes, and "Save iteration" commits only while it holds. A run that
 * lost its lease (it expired and another run took it) stops with `PoolBusy` and commits nothing.
 * "Export dataset" and "Record failure" give the lease up.
 */
import { PoolBusy } from './errors.ts';
import type { PoolStore } from './ports.ts';

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

/**
 * Renews the lease `runId` holds on `pool` with token `fence`, before a stage writes; throws `PoolBusy`
 * when the run has lost it, so it writes nothing more.
 */
export async function holdPool(
  store: PoolStore,
  pool: string,
  runId: string,
  fence: number,
  now = new Date(),
): Promise<void> {
  if (await store.renewLease(pool, runId, fence, new Date(now.getTime() + POOL_LEASE_MS))) return;
  const meta = await store.getMeta(pool);
  throw new PoolBusy(
    `Run ${runId} lost the lease of pool "${pool}"` +
      (meta?.lease ? ` to run ${meta.lease.runId} (until ${meta.lease.until})` : '') +
      ': it stops here, writing nothing more',
  );
}
