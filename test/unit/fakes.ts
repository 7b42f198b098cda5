/** In-memory ports for the pure stage tests (the end-to-end tests use the real servers). */
import { parseRunInput } from '../../functions/prepare/core.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import type {
  BatchSubmitNote,
  CommitResult,
  CounterMap,
  IterationUpdate,
  ModelReply,
  ModelRequest,
  ObjectStore,
  ObjectStreams,
  PoolCommit,
  PoolLease,
  PoolMeta,
  PoolStore,
  PoolTask,
  RunRecord,
  StoredCall,
  TextModel,
} from '../../functions/shared/ports.ts';
import type { IterationRecord, RunSummary } from '../../functions/shared/records.ts';

/** The offline model, counting the calls it answers (the calls a provider would bill). */
export class BilledModel implements TextModel {
  readonly id = 'offline';
  billed = 0;
  private readonly inner: OfflineModel;
  constructor(seed: string) {
    this.inner = new OfflineModel({ seed });
  }
  async generate(request: ModelRequest): Promise<ModelReply> {
    const reply = await this.inner.generate(request);
    this.billed++;
    return reply;
  }
}

/** A seed task of the Self-Instruct seed-file format. */
export const seedTask = (id: number, instruction: string) => ({
  id: `seed_task_${id}`,
  name: `task-${id}`,
  instruction,
  instances: [{ input: '', output: `answer ${id}` }],
  is_classification: false,
});

/** Five seed tasks that don't resemble each other. */
export const SEED_TASKS = [
  seedTask(0, 'Summarize the paragraph in one sentence for a busy reader.'),
  seedTask(1, 'Translate the legal clause into plain everyday language.'),
  seedTask(2, 'Suggest three names for a bakery that sells sourdough bread.'),
  seedTask(3, 'Classify the sentiment of the review as positive or negative.'),
  seedTask(4, 'Write a haiku about the first snow of the winter.'),
];

export class MemoryObjects implements ObjectStore, ObjectStreams {
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
  /** A streamed write: the object appears once the whole body was read (nothing when it fails). */
  async upload(key: string, body: AsyncIterable<string | Uint8Array>) {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk));
    this.objects.set(key, new Uint8Array(Buffer.concat(chunks)));
  }
  async download(key: string) {
    const bytes = this.objects.get(key);
    return bytes === undefined
      ? undefined
      : (async function* () {
          yield bytes;
        })();
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
  readonly metas = new Map<string, PoolMeta>();
  readonly calls = new Map<string, StoredCall>();
  /** Batch mode's submit notes by `<run id>/<job name>`. */
  readonly batchSubmits = new Map<string, BatchSubmitNote>();
  /** Iteration stats by `<run id>#<n>`. */
  readonly iterations = new Map<string, IterationRecord>();
  /** Every write to a pool's tasks and META, in order: what a test can count. */
  readonly writes: string[] = [];

  async getMeta(pool: string) {
    const meta = this.metas.get(pool);
    return meta && structuredClone(meta);
  }
  private meta(pool: string): PoolMeta {
    let meta = this.metas.get(pool);
    if (!meta) {
      meta = { taskCount: 0, seedCount: 0, fence: 0 };
      this.metas.set(pool, meta);
    }
    return meta;
  }
  async takeLease(
    pool: string,
    runId: string,
    until: Date,
    now: Date,
    abandoned?: string,
  ): Promise<PoolLease> {
    const meta = this.meta(pool);
    const held = meta.lease;
    if (held?.runId === runId) {
      held.until = until.toISOString();
      return { taken: true, fence: meta.fence };
    }
    if (held && held.until >= now.toISOString() && held.runId !== abandoned) {
      return { taken: false, holder: held.runId, until: held.until };
    }
    meta.lease = { runId, until: until.toISOString() };
    meta.fence += 1;
    this.writes.push(`lease ${pool}`);
    return { taken: true, fence: meta.fence, previous: held };
  }
  async renewLease(pool: string, runId: string, fence: number, until: Date) {
    const meta = this.metas.get(pool);
    if (meta?.lease?.runId !== runId || meta.fence !== fence) return false;
    meta.lease.until = until.toISOString();
    return true;
  }
  async resumeLease(pool: string, runId: string, fence: number, until: Date) {
    const meta = this.metas.get(pool);
    if (!meta || meta.lease || meta.fence !== fence) return false;
    meta.lease = { runId, until: until.toISOString() };
    return true;
  }
  async releasePool(pool: string, runId: string | undefined) {
    const meta = this.metas.get(pool);
    if (meta?.lease && (runId === undefined || meta.lease.runId === runId)) meta.lease = undefined;
  }
  async commit(pool: string, commit: PoolCommit): Promise<CommitResult> {
    const meta = this.meta(pool);
    const done = meta.commit?.runId === commit.runId && meta.commit.iteration >= commit.iteration;
    if (meta.lease?.runId !== commit.runId || meta.fence !== commit.fence || done) {
      return done ? 'already-committed' : 'lease-lost';
    }
    meta.taskCount += commit.complete;
    meta.seedCount += commit.seeds ?? 0;
    meta.commit = { runId: commit.runId, iteration: commit.iteration };
    if (commit.seedsKey !== undefined) meta.seedsKey = commit.seedsKey;
    if (commit.indexKey !== undefined) meta.indexKey = commit.indexKey;
    if (commit.vectorsKey !== undefined) meta.vectorsKey = commit.vectorsKey;
    this.writes.push(`commit ${pool} ${commit.runId}#${commit.iteration}`);
    return 'committed';
  }
  private write(task: PoolTask, condition: (existing: PoolTask | undefined) => boolean, what: string) {
    const key = `${task.pool}/${task.id}`;
    if (!condition(this.tasks.get(key))) return false;
    this.tasks.set(key, structuredClone(task));
    this.writes.push(`${what} ${task.id}`);
    return true;
  }
  async putTaskIfAbsent(task: PoolTask) {
    return this.write(task, (existing) => existing === undefined, 'put');
  }
  async replaceStaged(task: PoolTask, staged: string) {
    return this.write(task, (existing) => existing?.staged === staged, 'replace');
  }
  async finishTask(task: PoolTask) {
    return this.write(
      task,
      (existing) => existing?.status === 'pending' && existing.staged === task.staged,
      'finish',
    );
  }
  async clearStaged(pool: string, ids: readonly string[], staged: string) {
    for (const id of ids) {
      const task = this.tasks.get(`${pool}/${id}`);
      if (task?.staged === staged) {
        delete task.staged;
        this.writes.push(`clear ${id}`);
      }
    }
  }
  async deleteStaged(pool: string, id: string, staged: string) {
    if (this.tasks.get(`${pool}/${id}`)?.staged !== staged) return false;
    this.tasks.delete(`${pool}/${id}`);
    this.writes.push(`delete ${id}`);
    return true;
  }
  async getTasks(pool: string, ids: readonly string[]) {
    return ids.flatMap((id) => {
      const task = this.tasks.get(`${pool}/${id}`);
      return task ? [structuredClone(task)] : [];
    });
  }
  private sorted(pool: string) {
    return [...this.tasks]
      .filter(([key]) => key.startsWith(`${pool}/`))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, task]) => structuredClone(task));
  }
  async *listTasks(pool: string) {
    for (const task of this.sorted(pool)) if (task.staged === undefined) yield task;
  }
  async *listStaged(pool: string) {
    for (const { id, staged, status } of this.sorted(pool))
      if (staged !== undefined) yield { id, staged, status };
  }
  async countComplete(pool: string) {
    return this.metas.get(pool)?.taskCount ?? 0;
  }
  async noteBatchSubmit(runId: string, job: string, at: string) {
    const key = `${runId}/${job}`;
    const noted = this.batchSubmits.get(key);
    if (noted) return structuredClone(noted);
    this.batchSubmits.set(key, { startedAt: at });
    return undefined;
  }
  async recordBatchJob(runId: string, job: string, jobId: string) {
    const note = this.batchSubmits.get(`${runId}/${job}`);
    if (note) note.jobId = jobId;
  }
  async putCall(runId: string, call: StoredCall) {
    const key = `${runId}/${call.callKey}#${call.callId}`;
    if (!this.calls.has(key)) this.calls.set(key, structuredClone(call));
  }
  async listCalls(runId: string, prefix: string) {
    return [...this.calls]
      .filter(([key]) => key.startsWith(`${runId}/${prefix}`))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, call]) => structuredClone(call));
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
    this.iterations.set(`${runId}#${iteration}`, stats);
    for (const [map, entries] of Object.entries(increments) as [CounterMap, Record<string, number>][]) {
      run[map] ??= {};
      const target = run[map] as Record<string, number>;
      for (const [key, n] of Object.entries(entries)) target[key] = (target[key] ?? 0) + n;
    }
    return true;
  }
  async getIterations(runId: string) {
    const prefix = `${runId}#`;
    return Object.fromEntries(
      [...this.iterations]
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, stats]) => [key.slice(prefix.length), stats]),
    );
  }
  async reopenRun(runId: string) {
    const run = this.runs.get(runId);
    if (!run || run.status === 'SUCCEEDED') return;
    const { error: _error, cause: _cause, endedAt: _endedAt, ...open } = run;
    this.runs.set(runId, { ...open, status: 'RUNNING' });
  }
  async finishRun(runId: string, patch: Partial<RunRecord>) {
    const run = this.runs.get(runId) ?? ({ runId, pool: '', status: 'RUNNING', startedAt: '' } as RunRecord);
    this.runs.set(runId, { ...run, ...patch });
  }
}

/** A run summary as "Export dataset" writes it (run `run-a` of pool `p`, 12 tasks added). */
export function runSummary(overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    runId: 'run-a',
    pool: 'p',
    profile: 'default',
    model: 'bedrock:amazon.nova-micro-v1:0',
    stopReason: 'target reached (12 ≥ 10 new tasks)',
    config: parseRunInput({ pool: 'p', target: 10 }, 'run-a'),
    iterations: 2,
    added: 12,
    poolSize: 15,
    exportedTasks: 12,
    exportedRecords: 24,
    counts: { generated: 30, accepted: 14, complete: 12 },
    usage: { calls: 20, inputTokens: 9000, outputTokens: 4000 },
    cost: {
      modelUsd: 0.01,
      awsUsd: 0.002,
      totalUsd: 0.012,
      perTaskUsd: 0.001,
      per1000TasksUsd: 1,
      modelUnpriced: false,
    },
    exportPrefix: 'exports/run-a/',
    files: {
      dataset: 'exports/run-a/dataset.jsonl',
      alpaca: 'exports/run-a/alpaca.json',
      tasks: 'exports/run-a/tasks.jsonl',
      summary: 'exports/run-a/summary.json',
    },
    ...overrides,
  };
}
