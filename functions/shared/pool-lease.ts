/**
 * One run grows a pool at a time: "Prepare run" takes the pool's lease, "Save iteration" renews it,
 * "Export dataset" and "Record failure" give it up. A lease outlives a crashed run by at most
 * `POOL_LEASE_MS`, after which another run may take the pool.
 */
import { PoolBusy } from './errors.ts';
import type { PoolStore } from './ports.ts';

/** Longer than any iteration can take (each stage is capped at 15 minutes; the Map's items run 10 at once). */
export const POOL_LEASE_MS = 6 * 60 * 60 * 1000;

/** Takes or renews the lease of `pool` for `runId`; throws `PoolBusy` naming the run that holds it. */
export async function holdPool(
  store: PoolStore,
  pool: string,
  runId: string,
  now = new Date(),
): Promise<void> {
  const lease = await store.leasePool(pool, runId, new Date(now.getTime() + POOL_LEASE_MS), now);
  if (!lease.taken) {
    throw new PoolBusy(
      `Pool "${pool}" is being grown by run ${lease.holder} (its lease runs until ${lease.until}); wait for that run to end, or grow another pool`,
    );
  }
}
