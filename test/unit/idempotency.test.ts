/**
 * Every stage is safe to run twice with the same input: a state machine Retry, a Map item delivered
 * twice (even at once), a stage that crashed after a write and is retried, a zombie attempt of a run
 * that lost its lease. Each case runs the real stage cores on in-memory ports with the deterministic
 * offline model, and compares the pool with a clean run's, exactly.
 */
import { describe, expect, it } from 'vitest';
import { filterAndDeduplicate } from '../../functions/filter/core.ts';
import { generateInstances } from '../../functions/generate-instances/core.ts';
import { generateInstructions } from '../../functions/generate-instructions/core.ts';
import { prepareRun } from '../../functions/prepare/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { PoolBusy } from '../../functions/shared/errors.ts';
import { toJsonLines } from '../../functions/shared/json-lines.ts';
import { DEFAULT_SEED_KEY } from '../../functions/shared/keys.ts';
import { recoverPool } from '../../functions/shared/pool-commit.ts';
import { POOL_LEASE_MS } from '../../functions/shared/pool-lease.ts';
import type { PoolStore, PoolTask } from '../../functions/shared/ports.ts';
import type { RunState } from '../../functions/shared/schemas.ts';
import { BilledModel, MemoryObjects, MemoryPool, SEED_TASKS as SEEDS, seedTask as seed } from './fakes.ts';

const NOW = new Date('2026-11-30T12:00:00Z');
const now = () => NOW;

/**
 * A store that crashes (throws, as a killed function stops) at its `n`th call of `method`: right after
 * the write is made, or just before.
 */
function crashing(
  pool: MemoryPool,
  method: keyof PoolStore,
  n: number,
  when: 'before' | 'after' = 'after',
): PoolStore {
  let seen = 0;
  return new Proxy(pool, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (property !== method) return value.bind(target);
      return async (...args: unknown[]) => {
        const crash = ++seen === n;
        if (crash && when === 'before') throw new Error(`crash before ${String(method)} #${n}`);
        const result = await value.apply(target, args);
        if (crash) throw new Error(`crash after ${String(method)} #${n}`);
        return result;
      };
    },
  });
}

interface World {
  objects: MemoryObjects;
  pool: MemoryPool;
  model: BilledModel;
}

const world = async (): Promise<World> => {
  const objects = new MemoryObjects();
  await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEEDS));
  return { objects, pool: new MemoryPool(), model: new BilledModel('idempotency') };
};

const INPUT = {
  seedKey: 'seeds/demo/seeds.jsonl',
  promptsPerIteration: 3,
  chunkSize: 4,
  target: 1000,
  maxIterations: 1,
  // The offline model judges every task: some are rejected as low-quality, under the same protocol.
  minQuality: 3,
};

/** One iteration, stage by stage; `times` runs each stage that many times with the same input. */
async function iteration(w: World, state: RunState, times = 1, pool: PoolStore = w.pool): Promise<RunState> {
  const deps = { objects: w.objects, pool, model: w.model, now };
  const repeat = async <T>(stage: () => Promise<T>): Promise<T> => {
    let result = await stage();
    for (let i = 1; i < times; i++) result = await stage();
    return result;
  };
  const generated = await repeat(() => generateInstructions(state, deps));
  const gated = await repeat(() =>
    filterAndDeduplicate({ ...state, candidatesKey: generated.candidatesKey }, deps),
  );
  const instances: Awaited<ReturnType<typeof generateInstances>>[] = [];
  for (const chunk of gated.chunks)
    instances.push(await repeat(() => generateInstances({ ...state, chunk }, deps)));
  return repeat(() => saveIteration({ ...state, generated, gated, instances }, deps));
}

/** What a pool holds, to compare two of them. */
async function contents(w: World, pool: PoolStore = w.pool) {
  const tasks: PoolTask[] = [];
  for await (const task of pool.listTasks('demo')) tasks.push(task);
  const staged = [];
  for await (const task of pool.listStaged('demo')) staged.push(task);
  const meta = await pool.getMeta('demo');
  return {
    tasks: tasks.map(({ id, status, instances, rejectReason, outcome, quality, systemMessage }) => ({
      id,
      status,
      instances,
      rejectReason,
      outcome,
      quality,
      systemMessage,
    })),
    staged,
    taskCount: meta?.taskCount,
    complete: tasks.filter((task) => task.status === 'complete').length,
    commit: meta?.commit,
    indexKey: meta?.indexKey,
  };
}

async function cleanRun(input: Record<string, unknown> = INPUT) {
  const w = await world();
  const state = await prepareRun({ runId: 'run-1', input }, { ...w, now });
  const after = await iteration(w, state);
  return { w, state, after, contents: await contents(w), billed: w.model.billed };
}

describe('a stage run twice with the same input', () => {
  it('leaves the same pool, with each billed call counted once and none paid twice', async () => {
    const clean = await cleanRun();
    const w = await world();
    const state = await prepareRun({ runId: 'run-1', input: INPUT }, { ...w, now });
    await prepareRun({ runId: 'run-1', input: INPUT }, { ...w, now });
    const after = await iteration(w, state, 2);

    expect(await contents(w)).toEqual(clean.contents);
    expect(after.progress).toEqual(clean.after.progress);
    expect(clean.contents.taskCount).toBe(clean.contents.complete);
    expect(clean.contents.staged).toEqual([]);
    expect(clean.contents.tasks.filter((task) => task.rejectReason === 'low-quality').length).toBeGreaterThan(
      0,
    );
    expect(clean.contents.tasks.filter((task) => task.quality !== undefined).length).toBeGreaterThan(0);
    // The second run of each stage served every reply from the records: no call paid twice.
    expect(w.model.billed).toBe(clean.billed);
    expect(w.pool.runs.get('run-1')?.usage?.calls).toBe(clean.billed);
    expect(w.pool.runs.get('run-1')?.counts).toEqual(clean.w.pool.runs.get('run-1')?.counts);
  });
});

describe('an explained run whose stages each run twice', () => {
  it('leaves the same pool and explanations, no teacher call paid twice', async () => {
    const input = { ...INPUT, responseStyle: 'explained' };
    const clean = await cleanRun(input);
    const w = await world();
    const state = await prepareRun({ runId: 'run-1', input }, { ...w, now });
    await iteration(w, state, 2);

    expect(await contents(w)).toEqual(clean.contents);
    expect(clean.contents.tasks.filter((task) => task.systemMessage !== undefined).length).toBeGreaterThan(0);
    expect(w.model.billed).toBe(clean.billed);
    expect(w.pool.runs.get('run-1')?.stageUsage?.['teach:calls']).toBeGreaterThan(0);
    expect(w.pool.runs.get('run-1')?.stageUsage).toEqual(clean.w.pool.runs.get('run-1')?.stageUsage);
  });
});

describe('a Map item delivered twice at once', () => {
  it('finishes each task once and leaves the same pool', async () => {
    const clean = await cleanRun();
    const w = await world();
    const state = await prepareRun({ runId: 'run-1', input: INPUT }, { ...w, now });
    const deps = { objects: w.objects, pool: w.pool, model: w.model, now };
    const generated = await generateInstructions(state, deps);
    const gated = await filterAndDeduplicate({ ...state, candidatesKey: generated.candidatesKey }, deps);
    const instances: Awaited<ReturnType<typeof generateInstances>>[] = [];
    for (const chunk of gated.chunks) {
      const [a, b] = await Promise.all([
        generateInstances({ ...state, chunk }, deps),
        generateInstances({ ...state, chunk }, deps),
      ]);
      expect(a.counts).toEqual(b.counts);
      instances.push(a);
    }
    await saveIteration({ ...state, generated, gated, instances }, deps);

    expect(await contents(w)).toEqual(clean.contents);
    const finished = w.pool.writes.filter((write) => write.startsWith('finish'));
    expect(finished).toHaveLength(new Set(finished).size);
    expect(finished).toHaveLength(gated.chunks.flatMap((chunk) => chunk.ids).length);
    // Both deliveries paid for their calls, and every one of them is in the run's usage.
    expect(w.pool.runs.get('run-1')?.usage?.calls).toBe(w.model.billed);
  });
});

describe('a stage that crashes after a write, then is retried', () => {
  it.each([
    ['Prepare run, after staging a seed', 'prepare', 'putTaskIfAbsent', 3],
    ['Prepare run, after its commit', 'prepare', 'clearStaged', 1],
    ['Filter and deduplicate, after storing a task', 'filter', 'putTaskIfAbsent', 2],
    ['Generate instances, after finishing a task', 'instances', 'finishTask', 2],
    ['Generate instructions, after recording a call', 'instructions', 'putCall', 2],
    ['Save iteration, after its commit', 'save', 'clearStaged', 1],
  ] as const)('%s: the retry leaves the same pool', async (_, stage, method, n) => {
    const clean = await cleanRun();
    const w = await world();
    const flaky = crashing(w.pool, method, n);
    const deps = { objects: w.objects, pool: w.pool, model: w.model, now };
    let crashed = false;
    const crashOnce = async <T>(name: string, run: (pool: PoolStore) => Promise<T>): Promise<T> => {
      if (name !== stage || crashed) return run(w.pool);
      crashed = true;
      await expect(run(flaky)).rejects.toThrow(/^crash after/);
      return run(w.pool);
    };
    const state = await crashOnce('prepare', (pool) =>
      prepareRun({ runId: 'run-1', input: INPUT }, { ...w, pool, now }),
    );
    const generated = await crashOnce('instructions', (pool) =>
      generateInstructions(state, { ...deps, pool }),
    );
    const gated = await crashOnce('filter', (pool) =>
      filterAndDeduplicate({ ...state, candidatesKey: generated.candidatesKey }, { ...deps, pool }),
    );
    const instances: Awaited<ReturnType<typeof generateInstances>>[] = [];
    for (const chunk of gated.chunks) {
      instances.push(
        await crashOnce('instances', (pool) => generateInstances({ ...state, chunk }, { ...deps, pool })),
      );
    }
    const after = await crashOnce('save', (pool) =>
      saveIteration({ ...state, generated, gated, instances }, { ...deps, pool }),
    );

    expect(await contents(w)).toEqual(clean.contents);
    expect(after.progress).toEqual(clean.after.progress);
    expect(w.pool.runs.get('run-1')?.counts).toEqual(clean.w.pool.runs.get('run-1')?.counts);
    // Every call the crashed attempt was billed for is counted: the retry reused them, paying none twice.
    expect(w.model.billed).toBe(clean.billed);
    expect(w.pool.runs.get('run-1')?.usage?.calls).toBe(clean.billed);
  });
});

describe('a run that lost its lease', () => {
  it('stops with PoolBusy, and what a zombie attempt still writes never counts', async () => {
    const w = await world();
    const a = await prepareRun({ runId: 'run-a', input: INPUT }, { ...w, now });
    const deps = { objects: w.objects, pool: w.pool, model: w.model, now };
    const generated = await generateInstructions(a, deps);
    // Run a stalls past its lease; run b takes the pool.
    // Stages renew the lease on the clock: past its end, by that clock.
    const later = new Date(Date.now() + POOL_LEASE_MS + 1);
    const b = await prepareRun(
      { runId: 'run-b', input: { ...INPUT, seedKey: undefined, pool: 'demo' } },
      { ...w, now: () => later },
    );
    expect(b.progress.fence).toBe(a.progress.fence + 1);

    await expect(
      filterAndDeduplicate({ ...a, candidatesKey: generated.candidatesKey }, deps),
    ).rejects.toThrow(PoolBusy);
    // A zombie that passed its check before b took over still writes a task: staged, it is not part of the pool.
    await w.pool.putTaskIfAbsent({
      id: 'zombie',
      pool: 'demo',
      instruction: 'A task the zombie wrote after losing the lease.',
      source: 'machine',
      status: 'complete',
      instances: [{ input: '', output: 'x' }],
      runId: 'run-a',
      iteration: 1,
      staged: 'run-a#1',
      createdAt: '',
    });
    const after = await iteration(w, b);
    const pool = await contents(w);
    expect(pool.tasks.map((task) => task.id)).not.toContain('zombie');
    expect(pool.taskCount).toBe(pool.complete);
    expect(after.progress.poolSize).toBe(pool.complete);
    // The next recovery removes it.
    expect(await recoverPool(w.pool, w.objects, 'demo')).toMatchObject({ removed: 1, runs: ['run-a'] });
    expect((await contents(w)).staged).toEqual([]);
  });
});

describe('the next run on a pool a run died in', () => {
  it('removes the dead iteration’s staged tasks and finishes a committed one’s, so counts equal complete tasks', async () => {
    const w = await world();
    const a = await prepareRun({ runId: 'run-a', input: { ...INPUT, maxIterations: 2 } }, { ...w, now });
    // Iteration 1 commits but the run dies before clearing its markers; iteration 2 dies mid-way.
    const dying = crashing(w.pool, 'clearStaged', 1, 'before');
    await expect(iteration(w, a, 1, dying)).rejects.toThrow(/^crash before/);
    const committed = (await contents(w)).taskCount as number;
    const deps = { objects: w.objects, pool: w.pool, model: w.model, now };
    const state2: RunState = { ...a, progress: { ...a.progress, iteration: 1 } };
    const generated = await generateInstructions(state2, deps);
    await filterAndDeduplicate({ ...state2, candidatesKey: generated.candidatesKey }, deps);
    const before = await contents(w);
    expect(before.staged.length).toBeGreaterThan(0);
    expect(before.taskCount).not.toBe(before.complete);

    // Stages renew the lease on the clock: past its end, by that clock.
    const later = new Date(Date.now() + POOL_LEASE_MS + 1);
    const b = await prepareRun({ runId: 'run-b', input: { pool: 'demo' } }, { ...w, now: () => later });
    const after = await contents(w);
    expect(after.staged).toEqual([]);
    expect(after.taskCount).toBe(committed);
    expect(after.complete).toBe(committed);
    expect(b.progress.poolSize).toBe(committed);
    const ofIteration = (n: number) => before.staged.filter((task) => task.staged === `run-a#${n}`).length;
    expect(ofIteration(1) + ofIteration(2)).toBe(before.staged.length);
    expect(w.pool.runs.get('run-b')?.repaired).toEqual([
      `${ofIteration(1)} staged tasks of committed iterations joined the pool`,
      `${ofIteration(2)} tasks of iterations that never committed removed (${ofIteration(2)} pending), from run run-a`,
      'snapshot pools/demo/snapshots/run-a/iteration-1.jsonl written again',
    ]);
    expect(w.pool.runs.get('run-a')).toMatchObject({ status: 'FAILED', error: 'RunAbandoned' });
  });
});

describe('seeds', () => {
  it('seed a new pool from the bundled file when none is given, and never an existing pool', async () => {
    const w = await world();
    await w.objects.put(DEFAULT_SEED_KEY, toJsonLines(SEEDS.slice(0, 2)));
    const first = await prepareRun({ runId: 'run-1', input: { pool: 'fresh' } }, { ...w, now });
    expect(first.progress.poolSize).toBe(2);
    expect(first.config.seedKey).toBe(DEFAULT_SEED_KEY);
    await w.pool.finishRun('run-1', { status: 'SUCCEEDED' });

    // A pool made from its own seed file, grown again without one: no bundled seed joins it.
    await prepareRun({ runId: 'run-2', input: INPUT }, { ...w, now });
    await w.pool.finishRun('run-2', { status: 'SUCCEEDED' });
    await w.objects.put(
      DEFAULT_SEED_KEY,
      toJsonLines([seed(9, 'Name the capital city of the country given.')]),
    );
    const again = await prepareRun({ runId: 'run-3', input: { pool: 'demo' } }, { ...w, now });
    expect(again.progress.poolSize).toBe(SEEDS.length);
    expect(again.config.seedKey).toBeUndefined();
    expect([...w.pool.tasks.values()].filter((task) => task.pool === 'demo')).toHaveLength(SEEDS.length);
  });
});
