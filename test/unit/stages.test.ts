import { describe, expect, it } from 'vitest';
import { FilterInput, filterAndDeduplicate } from '../../functions/filter/core.ts';
import { promptsForIteration } from '../../functions/generate-instructions/core.ts';
import { parseRunInput, poolFromSeedKey, prepareRun } from '../../functions/prepare/core.ts';
import {
  FailureInput,
  readableCause,
  recordFailure,
  runOfExecution,
} from '../../functions/record-failure/core.ts';
import { saveIteration } from '../../functions/save-iteration/core.ts';
import { RunInputInvalid, SeedFileInvalid } from '../../functions/shared/errors.ts';
import { MAX_SEED_RECORD_BYTES } from '../../functions/shared/input-files.ts';
import { fromJsonLines, toJsonLines } from '../../functions/shared/json-lines.ts';
import { poolKeys, runKeys } from '../../functions/shared/keys.ts';
import { ModelCalls } from '../../functions/shared/model-calls.ts';
import { holdPool, POOL_LEASE_MS } from '../../functions/shared/pool-lease.ts';
import type { ModelRequest, PoolTask, TextModel } from '../../functions/shared/ports.ts';
import { GateRecord } from '../../functions/shared/records.ts';
import type { RunState } from '../../functions/shared/schemas.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from './fakes.ts';

const SEEDS = SEED_TASKS.slice(0, 3);

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
      lowDiversity: 0,
      diversityPlateau: false,
      fence: 1,
      execution: 1,
      executionFirstIteration: 0,
      withinHistory: true,
    });
    expect(state.config.pool).toBe('demo');
    expect([...pool.tasks.values()].map((task) => task.source)).toEqual(['seed', 'seed', 'seed']);
    expect(fromJsonLines(await objects.getText(poolKeys('demo').seeds))).toHaveLength(3);
    // The commit of iteration 0 points at the index and seed list it wrote, all tasks committed.
    expect(await pool.getMeta('demo')).toMatchObject({
      taskCount: 3,
      seedCount: 3,
      commit: { runId: 'run-1', iteration: 0 },
      indexKey: poolKeys('demo').indexVersion('run-1', 0),
      seedsKey: poolKeys('demo').seedsVersion('run-1'),
    });
    expect(objects.objects.has(poolKeys('demo').indexVersion('run-1', 0))).toBe(true);
    expect([...pool.tasks.values()].filter((task) => task.staged !== undefined)).toEqual([]);
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

describe("a run's next execution", () => {
  const continued = (state: RunState) => ({
    continueRun: { ...state, progress: { ...state.progress, iteration: 4, withinHistory: false } },
  });

  it('takes the run up where the last execution stopped, as its next execution, and renews its lease', async () => {
    const { objects, pool, state } = await prepared();
    const next = await prepareRun({ runId: 'run-1-2', input: continued(state) }, { objects, pool });
    expect(next).toEqual({
      runId: 'run-1',
      config: state.config,
      progress: {
        ...state.progress,
        iteration: 4,
        execution: 2,
        executionFirstIteration: 4,
        withinHistory: true,
      },
    });
    // A retry: the same state.
    expect(await prepareRun({ runId: 'run-1-2', input: continued(state) }, { objects, pool })).toEqual(next);
  });

  it('refuses to go on in another execution than the next, for a run that ended, or without the lease', async () => {
    const { objects, pool, state } = await prepared();
    await expect(
      prepareRun({ runId: 'run-1-3', input: continued(state) }, { objects, pool }),
    ).rejects.toThrow(/run run-1 goes on in execution run-1-2, not run-1-3/);
    const lost = { ...state, progress: { ...state.progress, fence: state.progress.fence + 1 } };
    await expect(prepareRun({ runId: 'run-1-2', input: continued(lost) }, { objects, pool })).rejects.toThrow(
      /lost the lease/,
    );
    await pool.finishRun('run-1', { status: 'ABORTED', error: 'Aborted', cause: 'stopped' });
    await expect(
      prepareRun({ runId: 'run-1-2', input: continued(state) }, { objects, pool }),
    ).rejects.toThrow(/run run-1 has ended \(ABORTED\)/);
  });

  it('refuses a run whose later executions would have names over 80 characters', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    const long = 'r'.repeat(79);
    const input = { target: 1_000_000, maxIterations: 10_000, promptsPerIteration: 100 };
    await expect(prepareRun({ runId: long, input }, { objects, pool })).rejects.toThrow(
      /up to 2 executions named after it \(r+-2\), over Step Functions' 80 characters: start it under a name of at most 78 characters/,
    );
  });
});

describe('bad input', () => {
  async function prepareWith(bytes: Uint8Array | string, input: object = {}) {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await objects.put('seeds/demo/bad.jsonl', bytes);
    const run = prepareRun(
      { runId: 'r', input: { seedKey: 'seeds/demo/bad.jsonl', ...input } },
      { objects, pool },
    );
    await expect(run).rejects.toThrow();
    // Nothing written: no task, no run, no lease, no object but the input.
    expect({ tasks: pool.tasks.size, runs: pool.runs.size, metas: pool.metas.size }).toEqual({
      tasks: 0,
      runs: 0,
      metas: 0,
    });
    expect([...objects.objects.keys()]).toEqual(['seeds/demo/bad.jsonl']);
    return run.then(
      () => new Error('resolved'),
      (error: Error) => error,
    );
  }
  const good = `${JSON.stringify(SEEDS[0])}\n`;

  it('names the line and byte of bytes that are not UTF-8, instead of storing U+FFFD', async () => {
    const bytes = new Uint8Array([
      ...new TextEncoder().encode(`${good}{"id": "x`),
      0xff,
      ...new TextEncoder().encode('"}\n'),
    ]);
    const error = await prepareWith(bytes);
    expect(error).toBeInstanceOf(SeedFileInvalid);
    expect(error.message).toBe(
      'Seed file is invalid (1 problem):\n  seeds/demo/bad.jsonl:2: not valid UTF-8 (byte 0xff at byte 10 of the line); save the file as UTF-8',
    );
  });

  it('names a line over the record size limit, before parsing it', async () => {
    const huge = JSON.stringify({ ...SEEDS[1], instruction: 'word '.repeat(20_000) });
    const error = await prepareWith(`${good}${huge}\n`);
    expect(error.message).toMatch(
      new RegExp(
        `bad\\.jsonl:2: the record is ${Buffer.byteLength(huge)} bytes, over the limit of ${MAX_SEED_RECORD_BYTES}$`,
      ),
    );
  });

  it('names the line of a duplicate id and of its first use', async () => {
    const error = await prepareWith(`${good}${JSON.stringify({ ...SEEDS[1], id: SEEDS[0]?.id })}\n`);
    expect(error.message).toMatch(/bad\.jsonl:2: id: duplicate id "seed_task_0" \(first on line 1\)$/);
  });

  it('rejects an unknown model before anything is written', async () => {
    const error = await prepareWith(good, { model: 'gpt-4o' });
    expect(error).toBeInstanceOf(RunInputInvalid);
    expect(error.message).toMatch(/^Run input is invalid: model: Unknown model "gpt-4o": no provider prefix/);
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
    const decisions = fromJsonLines(await objects.getText(result.decisionsKey)).map((line) =>
      GateRecord.parse(line),
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

  it('screens the nearest instructions that are seeds only: machine ones were screened when they joined', async () => {
    // Without the near-duplicate gate, whose offline vectors find the second candidate near seed 2.
    const { objects, pool, state } = await prepared(undefined, undefined, { embeddingModel: 'none' });
    const key = runKeys(state.runId, 1).candidates;
    const candidates = [
      'Summarize the long article in two sentences for a busy manager.', // nearest: seed 0
      'Suggest five names for a cafe that sells fresh bread and coffee.', // nearest: seed 2
      'Summarize the long story in three short sentences for a young student.', // nearest: the first
    ];
    await objects.put(key, toJsonLines(candidates.map((instruction) => ({ instruction }))));
    const asked: string[][] = [];
    const safety = {
      id: 'recording',
      async screen(texts: readonly string[]) {
        asked.push([...texts]);
        return texts.map(() => null);
      },
    };
    const input = FilterInput.parse({ ...state, candidatesKey: key });
    const { counts } = await filterAndDeduplicate(input, { objects, pool, safety });
    const decisions = fromJsonLines(await objects.getText(runKeys(state.runId, 1).gate)).map((line) =>
      GateRecord.parse(line),
    );

    expect(counts).toMatchObject({ generated: 3, accepted: 3 });
    expect(decisions.map((d) => Object.keys(d.most_similar ?? {})[0])).toEqual([
      SEEDS[0]?.instruction,
      SEEDS[2]?.instruction,
      candidates[0],
    ]);
    // The candidates, then the neighbours: the two seeds, not the machine instruction.
    expect(asked).toEqual([candidates, [SEEDS[0]?.instruction, SEEDS[2]?.instruction]]);
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

  it('accepts no more than the target leaves; later survivors are surplus, unscored and not indexed', async () => {
    const candidates = [
      'Explain how tides are caused by the moon and the sun.',
      'Explain how tides are caused by the moon and the earth.', // ROUGE-L reject, before the quota fills
      'Compare two popular chess openings for beginners.',
      'Too short.', // a heuristic reject is counted as such even after the quota
      'Describe how to keep a sourdough starter healthy.',
      'Give reasons why birds migrate south in winter.',
    ];
    const { result, decisions, pool } = await filter(candidates, { target: 2 });
    expect(decisions.map((d) => d.reason)).toEqual([null, 'rouge', null, 'too-short', 'surplus', 'surplus']);
    expect(result.counts).toEqual({ generated: 6, accepted: 2, rouge: 1, 'too-short': 1, surplus: 2 });
    expect(decisions[4]?.max_similarity).toBeNull();
    expect([...pool.tasks.values()].filter((task) => task.source === 'machine')).toHaveLength(2);
    // The same decisions as one unlimited pass, for the ones both make.
    const unlimited = await filter(candidates, { target: 100 });
    expect(unlimited.decisions.slice(0, 4)).toEqual(decisions.slice(0, 4));
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
      lowDiversity: 0,
      diversityPlateau: false,
      fence: 1,
      execution: 1,
      executionFirstIteration: 0,
      withinHistory: true,
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
  it('commits the iteration once, counting its tasks from their items, even when retried', async () => {
    const { objects, pool, state } = await prepared();
    await objects.put(runKeys('run-1', 1).index, new Uint8Array([1, 2, 3]));
    await objects.put(runKeys('run-1', 1).vectors, new Uint8Array([4, 5, 6]));
    const task = (id: string, status: PoolTask['status'], outcome?: Record<string, number>): PoolTask => ({
      id,
      pool: 'demo',
      instruction: `Instruction ${id} with enough words`,
      source: 'machine',
      status,
      rejectReason: status === 'rejected' ? 'no-valid-instances' : undefined,
      instances: status === 'complete' ? [{ input: '', output: 'x' }] : [],
      runId: 'run-1',
      iteration: 1,
      staged: 'run-1#1',
      outcome,
      createdAt: '',
    });
    for (const t of [
      task('a', 'complete'),
      task('b', 'complete', { 'instance-empty-output': 2 }),
      task('c', 'rejected'),
    ]) {
      await pool.putTaskIfAbsent(t);
    }
    const usage = { calls: 1, inputTokens: 100, outputTokens: 75, estimated: true };
    const record = (callKey: string, stage: 'generate-instructions' | 'classify', callId = 'x') =>
      pool.putCall('run-1', {
        callKey,
        callId,
        stage,
        iteration: 1,
        promptHash: 'h',
        model: 'offline',
        reply: 'r',
        finish: 'stop',
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        estimated: true,
        latencyMs: 0,
        at: '',
      });
    // Four instruction calls, one of them paid twice (an attempt that failed, then its retry), one classify call.
    for (const key of [
      '1#instructions#prompt-0',
      '1#instructions#prompt-1',
      '1#instructions#prompt-2',
      '1#instructions#prompt-3',
    ]) {
      await record(key, 'generate-instructions');
    }
    await record('1#instructions#prompt-3', 'generate-instructions', 'y');
    await record('1#chunk-0#c/classify', 'classify');
    const input = {
      ...state,
      generated: {
        prompts: 4,
        candidates: 10,
        malformed: 1,
        droppedByTruncation: 2,
        lost: 0,
        usage: { 'generate-instructions': usage },
      },
      gated: {
        chunks: [{ index: 0, ids: ['a', 'b', 'c'] }],
        counts: { generated: 10, accepted: 3, rouge: 7 },
      },
      // What the Map items said is not what counts: the items are.
      instances: [{ chunk: 0, counts: { complete: 99 }, usage: {} }],
    };
    const first = await saveIteration(input, { objects, pool });
    const retried = await saveIteration(input, { objects, pool });

    expect(first.progress).toMatchObject({
      iteration: 1,
      added: 2,
      poolSize: 5,
      yieldPerPrompt: 0.5,
      fence: 1,
    });
    expect(retried.progress).toEqual(first.progress);
    expect(pool.writes.filter((write) => write.startsWith('commit'))).toEqual([
      'commit demo run-1#0',
      'commit demo run-1#1',
    ]);
    expect(await pool.getMeta('demo')).toMatchObject({
      taskCount: 5,
      commit: { runId: 'run-1', iteration: 1 },
      indexKey: poolKeys('demo').indexVersion('run-1', 1),
    });
    expect([...pool.tasks.values()].filter((t) => t.staged !== undefined)).toEqual([]);
    // The offline model costs nothing; the AWS side is estimated from the iteration's shape.
    expect(first.progress.costUsd).toBeGreaterThan(0);
    expect(first.progress.costUsd).toBeLessThan(0.01);
    expect(first.progress.projectedCostUsd).toBeCloseTo(2 * first.progress.costUsd, 12);
    const run = pool.runs.get('run-1');
    expect(run?.cost?.modelUsd).toBe(0);
    expect(run?.counts).toEqual({
      prompts: 4,
      'reply-malformed': 1,
      'reply-truncated': 2,
      unparseable: 3,
      lost: 0,
      generated: 10,
      accepted: 3,
      rouge: 7,
      complete: 2,
      rejected: 1,
      'no-valid-instances': 1,
      'instance-empty-output': 2,
    });
    // Every billed call, the one paid twice included: six.
    expect(run?.usage).toEqual({ calls: 6, inputTokens: 600, outputTokens: 450 });
    expect(run?.stageUsage).toEqual({
      'generate-instructions:calls': 5,
      'generate-instructions:inputTokens': 500,
      'generate-instructions:outputTokens': 375,
      'classify:calls': 1,
      'classify:inputTokens': 100,
      'classify:outputTokens': 75,
    });
    expect(
      fromJsonLines<{ id: string }>(await objects.getText(poolKeys('demo').snapshot('run-1', 1))).map(
        (t) => t.id,
      ),
    ).toEqual(['a', 'b']);
    expect(objects.objects.get(poolKeys('demo').indexVersion('run-1', 1))).toEqual(new Uint8Array([1, 2, 3]));
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

  it("records a failure of a run's later execution under the run's id, read from the execution's input", async () => {
    const { pool, state } = await prepared();
    const continued = {
      ...statusChange('run-1-2', 'FAILED', 'X'),
      detail: {
        ...statusChange('run-1-2', 'FAILED', 'X').detail,
        input: JSON.stringify({ continueRun: state, AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID: 'arn:x' }),
      },
    };
    expect(runOfExecution(continued.detail)).toBe('run-1');
    expect(runOfExecution({ name: 'run-1', input: '{"target":5}' })).toBe('run-1');
    expect(runOfExecution({ name: 'run-1', input: 'not json' })).toBe('run-1');
    await recordFailure(continued, { pool });
    expect(await pool.getRun('run-1')).toMatchObject({ status: 'FAILED', error: 'X' });
    expect(await pool.getRun('run-1-2')).toBeUndefined();
    expect((await pool.getMeta('default'))?.lease).toBeUndefined();
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

  it('lets a run take a pool whose lease has expired, with a new fencing token', async () => {
    const { objects, pool } = await prepared();
    const later = new Date(Date.now() + POOL_LEASE_MS + 1000);
    const state = await prepareRun(
      { runId: 'run-2', input: { seedKey: 'seeds/demo/seeds.jsonl' } },
      { objects, pool, now: () => later },
    );
    expect(state.progress.fence).toBe(2);
    expect((await pool.getMeta('demo'))?.lease?.runId).toBe('run-2');
    expect(pool.runs.get('run-1')).toMatchObject({ status: 'FAILED', error: 'RunAbandoned' });
  });

  it('lets a run take a pool whose holder has ended, without waiting for the lease to expire', async () => {
    const { objects, pool } = await prepared();
    await pool.finishRun('run-1', { status: 'FAILED' });
    const state = await prepareRun({ runId: 'run-2', input: { pool: 'demo' } }, { objects, pool });
    expect(state.progress.fence).toBe(2);
  });

  it('lasts as long as one stage retried to the end of its policy', () => {
    expect(POOL_LEASE_MS).toBe(7 * 16 * 60 * 1000);
  });

  it('is given up when the run fails, and only by the run holding it', async () => {
    const { pool } = await prepared();
    await pool.putRun({ runId: 'run-9', pool: 'demo', status: 'RUNNING', startedAt: '' });
    await recordFailure(statusChange('run-9', 'FAILED', 'X'), { pool });
    expect((await pool.getMeta('demo'))?.lease?.runId).toBe('run-1');
    await recordFailure(statusChange('run-1', 'ABORTED'), { pool });
    expect((await pool.getMeta('demo'))?.lease).toBeUndefined();
  });

  describe('given up by a failed run', () => {
    const execution = 'arn:aws:states:us-east-1:000000000000:execution:machine:run-1';
    /** Step Functions' answer about the execution, and the executions asked about. */
    const stepFunctions = (status: string) => {
      const asked: string[] = [];
      return {
        asked,
        executions: {
          status: async (arn: string) => {
            asked.push(arn);
            return status;
          },
        },
      };
    };
    const failed = async () => {
      const run = await prepared();
      await recordFailure(statusChange('run-1', 'FAILED', 'X', 'a stage failed'), { pool: run.pool });
      return run;
    };

    it('is taken back by a stage of the redriven execution (Step Functions says it runs), the run running again', async () => {
      const { pool, state } = await failed();
      const { asked, executions } = stepFunctions('RUNNING');
      await holdPool(pool, { ...state, execution }, { executions });
      expect(asked).toEqual([execution]);
      expect((await pool.getMeta('demo'))?.lease?.runId).toBe('run-1');
      expect((await pool.getMeta('demo'))?.fence).toBe(state.progress.fence);
      const run = pool.runs.get('run-1');
      expect(run?.status).toBe('RUNNING');
      expect(run).not.toHaveProperty('error');
      // The next stage renews it as usual, without asking.
      await holdPool(pool, { ...state, execution }, { executions });
      expect(asked).toHaveLength(1);
    });

    it('is not taken back by a zombie: a Lambda of the failed or stopped execution, still running', async () => {
      for (const status of ['FAILED', 'ABORTED', 'TIMED_OUT']) {
        const { pool, state } = await failed();
        const { executions } = stepFunctions(status);
        await expect(holdPool(pool, { ...state, execution }, { executions })).rejects.toThrow(
          /Run run-1 lost the lease of pool "demo" \(it gave the lease up when it ended\)/,
        );
        expect((await pool.getMeta('demo'))?.lease).toBeUndefined();
        expect(pool.runs.get('run-1')?.status).toBe('FAILED');
      }
    });

    it('is not taken back once another run has taken the pool, even by a redrive', async () => {
      const { objects, pool, state } = await failed();
      await prepareRun({ runId: 'run-2', input: { pool: 'demo' } }, { objects, pool });
      await pool.releasePool('demo', 'run-2');
      const { asked, executions } = stepFunctions('RUNNING');
      // Free again, but its token moved on: run-2 may have changed the pool.
      await expect(holdPool(pool, { ...state, execution }, { executions })).rejects.toThrow(
        /lost the lease of pool "demo" \(it gave the lease up when it ended, and another run has grown the pool since\)/,
      );
      expect(asked).toEqual([]);
      expect(pool.runs.get('run-1')?.status).toBe('FAILED');
    });

    it('is not taken back by a stage that does not name its execution', async () => {
      const { pool, state } = await failed();
      const { asked, executions } = stepFunctions('RUNNING');
      await expect(holdPool(pool, state, { executions })).rejects.toThrow(/lost the lease/);
      expect(asked).toEqual([]);
    });
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
      format: 'classify/default',
      kind: 'chat',
      prompt: 'p',
      temperature: 0,
      topP: 1,
      maxTokens: 3,
    };
    const calls = new ModelCalls(model, { sampling: { temperature: 0.9 } });
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
