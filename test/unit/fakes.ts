/** In-memory ports for the pure stage tests (the end-to-end tests use the real servers). */
import type {
  CounterMap,
  IterationUpdate,
  ObjectStore,
  PoolLease,
  PoolStore,
  PoolTask,
  RunRecord,
} from '../../functions/shared/ports.ts';

export class MemoryObjects implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  async getBytes(key: string) {
    return this.objects.get(key);
  }
  async getText(key: string) {
    const bytes = this.objects.get(key);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }
  async put(key: string, body: string | Uint8Array) {
    this.objects.set(key, typeof body === 'string' ? new TextEncoder().encode(body) : body);
  }
  async copy(from: string, to: string) {
    const bytes = this.objects.get(from);
    if (!bytes) throw new Error(`no object ${from}`);
    this.objects.set(to, bytes);
  }
  async list(prefix: string) {
    return [...this.objects.keys()].filter((key) => key.startsWith(prefix)).sort();
  }
}

export class MemoryPool implements PoolStore {
  readonly tasks = new Map<string, PoolTask>();
  readonly runs = new Map<string, RunRecord & { saved?: Set<number> }>();
  readonly poolCounts = new Map<string, number>();

  async putTaskIfAbsent(task: PoolTask) {
    const key = `${task.pool}/${task.id}`;
    if (this.tasks.has(key)) return false;
    this.tasks.set(key, structuredClone(task));
    return true;
  }
  async getTasks(pool: string, ids: readonly string[]) {
    return ids.flatMap((id) => {
      const task = this.tasks.get(`${pool}/${id}`);
      return task ? [structuredClone(task)] : [];
    });
  }
  async updateTask(task: PoolTask) {
    this.tasks.set(`${task.pool}/${task.id}`, structuredClone(task));
  }
  async *listTasks(pool: string) {
    for (const [key, task] of [...this.tasks].sort(([a], [b]) => a.localeCompare(b))) {
      if (key.startsWith(`${pool}/`)) yield structuredClone(task);
    }
  }
  async countComplete(pool: string) {
    return this.poolCounts.get(pool) ?? 0;
  }
  async addToPoolCount(pool: string, n: number) {
    this.poolCounts.set(pool, (this.poolCounts.get(pool) ?? 0) + n);
  }
  readonly leases = new Map<string, { runId: string; until: string }>();
  async leasePool(pool: string, runId: string, until: Date, now: Date): Promise<PoolLease> {
    const held = this.leases.get(pool);
    if (held && held.runId !== runId && held.until >= now.toISOString()) {
      return { taken: false, holder: held.runId, until: held.until };
    }
    this.leases.set(pool, { runId, until: until.toISOString() });
    return { taken: true };
  }
  async releasePool(pool: string, runId: string | undefined) {
    if (runId === undefined || this.leases.get(pool)?.runId === runId) this.leases.delete(pool);
  }
  async putRun(run: RunRecord) {
    this.runs.set(run.runId, { counts: {}, usage: {}, stageUsage: {}, cost: {}, iterations: {}, ...run });
  }
  async getRun(runId: string) {
    return this.runs.get(runId);
  }
  async addIteration(runId: string, iteration: number, { stats, increments }: IterationUpdate) {
    const run = this.runs.get(runId);
    if (!run) return false;
    run.saved ??= new Set();
    if (run.saved.has(iteration)) return false;
    run.saved.add(iteration);
    run.iteration = iteration;
    run.iterations = { ...run.iterations, [String(iteration)]: stats };
    for (const [map, entries] of Object.entries(increments) as [CounterMap, Record<string, number>][]) {
      run[map] ??= {};
      const target = run[map] as Record<string, number>;
      for (const [key, n] of Object.entries(entries)) target[key] = (target[key] ?? 0) + n;
    }
    return true;
  }
  async finishRun(runId: string, patch: Partial<RunRecord>) {
    const run = this.runs.get(runId) ?? ({ runId, pool: '', status: 'RUNNING', startedAt: '' } as RunRecord);
    this.runs.set(runId, { ...run, ...patch });
  }
}
