/**
 * The one reader of a run's execution history: `reduce` folds Step Functions history events into where
 * the run stands, the progress lines come from it, and a local run's engine events become the history
 * events AWS would record.
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { RunState } from '../../functions/shared/schemas.ts';
import { progressLines } from '../../infra/cli/progress.ts';
import { withItemsDone } from '../../infra/cli/status.ts';
import { initialRunView, type RunView, reduce, timing } from '../../infra/history/run-view.ts';
import { historyEventsFor, historyRecorder } from '../../infra/local/history-events.ts';
import type { EventLog } from '../../infra/local/stack.ts';

const START = Date.UTC(2026, 0, 1);
const at = (seconds: number) => new Date(START + seconds * 1000);

/** A history written event by event, each `seconds` after the start. */
function history() {
  const events: HistoryEvent[] = [];
  const add = (seconds: number, event: Omit<HistoryEvent, 'id' | 'previousEventId' | 'timestamp'>) => {
    const id = events.length + 1;
    events.push({ ...event, id, previousEventId: id - 1, timestamp: at(seconds) });
    return id;
  };
  return {
    events,
    add,
    entered: (seconds: number, name: string, input: unknown, type = 'Task') =>
      add(seconds, {
        type: `${type}StateEntered` as HistoryEvent['type'],
        stateEnteredEventDetails: { name, input: JSON.stringify(input) },
      }),
    exited: (seconds: number, name: string, output: unknown, type = 'Task') =>
      add(seconds, {
        type: `${type}StateExited` as HistoryEvent['type'],
        stateExitedEventDetails: { name, output: JSON.stringify(output) },
      }),
  };
}

const state = (progress: { added: number; poolSize: number; costUsd?: number; iteration?: number }) =>
  RunState.parse({
    runId: 'run-1',
    config: { pool: 'p', seed: 'run-1', target: 10, maxIterations: 2 },
    progress: { iteration: 0, ...progress },
  });
const usage = (calls: number, inputTokens: number, outputTokens: number) => ({
  calls,
  inputTokens,
  outputTokens,
  estimated: false,
});
const generated = {
  candidatesKey: 'runs/run-1/1/candidates.jsonl',
  prompts: 2,
  candidates: 12,
  malformed: 1,
  droppedByTruncation: 0,
  lost: 0,
  usage: { 'generate-instructions': usage(2, 100, 200) },
};
const gated = {
  chunks: [
    { index: 0, ids: ['a', 'b', 'c'] },
    { index: 1, ids: ['d'] },
  ],
  counts: { generated: 12, accepted: 4, rouge: 7, 'too-short': 1 },
};
const instances = [
  {
    chunk: 0,
    counts: { complete: 2, 'no-valid-instances': 1, 'instance-empty-output': 3 },
    usage: { 'generate-instances': usage(3, 300, 600) },
  },
  { chunk: 1, counts: { complete: 1 }, usage: { 'generate-instances': usage(1, 50, 80) } },
];

/** One iteration of a run with a target of 10: 3 tasks added, the Map's two items done. */
function oneIteration() {
  const h = history();
  h.add(0, { type: 'ExecutionStarted', executionStartedEventDetails: { input: '{}' } });
  h.entered(1, 'Prepare run', { runId: 'run-1', input: {} });
  h.exited(2, 'Prepare run', state({ added: 0, poolSize: 175 }));
  h.entered(2, 'Plan instructions', state({ added: 0, poolSize: 175 }));
  const plan = {
    prompts: 2,
    batches: [
      { batch: 0, from: 0, to: 1 },
      { batch: 1, from: 1, to: 2 },
    ],
  };
  h.exited(2, 'Plan instructions', { ...state({ added: 0, poolSize: 175 }), instructionPlan: plan });
  h.entered(
    2,
    'Generate instructions',
    { ...state({ added: 0, poolSize: 175 }), instructionPlan: plan },
    'Map',
  );
  for (const index of [0, 1]) {
    h.add(2, {
      type: 'MapIterationStarted',
      mapIterationStartedEventDetails: { name: 'Generate instructions', index },
    });
    h.entered(2, 'Generate a batch of instructions', {});
    h.exited(3, 'Generate a batch of instructions', { batch: index });
    h.add(3, {
      type: 'MapIterationSucceeded',
      mapIterationSucceededEventDetails: { name: 'Generate instructions', index },
    });
  }
  h.exited(
    3,
    'Generate instructions',
    { ...state({ added: 0, poolSize: 175 }), instructionPlan: plan },
    'Map',
  );
  h.entered(3, 'Collect instructions', {});
  h.exited(3, 'Collect instructions', { ...state({ added: 0, poolSize: 175 }), generated });
  h.entered(3, 'Filter and deduplicate', {});
  h.exited(4, 'Filter and deduplicate', { ...state({ added: 0, poolSize: 175 }), generated, gated });
  h.entered(4, 'Generate instances', { ...state({ added: 0, poolSize: 175 }), generated, gated }, 'Map');
  for (const index of [0, 1]) {
    h.add(4, {
      type: 'MapIterationStarted',
      mapIterationStartedEventDetails: { name: 'Generate instances', index },
    });
    h.entered(5, 'Generate instances for a chunk', {});
    h.exited(6, 'Generate instances for a chunk', {});
    h.add(6, {
      type: 'MapIterationSucceeded',
      mapIterationSucceededEventDetails: { name: 'Generate instances', index },
    });
  }
  h.exited(
    7,
    'Generate instances',
    { ...state({ added: 0, poolSize: 175 }), generated, gated, instances },
    'Map',
  );
  h.entered(7, 'Save iteration', {});
  h.exited(8, 'Save iteration', state({ added: 3, poolSize: 178, costUsd: 0.0123, iteration: 1 }));
  return h;
}

const fold = (events: readonly HistoryEvent[], from: RunView = initialRunView) => events.reduce(reduce, from);

describe('the history reducer', () => {
  it('reads an iteration from its stages’ outputs: counts, usage by step, pool, cost', () => {
    const view = fold(oneIteration().events);
    expect(view).toEqual({
      status: 'RUNNING',
      state: 'Save iteration',
      iteration: 1,
      target: 10,
      maxIterations: 2,
      added: 3,
      poolSize: 178,
      counts: {
        generated: 12,
        accepted: 4,
        rouge: 7,
        'too-short': 1,
        complete: 3,
        'no-valid-instances': 1,
        'instance-empty-output': 3,
      },
      usage: { 'generate-instructions': usage(2, 100, 200), 'generate-instances': usage(4, 350, 680) },
      costUsd: 0.0123,
      chunks: undefined,
      current: {
        generation: { ...generated, candidatesKey: undefined },
        gated: gated.counts,
        tasks: { complete: 3, 'no-valid-instances': 1, 'instance-empty-output': 3 },
      },
      retries: 0,
      failedAttempts: [],
      startedAt: at(0),
    });
  });

  it('reads the gate’s counts from the sharded gate’s merge as from "Filter and deduplicate"', () => {
    const rename = (name: string | undefined) =>
      name === 'Filter and deduplicate' ? 'Filter and merge the shard scores' : name;
    const sharded = oneIteration().events.map((event) => ({
      ...event,
      ...(event.stateEnteredEventDetails && {
        stateEnteredEventDetails: {
          ...event.stateEnteredEventDetails,
          name: rename(event.stateEnteredEventDetails.name),
        },
      }),
      ...(event.stateExitedEventDetails && {
        stateExitedEventDetails: {
          ...event.stateExitedEventDetails,
          name: rename(event.stateExitedEventDetails.name),
        },
      }),
    }));
    expect(
      sharded.some((event) => event.stateExitedEventDetails?.name === 'Filter and merge the shard scores'),
    ).toBe(true);

    expect(fold(sharded).counts).toEqual(fold(oneIteration().events).counts);
    expect(fold(sharded).counts.rouge).toBe(7);
  });

  it('stays in the Map while its items run, counting them done', () => {
    const { events } = oneIteration();
    const itemDone = (map: string) =>
      events.findIndex(
        (event) =>
          event.type === 'MapIterationSucceeded' && event.mapIterationSucceededEventDetails?.name === map,
      );
    const view = fold(events.slice(0, itemDone('Generate instances') + 1));
    expect(view.state).toBe('Generate instances');
    expect(view.chunks).toEqual({ done: 1, total: 2 });
    // The instructions Map's batches are not the instances Map's chunks.
    const batching = fold(events.slice(0, itemDone('Generate instructions') + 1));
    expect(batching).toMatchObject({ state: 'Generate instructions', iteration: 1 });
    expect(batching.chunks).toBeUndefined();
  });

  it('counts a task attempt scheduled again after it failed as a retry, and a failure with no retry as none', () => {
    const h = history();
    h.entered(0, 'Generate instructions', {});
    h.add(0, { type: 'TaskScheduled' });
    const failed = h.add(1, {
      type: 'TaskFailed',
      taskFailedEventDetails: { resourceType: 'lambda', resource: 'invoke', error: 'ModelThrottled' },
    });
    h.add(3, { type: 'TaskScheduled' });
    expect(h.events.at(-1)?.previousEventId).toBe(failed);
    const retried = fold(h.events);
    expect(retried).toMatchObject({ retries: 1, failedAttempts: [] });

    const last = h.add(4, {
      type: 'TaskFailed',
      taskFailedEventDetails: { resourceType: 'lambda', resource: 'invoke', error: 'ModelThrottled' },
    });
    expect(fold(h.events)).toMatchObject({ retries: 1, failedAttempts: [last] });
  });

  it('ends a failed run with the readable message of its cause and stops its clock', () => {
    const h = history();
    h.add(0, { type: 'ExecutionStarted' });
    h.add(30, {
      type: 'ExecutionFailed',
      executionFailedEventDetails: {
        error: 'SeedFileInvalid',
        cause: JSON.stringify({ errorType: 'SeedFileInvalid', errorMessage: 'seeds.jsonl:3: not JSON' }),
      },
    });
    const view = fold(h.events);
    expect(view).toMatchObject({
      status: 'FAILED',
      error: 'SeedFileInvalid',
      cause: 'seeds.jsonl:3: not JSON',
    });
    expect(timing(view, at(500))).toEqual({ elapsedMs: 30_000 });
  });

  it('ends an aborted run at its abort, and a timed-out one at its time-out', () => {
    for (const type of ['ExecutionAborted', 'ExecutionTimedOut'] as const) {
      const h = history();
      h.add(0, { type: 'ExecutionStarted' });
      h.add(12, { type });
      const view = fold(h.events);
      expect(view.status).toBe(type === 'ExecutionAborted' ? 'ABORTED' : 'TIMED_OUT');
      expect(timing(view, at(100))).toEqual({ elapsedMs: 12_000 });
    }
  });

  it('runs again when the failed execution is redriven, in the same history, and ends with it', () => {
    const h = history();
    h.add(0, { type: 'ExecutionStarted' });
    h.add(30, {
      type: 'ExecutionFailed',
      executionFailedEventDetails: { error: 'Runtime.ExitError', cause: 'crashed' },
    });
    h.add(90, { type: 'ExecutionRedriven', executionRedrivenEventDetails: { redriveCount: 1 } });
    const redriven = fold(h.events);
    expect(redriven).toMatchObject({ status: 'RUNNING', startedAt: at(0) });
    expect(redriven).not.toHaveProperty('error', 'Runtime.ExitError');
    expect(redriven.endedAt).toBeUndefined();
    h.add(120, { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: '{"added":3}' } });
    expect(fold(h.events)).toMatchObject({ status: 'SUCCEEDED', endedAt: at(120), output: { added: 3 } });
  });

  it('counts an iteration once when a redrive enters its first state again', () => {
    const h = history();
    h.add(0, { type: 'ExecutionStarted' });
    h.entered(1, 'Plan instructions', state({ added: 3, poolSize: 178, iteration: 1 }));
    h.add(2, { type: 'ExecutionFailed', executionFailedEventDetails: { error: 'Runtime.ExitError' } });
    expect(fold(h.events).iteration).toBe(2);
    h.add(3, { type: 'ExecutionRedriven', executionRedrivenEventDetails: { redriveCount: 1 } });
    h.entered(3, 'Plan instructions', state({ added: 3, poolSize: 178, iteration: 1 }));
    expect(fold(h.events)).toMatchObject({ status: 'RUNNING', iteration: 2, state: 'Plan instructions' });
  });

  it('keeps the summary a succeeded run outputs', () => {
    const h = history();
    h.add(0, { type: 'ExecutionStarted' });
    h.add(9, { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: '{"added":3}' } });
    expect(fold(h.events)).toMatchObject({ status: 'SUCCEEDED', output: { added: 3 }, endedAt: at(9) });
  });

  it("follows a run into its next execution: the hand-off's success is not the run's end", () => {
    const h = history();
    h.add(0, { type: 'ExecutionStarted' });
    h.add(5, {
      type: 'ExecutionSucceeded',
      executionSucceededEventDetails: { output: '{"runId":"r","continuedAs":"r-2"}' },
    });
    const handedOver = fold(h.events);
    expect(handedOver).toMatchObject({ status: 'RUNNING', startedAt: at(0) });
    expect(handedOver.endedAt).toBeUndefined();
    h.add(6, { type: 'ExecutionStarted' });
    h.add(9, { type: 'ExecutionSucceeded', executionSucceededEventDetails: { output: '{"added":3}' } });
    // The run started with its first execution and ended with its last.
    expect(fold(h.events)).toMatchObject({ status: 'SUCCEEDED', startedAt: at(0), endedAt: at(9) });
  });

  it("asks a deployed source for a Distributed Map's items done, which its history does not hold", async () => {
    const h = history();
    h.add(0, { type: 'ExecutionStarted' });
    const chunks = [0, 1, 2].map((index) => ({ index, ids: [`t${index}`] }));
    h.entered(1, 'Generate instances', { gated: { chunks, counts: {} } }, 'Map');
    h.add(1, { type: 'MapRunStarted', mapRunStartedEventDetails: { mapRunArn: 'arn:run' } });
    const view = fold(h.events);
    expect(view).toMatchObject({ mapRun: 'arn:run', chunks: { done: 0, total: 3 } });
    const asked: string[] = [];
    const source = {
      history: async () => h.events,
      mapRunItemsDone: async (arn: string) => {
        asked.push(arn);
        return 2;
      },
    };
    expect((await withItemsDone(view, source)).chunks).toEqual({ done: 2, total: 3 });
    expect(asked).toEqual(['arn:run']);
    // A local history counts its items itself; an ended Map Run is not asked about.
    expect(await withItemsDone(view, { history: source.history })).toBe(view);
    h.add(2, { type: 'MapRunSucceeded' });
    expect(fold(h.events).mapRun).toBeUndefined();
  });

  it('times a running run from its start, and its time left at the rate so far', () => {
    const view = fold(oneIteration().events);
    // 3 of 10 tasks in 60 s: 7 more take 140 s.
    expect(timing(view, at(60))).toEqual({ elapsedMs: 60_000, etaMs: 140_000 });
  });

  it('leaves the view it was given as it was', () => {
    const events = oneIteration().events;
    const before = fold(events.slice(0, 8));
    const copy = structuredClone(before);
    fold(events.slice(8), before);
    expect(before).toEqual(copy);
  });
});

describe('the progress lines of a run', () => {
  it('say each iteration, each state, the Map’s items and what each stage reported', () => {
    const lines: string[] = [];
    let view = initialRunView;
    for (const event of oneIteration().events) {
      const was = view;
      view = reduce(view, event);
      lines.push(...progressLines(event, was, view));
    }
    expect(lines).toEqual([
      '  ▸ Prepare run',
      'iteration 1',
      '  ▸ Plan instructions',
      '  ▸ Generate instructions',
      '  ▸ Collect instructions',
      '    2 calls → 12 candidates (1 malformed, 0 lost to truncation)',
      '  ▸ Filter and deduplicate',
      '    accepted 4 of 12; rejected: rouge 7, too-short 1',
      '  ▸ Generate instances',
      '    chunks 2/2',
      '    tasks with valid instances 3; tasks dropped: no-valid-instances 1',
      '    instances dropped: empty-output 3',
      '  ▸ Save iteration',
      '    pool 178 tasks; this run added 3 of 10',
    ]);
  });

  it('say a failed attempt is retried when it is scheduled again', () => {
    const h = history();
    h.entered(0, 'Filter and deduplicate', {});
    h.add(1, { type: 'TaskFailed', taskFailedEventDetails: { resourceType: 'lambda', resource: 'invoke' } });
    h.add(2, { type: 'TaskScheduled' });
    const was = fold(h.events.slice(0, 2));
    expect(progressLines(h.events[2] as HistoryEvent, was, reduce(was, h.events[2] as HistoryEvent))).toEqual(
      ['    retrying "Filter and deduplicate"'],
    );
  });
});

describe('a local run’s history', () => {
  const task = (type: 'StateEntered' | 'StateExited' | 'StateFailed' | 'StateRetried', index: number) =>
    ({
      type,
      timestamp: START,
      index,
      state: { name: 'Generate instances for a chunk', type: 'Task', input: {}, output: {} },
      ...(type === 'StateFailed' ? { Error: 'ModelThrottled', Cause: 'slow down' } : {}),
      ...(type === 'StateRetried' ? { retry: { retrier: {}, attempt: 1 } } : {}),
    }) as EventLog;

  it('holds every event AWS records for a Lambda task: entered, scheduled, started, succeeded, exited', () => {
    const record = historyRecorder();
    const types = [task('StateEntered', 0), task('StateExited', 0)].flatMap(record).map((e) => e.type);
    expect(types).toEqual([
      'TaskStateEntered',
      'TaskScheduled',
      'TaskStarted',
      'TaskSucceeded',
      'TaskStateExited',
    ]);
    expect(historyEventsFor(task('StateEntered', 0))).toBe(3);
  });

  it('links a retry to the attempt that failed, whatever other Map items recorded in between', () => {
    const record = historyRecorder();
    const events = [
      task('StateEntered', 0),
      task('StateFailed', 0),
      task('StateEntered', 1),
      task('StateRetried', 0),
    ].flatMap(record);
    const failed = events.find((event) => event.type === 'TaskFailed');
    expect(failed?.taskFailedEventDetails).toMatchObject({ error: 'ModelThrottled', cause: 'slow down' });
    const retry = events.filter((event) => event.type === 'TaskScheduled').at(-1);
    expect(retry?.previousEventId).toBe(failed?.id);
    expect(events.map((event) => event.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(fold(events)).toMatchObject({ retries: 1, failedAttempts: [] });
  });
});
