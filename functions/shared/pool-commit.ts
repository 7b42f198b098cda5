/**
 * How work joins a pool. A stage that adds tasks writes them *staged*: each carries the marker
 * `<run>#<iteration>` (`PoolTask.staged`) and no reader sees it. The iteration then commits with one
 * conditional write on the pool's `META` item (`PoolStore.commit`): its complete tasks are added to the
 * pool's count and `META` points at the seed list and ROUGE-L index it wrote under new keys, only while
 * the run holds the lease with its fencing token. After the commit the markers are cleared and the
 * iteration's snapshot is written; both can be redone, by a retry or by `recoverPool`.
 *
 * A staged task is committed when its marker names the last commit's run and an iteration up to the
 * last commit's (iterations of a run commit in order, and runs on a pool one after another: the run
 * that recovers a pool does it before its own first commit). Any other staged task belongs to an
 * iteration that never committed: `recoverPool` removes it.
 */
import { NotFound, PoolBusy } from './errors.ts';
import { toSeedFormat } from './exports/formats.ts';
import { toJsonLines } from './json-lines.ts';
import { poolKeys } from './keys.ts';
import { POOL_LEASE_MS } from './pool-lease.ts';
import type { ObjectStore, PoolMeta, PoolStore, PoolTask } from './ports.ts';

/** The marker of tasks staged by `runId`'s iteration `iteration` (0: its seeds). */
export const stagedBy = (runId: string, iteration: number) => `${runId}#${iteration}`;

/** The run and iteration of a staged marker. */
export function parseStaged(staged: string): { runId: string; iteration: number } {
  const hash = staged.lastIndexOf('#');
  return { runId: staged.slice(0, hash), iteration: Number(staged.slice(hash + 1)) };
}

/** Whether tasks staged under `staged` belong to a committed iteration of the pool `meta` describes. */
export function isCommitted(meta: PoolMeta | undefined, staged: string): boolean {
  const { runId, iteration } = parseStaged(staged);
  return meta?.commit?.runId === runId && iteration <= meta.commit.iteration;
}

/** A pool exists once something committed to it (or, for a pool from before commits, it has tasks). */
export const poolExists = (meta: PoolMeta | undefined) =>
  meta?.commit !== undefined || (meta?.taskCount ?? 0) > 0;

/** Writes the snapshot of an iteration's complete tasks (`pools/<pool>/snapshots/<run>/iteration-<n>.jsonl`). */
export async function writeSnapshot(
  objects: ObjectStore,
  pool: string,
  runId: string,
  iteration: number,
  tasks: readonly PoolTask[],
): Promise<string> {
  const key = poolKeys(pool).snapshot(runId, iteration);
  const complete = tasks.filter((task) => task.status === 'complete').map(toSeedFormat);
  await objects.put(key, toJsonLines(complete), 'application/jsonl');
  return key;
}

/** What `recoverPool` found and did. */
export interface RepairReport {
  pool: string;
  /** Staged tasks of committed iterations: markers cleared, they are part of the pool now. */
  finished: number;
  /** Staged tasks of iterations that never committed, removed (`pending` ones among them). */
  removed: number;
  removedPending: number;
  /** The runs whose staged work was removed. */
  runs: string[];
  /** The snapshot of the last committed iteration, written again because it was missing. */
  snapshot?: string;
  /** The published copy of the committed seed list was written again. */
  seedsPublished: boolean;
}

/**
 * Finishes or removes what dead runs left in a pool, so counts and exports never include uncounted
 * work: staged tasks of committed iterations join the pool; staged tasks of iterations that never
 * committed (pending or finished) are deleted; the last commit's snapshot and the published seed list
 * are written again when missing. The caller holds the pool's lease; `except` is the caller's own run,
 * whose staged work is left alone.
 */
export async function recoverPool(
  store: PoolStore,
  objects: ObjectStore,
  pool: string,
  { except }: { except?: string } = {},
): Promise<RepairReport> {
  const meta = await store.getMeta(pool);
  const report: RepairReport = {
    pool,
    finished: 0,
    removed: 0,
    removedPending: 0,
    runs: [],
    seedsPublished: false,
  };
  const finish = new Map<string, string[]>();
  const dead = new Set<string>();
  for await (const task of store.listStaged(pool)) {
    const staged = task.staged as string;
    if (except !== undefined && parseStaged(staged).runId === except) continue;
    if (isCommitted(meta, staged)) {
      finish.set(staged, [...(finish.get(staged) ?? []), task.id]);
      continue;
    }
    if (await store.deleteStaged(pool, task.id, staged)) {
      report.removed++;
      if (task.status === 'pending') report.removedPending++;
      dead.add(parseStaged(staged).runId);
    }
  }
  for (const [staged, ids] of finish) {
    await store.clearStaged(pool, ids, staged);
    report.finished += ids.length;
  }
  report.runs = [...dead].sort();

  const last = meta?.commit;
  if (last && last.iteration > 0) {
    const key = poolKeys(pool).snapshot(last.runId, last.iteration);
    if ((await objects.getBytes(key)) === undefined) {
      const tasks: PoolTask[] = [];
      for await (const task of store.listTasks(pool)) {
        if (task.runId === last.runId && task.iteration === last.iteration && task.source === 'machine') {
          tasks.push(task);
        }
      }
      report.snapshot = await writeSnapshot(objects, pool, last.runId, last.iteration, tasks);
    }
  }
  if (meta?.seedsKey) {
    await objects.copy(meta.seedsKey, poolKeys(pool).seeds);
    report.seedsPublished = true;
  }
  return report;
}

/** One line per thing repaired, for logs and the `repair` command. */
export function describeRepair(report: RepairReport & { abandoned?: string }): string[] {
  const lines: string[] = [];
  if (report.abandoned)
    lines.push(`the lease of run ${report.abandoned}, which no longer runs, was taken back`);
  if (report.finished > 0)
    lines.push(`${report.finished} staged tasks of committed iterations joined the pool`);
  if (report.removed > 0) {
    lines.push(
      `${report.removed} tasks of iterations that never committed removed (${report.removedPending} pending), from run${report.runs.length === 1 ? '' : 's'} ${report.runs.join(', ')}`,
    );
  }
  if (report.snapshot) lines.push(`snapshot ${report.snapshot} written again`);
  return lines;
}

/** What `repairPool` did: `recoverPool`'s report, and the run whose lease it took over. */
export interface PoolRepair extends RepairReport {
  /** The run that held the pool's lease, now marked failed (`RunAbandoned`) if its record said running. */
  abandoned?: string;
}

/**
 * Repairs a pool outside a run (`selfinstruct repair <pool>`): takes the pool's lease as `by` (a new
 * fencing token, so a zombie of the holder can commit nothing more), when no run holds it or when
 * `ended` says the holder is no longer running; marks that run failed; recovers the pool; gives the
 * lease back. Throws `PoolBusy` while a live run holds the pool.
 */
export async function repairPool(
  store: PoolStore,
  objects: ObjectStore,
  pool: string,
  { by, ended, now = new Date() }: { by: string; ended: (runId: string) => Promise<boolean>; now?: Date },
): Promise<PoolRepair> {
  const meta = await store.getMeta(pool);
  if (!meta) throw new NotFound(`No pool "${pool}" in this stack`);
  const holder = meta.lease?.runId;
  const abandoned = holder !== undefined && (await ended(holder)) ? holder : undefined;
  const lease = await store.takeLease(pool, by, new Date(now.getTime() + POOL_LEASE_MS), now, abandoned);
  if (!lease.taken) {
    throw new PoolBusy(
      `Pool "${pool}" is being grown by run ${lease.holder}: repair it once that run has ended`,
    );
  }
  try {
    if (abandoned && (await store.getRun(abandoned))?.status === 'RUNNING') {
      await store.finishRun(abandoned, {
        status: 'FAILED',
        error: 'RunAbandoned',
        cause: `it no longer runs; ${by} repaired pool "${pool}"`,
      });
    }
    return { ...(await recoverPool(store, objects, pool)), abandoned };
  } finally {
    await store.releasePool(pool, by);
  }
}
