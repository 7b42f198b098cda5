import { describe, expect, it } from 'vitest';
import { FilterInput, filterAndDeduplicate } from '../../functions/filter/core.ts';
import { promptsForIteration } from '../../functions/generate-instructions/core.ts';
import { parseRunInput, poolFromSeedKey, prepareRun } from '../../functions/prepare/core.ts';
import { FailureInput, readableCause, recordFailure } from '../../functions/record-failure/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { RunInputInvalid, SeedFileInvalid } from '../../functions/shared/errors.ts';
import { poolKeys, runKeys } from '../../functions/shared/keys.ts';
import { fromJsonLines, ModelCalls, toJsonLines } from '../../functions/shared/model-calls.ts';
import { POOL_LEASE_MS } from '../../functions/shared/pool-lease.ts';
import type { ModelRequest, TextModel } from '../../functions/shared/ports.ts';
import type { RunState } from '../../functions/shared/schemas.ts';
import { MemoryObjects, MemoryPool } from './fakes.ts';

const seed = (id: number, instruction: string) => ({
  id: `seed_task_${id}`,
  name: `task-${id}`,
  instruction,
  instances: [{ input: '', output: `answer ${id}` }],
  is_classification: false,
});
const SEEDS = [
  seed(0, 'Summarize the paragraph in one sentence for a busy reader.'),
  seed(1, 'Translate the legal clause into plain everyday language.'),
  seed(2, 'Suggest three names for a bakery that sells sourdough bread.'),
];

async function prepared(objects = new MemoryObjects(), pool = new MemoryPool(), input: object = {}) {
  await objects.put('seeds/demo/seeds.jsonl', toJsonLines(SEEDS));
  const state = await prepareRun(
    { runId: 'run-1', input: { seedKey: 'seeds/demo/seeds.jsonl', ...input } },
    { objects, pool },
  );
  return { objects, pool, state };
}

describe('prepare run', () => {
  it('derives the pool from an uploaded seed key, else uses "default"', () => {
    expect(poolFromSeedKey('seeds/legal/tasks.jsonl')).toBe('legal');
    expect(poolFromSeedKey('seeds/tasks.jsonl')).toBe('default');
    expect(poolFromSeedKey(undefined)).toBe('default');
  });

  it('rejects a run input with a bad field, naming it', () => {
    expect(() => parseRunInput({ target: 0 }, 'r')).toThrow(RunInputInvalid);
    expect(() => parseRunInput({ rougeThreshold: 1.5 }, 'r')).toThrow(/rougeThreshold/);
  });

  it('fills every default so that {} is a valid input', () => {
    const config = parseRunInput({}, 'run-7');
    expect(config).toMatchObject({
      pool: 'default',
      profile: 'default',
      model: 'offline',
      target: 300,
      maxIterations: 3,
    });
    expect(config.seed).toBe('run-7');
    expect(config.rougeThreshold).toBe(0.7);
  });

  it('seeds a new pool: tasks, index and seed list', async () => {
    const { objects, pool, state } = await prepared();
    expect(state.progress).toEqual({
      iteration: 0,
      added: 0,
      poolSize: 3,
      costUsd: 0,
      projectedCostUsd: 0,
      withinBudget: true,
    });
    expect(state.config.pool).toBe('demo');
    expect([...pool.tasks.values()].map((task) => task.source)).toEqual(['seed', 'seed', 'seed']);
    expect(fromJsonLines(await objects.getText(poolKeys('demo').seeds))).toHaveLength(3);
    expect(objects.objects.has(poolKeys('demo').index)).toBe(true);
  });

  it('does not add the same seeds twice when a pool is grown again', async () => {
    const { objects, pool } = await prepared();
    await pool.releasePool('demo', 'run-1'); // the first run has ended
    const again = await prepareRun(
      { runId: 'run-2', input: { seedKey: 'seeds/demo/seeds.jsonl' } },
      { objects, pool },
    );
    expect(again.progress.poolSize).toBe(3);
    expect(pool.tasks.size).toBe(3);
  });

  it('writes nothing when a seed line is invalid', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await objects.put(
      'seeds/demo/bad.jsonl',
      `${JSON.stringify(SEEDS[0])}\n${JSON.stringify({ ...SEEDS[1], is_classification: 'no' })}\n`,
    );
    await expect(
      prepareRun({ runId: 'r', input: { seedKey: 'seeds/demo/bad.jsonl' } }, { objects, pool }),
    ).rejects.toThrow(SeedFileInvalid);
    await expect(
      prepareRun({ runId: 'r', input: { seedKey: 'seeds/demo/bad.jsonl' } }, { objects, pool }),
    ).rejects.toThrow(/bad\.jsonl:2: is_classification: /);
    expect(pool.tasks.size).toBe(0);
    expect(pool.runs.size).toBe(0);
    expect(objects.objects.size).toBe(1);
  });
});

describe('filter and deduplicate', () => {
  async function filter(candidates: string[], input: object = {}) {
    const { objects, pool, state } = await prepared(undefined, undefined, input);
    const key = runKeys(state.runId, 1).candidates;
    await objects.put(key, toJsonLines(candidates.map((instruction) => ({ instruction }))));
    const result = await filterAndDeduplicate(FilterInput.parse({ ...state, candidatesKey: key }), {
      objects,
      pool,
    });
    const decisions = fromJsonLines<{ status: string; reason: string | null; max_similarity?: number }>(
      await objects.getText(result.decisionsKey),
    );
    return { result, decisions, pool };
  }

  it('drops an instruction whose ROUGE-L to the pool exceeds 0.7', async () => {
    // 9 of 10 tokens shared with seed 0: F = 0.9.
    const { decisions } = await filter(['Summarize the paragraph in one sentence for a busy manager.']);
    expect(decisions[0]).toMatchObject({ status: 'rejected', reason: 'rouge' });
    expect(decisions[0]?.max_similarity).toBeCloseTo(0.9, 10);
  });

  it('compares each candidate with those accepted before it in the same batch', async () => {
    const { decisions, result } = await filter([
      'Explain how tides are caused by the moon and the sun.',
      'Explain how tides are caused by the moon and the earth.',
    ]);
    expect(decisions.map((d) => d.status)).toEqual(['accepted', 'rejected']);
    expect(result.counts).toMatchObject({ generated: 2, accepted: 1, rouge: 1 });
  });

  it('counts heuristic rejections by reason and stores only accepted tasks, pending instances', async () => {
    const { result, pool } = await filter([
      'Draw a picture of a cat sitting on a mat.',
      'Too short.',
      'List four ways to keep houseplants alive during a long holiday.',
    ]);
    expect(result.counts).toMatchObject({ generated: 3, accepted: 1, 'banned-word': 1, 'too-short': 1 });
    const machine = [...pool.tasks.values()].filter((task) => task.source === 'machine');
    expect(machine).toHaveLength(1);
    expect(machine[0]?.status).toBe('pending');
  });

  it('splits the accepted ids into Map items of chunkSize', async () => {
    const { result } = await filter(
      [
        'Explain why volcanoes erupt to a ten year old child.',
        'Compare two popular chess openings for beginners.',
        'Describe how to keep a sourdough starter healthy.',
        'Give reasons why birds migrate south in winter.',
        'Recommend a weekly budget plan for a college student.',
      ],
      { chunkSize: 2 },
    );
    expect(result.chunks.map((chunk) => chunk.ids.length)).toEqual([2, 2, 1]);
    expect(result.chunks.map((chunk) => chunk.index)).toEqual([0, 1, 2]);
  });
});

describe('generate instructions', () => {
  const state = (progress: Partial<RunState['progress']>, config: object = {}): RunState => ({
    runId: 'r',
    config: parseRunInput(config, 'r'),
    progress: {
      iteration: 0,
      added: 0,
      poolSize: 175,
      costUsd: 0,
      projectedCostUsd: 0,
      withinBudget: true,
      ...progress,
    },
  });

  it('sizes an iteration from the remaining target, the iterations left and the last yield', () => {
    expect(promptsForIteration(state({}))).toBe(30); // 300 over 3 iterations at 4 tasks per call, +20%
    expect(promptsForIteration(state({ iteration: 1, added: 200, yieldPerPrompt: 4 }))).toBe(15); // 50 × 1.2 / 4
    expect(promptsForIteration(state({}, { promptsPerIteration: 7 }))).toBe(7);
    expect(promptsForIteration(state({}, { target: 100_000 }))).toBe(200);
  });
});

describe('save iteration', () => {
  it('adds an iteration to the run once, even when retried', async () => {
    const { objects, pool, state } = await prepared();
    await objects.put(runKeys('run-1', 1).index, new Uint8Array([1, 2, 3]));
    await objects.put(runKeys('run-1', 1).chunkTasks(0), toJsonLines([{ id: 'a' }, { id: 'b' }]));
    const input = {
      ...state,
      generated: {
        prompts: 4,
        candidates: 10,
        malformed: 1,
        droppedByTruncation: 0,
        usage: {
          'generate-instructions': { calls: 4, inputTokens: 400, outputTokens: 300, estimated: true },
        },
      },
      gated: {
        chunks: [{ index: 0, ids: ['a', 'b', 'c'] }],
        counts: { generated: 10, accepted: 3, rouge: 7 },
      },
      instances: [
        {
          chunk: 0,
          counts: { complete: 2, rejected: 1 },
          usage: {
            classify: { calls: 3, inputTokens: 300, outputTokens: 3, estimated: true },
            'generate-instances': { calls: 3, inputTokens: 300, outputTokens: 497, estimated: true },
          },
        },
      ],
    };
    const first = await saveIteration(input, { objects, pool });
    const retried = await saveIteration(input, { objects, pool });

    expect(first.progress).toMatchObject({ iteration: 1, added: 2, poolSize: 5, yieldPerPrompt: 0.5 });
    // The offline model costs nothing; the AWS side is estimated from the iteration's shape.
    expect(first.progress.costUsd).toBeGreaterThan(0);
    expect(first.progress.costUsd).toBeLessThan(0.01);
    expect(first.progress.projectedCostUsd).toBeCloseTo(2 * first.progress.costUsd, 12);
    expect(pool.runs.get('run-1')?.cost?.modelUsd).toBe(0);
    expect(retried.progress.poolSize).toBe(5);
    expect(pool.runs.get('run-1')?.counts).toMatchObject({
      generated: 10,
      accepted: 3,
      rouge: 7,
      complete: 2,
      prompts: 4,
    });
    expect(pool.runs.get('run-1')?.usage).toMatchObject({ calls: 10, inputTokens: 1000, outputTokens: 800 });
    expect(pool.runs.get('run-1')?.stageUsage).toMatchObject({
      'generate-instructions:calls': 4,
      'classify:calls': 3,
      'generate-instances:outputTokens': 497,
    });
    expect(pool.runs.get('run-1')?.iterations?.['1']).toMatchObject({ counts: { complete: 2 } });
    expect(fromJsonLines(await objects.getText(poolKeys('demo').snapshot('run-1', 1)))).toHaveLength(2);
    expect(objects.objects.get(poolKeys('demo').index)).toEqual(new Uint8Array([1, 2, 3]));
  });
});

/** The EventBridge event Step Functions sends when an execution ends. */
const statusChange = (
  name: string,
  status: 'FAILED' | 'TIMED_OUT' | 'ABORTED',
  error?: string,
  cause?: string,
): FailureInput =>
  FailureInput.parse({
    version: '0',
    source: 'aws.states',
    'detail-type': 'Step Functions Execution Status Change',
    detail: { name, status, error: error ?? null, cause: cause ?? null, executionArn: `arn:x:${name}` },
  });

describe('record failure', () => {
  it('marks the run with the execution’s status and readable cause, from the status-change event', async () => {
    const { pool } = await prepared();
    const cause = JSON.stringify({ errorType: 'ModelRequestFailed', errorMessage: 'HTTP 401', trace: [] });
    await recordFailure(statusChange('run-1', 'FAILED', 'ModelRequestFailed', cause), { pool });
    expect(await pool.getRun('run-1')).toMatchObject({
      status: 'FAILED',
      error: 'ModelRequestFailed',
      cause: 'HTTP 401',
    });
    await recordFailure(statusChange('run-1', 'TIMED_OUT'), { pool });
    expect(await pool.getRun('run-1')).toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout' });
  });

  it('records a run stopped before it was recorded (bad input), holding no pool', async () => {
    const pool = new MemoryPool();
    await recordFailure(statusChange('run-x', 'ABORTED'), { pool });
    expect(await pool.getRun('run-x')).toMatchObject({ status: 'ABORTED', error: 'Aborted' });
  });

  it("keeps the message of a Lambda error's JSON cause", () => {
    const cause = JSON.stringify({
      errorType: 'SeedFileInvalid',
      errorMessage: 'Seed file is invalid: x:2',
      trace: [],
    });
    expect(readableCause('SeedFileInvalid', cause)).toBe('Seed file is invalid: x:2');
    expect(readableCause('States.Timeout', 'Task timed out')).toBe('Task timed out');
    expect(readableCause('States.Timeout', undefined)).toBe('States.Timeout');
  });
});

describe('seed files in Alpaca format', () => {
  it('are read as one-instance tasks', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await objects.put(
      'seeds/alp/data.json',
      JSON.stringify([
        { instruction: 'Name three primary colors for a child.', input: '', output: 'Red, blue, yellow.' },
      ]),
    );
    const state = await prepareRun(
      { runId: 'r', input: { seedKey: 'seeds/alp/data.json' } },
      { objects, pool },
    );
    expect(state.progress.poolSize).toBe(1);
    expect([...pool.tasks.values()][0]?.instances).toEqual([{ input: '', output: 'Red, blue, yellow.' }]);
  });
});

describe('the pool lease', () => {
  it('keeps a second run from growing a pool another run is growing, writing nothing', async () => {
    const { objects, pool } = await prepared();
    const before = { tasks: pool.tasks.size, runs: pool.runs.size, objects: objects.objects.size };
    await expect(
      prepareRun({ runId: 'run-2', input: { seedKey: 'seeds/demo/seeds.jsonl' } }, { objects, pool }),
    ).rejects.toThrow(/Pool "demo" is being grown by run run-1/);
    expect({ tasks: pool.tasks.size, runs: pool.runs.size, objects: objects.objects.size }).toEqual(before);
  });

  it('lets a run take a pool whose lease has expired', async () => {
    const { objects, pool } = await prepared();
    const later = new Date(Date.now() + POOL_LEASE_MS + 1000);
    const state = await prepareRun(
      { runId: 'run-2', input: { seedKey: 'seeds/demo/seeds.jsonl' } },
      { objects, pool, now: () => later },
    );
    expect(state.runId).toBe('run-2');
    expect(pool.leases.get('demo')?.runId).toBe('run-2');
  });

  it('is given up when the run fails, and only by the run holding it', async () => {
    const { pool } = await prepared();
    await pool.putRun({ runId: 'run-9', pool: 'demo', status: 'RUNNING', startedAt: '' });
    await recordFailure(statusChange('run-9', 'FAILED', 'X'), { pool });
    expect(pool.leases.get('demo')?.runId).toBe('run-1');
    await recordFailure(statusChange('run-1', 'ABORTED'), { pool });
    expect(pool.leases.has('demo')).toBe(false);
  });
});

describe('the model call runner', () => {
  it("applies the run's temperature and top-p over the profile's, and records what was sent", async () => {
    const sent: ModelRequest[] = [];
    const model: TextModel = {
      id: 'fake',
      generate: async (request) => {
        sent.push(request);
        return {
          text: 'ok',
          finish: 'stop',
          usage: { inputTokens: 3, outputTokens: 1, estimated: false },
          latencyMs: 0,
          model: 'fake',
        };
      },
    };
    const request: ModelRequest = {
      stage: 'classify',
      kind: 'chat',
      prompt: 'p',
      temperature: 0,
      topP: 1,
      maxTokens: 3,
    };
    const calls = new ModelCalls(model, { temperature: 0.9 });
    await calls.call(request);
    await new ModelCalls(model).call(request);

    expect(sent.map(({ temperature, topP }) => [temperature, topP])).toEqual([
      [0.9, 1],
      [0, 1],
    ]);
    expect(calls.records[0]?.parameters.temperature).toBe(0.9);
    expect(calls.usage.classify).toEqual({ calls: 1, inputTokens: 3, outputTokens: 1, estimated: false });
  });
});
