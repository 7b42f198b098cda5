import { describe, expect, it } from 'vitest';
import { parseRunInput } from '../../functions/prepare/core.ts';
import {
  batchEventsPerIteration,
  checkExecutionDuration,
  checkExecutionLimits,
  executionNeeds,
  HISTORY_EVENTS_ENV,
  historyEventsLimit,
  iterationsPerExecution,
  nextIterationFits,
} from '../../functions/shared/execution-limits.ts';

/** A model with a batch API (batch mode refuses the offline model). */
const NOVA = 'bedrock:amazon.nova-micro-v1:0';

const config = (input: Record<string, unknown>) => parseRunInput(input, 'r');

/** The message `checkExecutionLimits` refuses a configuration with. */
const refusal = (input: ReturnType<typeof config>) => {
  try {
    checkExecutionLimits(input);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('not refused');
};

describe('the limits of an execution', () => {
  it('lets the default run and a 52,000-task run in 40 iterations through', () => {
    expect(() => checkExecutionLimits(config({}))).not.toThrow();
    const large = config({ target: 52_000, maxIterations: 40 });
    expect(() => checkExecutionLimits(large)).not.toThrow();
    expect(executionNeeds(large).historyEvents).toBeLessThan(25_000);
  });

  it('holds 1,000,000 tasks at the default 200 prompts, chunks of 40 and instruction batches of 40: 313 iterations, 20,052 parent events, 31,563 child executions of at most 25 events, "Save iteration" about 169 KB', () => {
    const million = config({ target: 1_000_000, maxIterations: 10_000 });
    expect(() => checkExecutionLimits(million)).not.toThrow();
    // 1,250,000 accepted at 80% complete, 4,000 an iteration (200 prompts × 20); every iteration planned
    // gated in shards (20 + 313 × (40 + 24) events); the Map items (instruction batches and chunks) are
    // child executions, none in the parent; the payload carries the plan's 5 batches (40 bytes each).
    expect(executionNeeds(million)).toEqual({
      iterations: 313,
      executions: 1,
      iterationsPerExecution: 389,
      mapItems: 31_563,
      historyEvents: 20_052,
      childHistoryEvents: 25,
      acceptedPerIteration: 4_000,
      payloadBytes: 172_696,
    });
  });

  it('goes on in new executions past one history: 389 iterations each (20 + 28 for the start, end and hand-off, 64 an iteration)', () => {
    const million = config({ target: 1_000_000, maxIterations: 10_000, promptsPerIteration: 100 });
    expect(() => checkExecutionLimits(million)).not.toThrow();
    const needs = executionNeeds(million);
    expect(needs).toMatchObject({ iterations: 625, executions: 2, iterationsPerExecution: 389 });
    expect(needs.historyEvents).toBe(20 + 28 + 389 * 64);
    expect(needs.historyEvents).toBeLessThanOrEqual(25_000);
    expect(needs.historyEvents + 64).toBeGreaterThan(25_000);
    // "Save iteration"'s question, counted from the iteration the execution began at.
    expect(nextIterationFits(million, { iteration: 388, executionFirstIteration: 0 })).toBe(true);
    expect(nextIterationFits(million, { iteration: 389, executionFirstIteration: 0 })).toBe(false);
    expect(nextIterationFits(million, { iteration: 389, executionFirstIteration: 389 })).toBe(true);
    expect(nextIterationFits(million, { iteration: 777, executionFirstIteration: 389 })).toBe(true);
    expect(nextIterationFits(million, { iteration: 778, executionFirstIteration: 389 })).toBe(false);
    // The 7-day timeout: one more iteration at twice the mean so far must end before it.
    const day = 24 * 3_600_000;
    const startedAt = new Date(Date.UTC(2026, 0, 1));
    const daysIn = (days: number) => ({ startedAt, now: new Date(startedAt.getTime() + days * day) });
    const first = { iteration: 3, executionFirstIteration: 0 };
    expect(nextIterationFits(million, first, 25_000, daysIn(4.2))).toBe(true); // 4.2 + 2.8 = 7
    expect(nextIterationFits(million, first, 25_000, daysIn(4.3))).toBe(false);
    // A batch iteration may take the job's whole 24 h window.
    const batched = config({
      target: 5_000,
      maxIterations: 50,
      batch: true,
      model: NOVA,
      batchPollSeconds: 3600,
    });
    const quick = { iteration: 40, executionFirstIteration: 0 };
    expect(nextIterationFits(batched, quick, 25_000, daysIn(5.9))).toBe(true);
    expect(nextIterationFits(batched, quick, 25_000, daysIn(6.1))).toBe(false);
    // A lowered limit (the local stack's tests): one iteration an execution at 120 events, none at 111.
    expect(iterationsPerExecution(million, 120)).toBe(1);
    expect(iterationsPerExecution(million, 111)).toBe(0);
    expect(historyEventsLimit({ [HISTORY_EVENTS_ENV]: '120' })).toBe(120);
    expect(historyEventsLimit({ [HISTORY_EVENTS_ENV]: '90000' })).toBe(25_000);
    expect(historyEventsLimit({})).toBe(25_000);
  });

  it('does not count iterations a run cannot make: a large target under a small iteration cap fits', () => {
    expect(() => checkExecutionLimits(config({ target: 1_000_000, maxIterations: 3 }))).not.toThrow();
    expect(
      executionNeeds(config({ target: 100_000, maxIterations: 10, promptsPerIteration: 3 })),
    ).toMatchObject({
      iterations: 10,
      acceptedPerIteration: 60,
    });
  });

  it('refuses prompts per iteration whose accepted ids would overflow a state payload, and the prompts it names fit', () => {
    const large = config({ target: 1_000_000, maxPromptsPerIteration: 5_000 });
    const message = refusal(large);
    expect(message).toMatch(
      /"Save iteration"'s input about \d+ KB, over Step Functions' 256 KB per state: use at most (\d+) prompts per iteration/,
    );
    const prompts = Number(/at most (\d+) prompts/.exec(message)?.[1]);
    // 4 KB + 32 bytes per accepted id + 400 per Map item of 40 + 40 per instruction batch of 40: 306
    // prompts (6,120 ids, 154 items, 8 batches).
    expect(prompts).toBe(306);
    expect(() => checkExecutionLimits({ ...large, maxPromptsPerIteration: prompts })).not.toThrow();
    expect(refusal({ ...large, maxPromptsPerIteration: prompts + 1 })).toMatch(/256 KB per state/);
    // Smaller Map items make more of them: fewer prompts fit.
    const small = refusal({ ...large, chunkSize: 5 });
    expect(Number(/at most (\d+) prompts/.exec(small)?.[1])).toBeLessThan(prompts);
    // So do smaller instruction batches: the plan the state carries has more of them.
    const single = refusal({ ...large, instructionBatchSize: 1 });
    expect(Number(/at most (\d+) prompts/.exec(single)?.[1])).toBeLessThan(prompts);
  });

  it('plans a batch iteration for every look the 24 h window allows: 8 + 10 × 1,441 events at 60 s, none without batch mode', () => {
    expect(batchEventsPerIteration(config({}))).toBe(0);
    expect(batchEventsPerIteration(config({ batch: true, model: NOVA }))).toBe(8 + 10 * 1_441);
    expect(batchEventsPerIteration(config({ batch: true, model: NOVA, batchPollSeconds: 3600 }))).toBe(
      8 + 10 * 25,
    );
    const one = config({ target: 200, maxIterations: 1, batch: true, model: NOVA });
    expect(executionNeeds(one).historyEvents).toBe(20 + 40 + 24 + 8 + 10 * 1_441);
    expect(() => checkExecutionLimits(one)).not.toThrow();
  });

  it('runs a batch run one iteration an execution at 60 s, and refuses a poll loop longer than an execution, naming a poll interval that fits', () => {
    const batched = config({
      target: 5_000,
      maxIterations: 5,
      promptsPerIteration: 50,
      batch: true,
      model: NOVA,
    });
    expect(executionNeeds(batched)).toMatchObject({
      iterations: 5,
      executions: 5,
      iterationsPerExecution: 1,
    });
    expect(() => checkExecutionLimits(batched)).not.toThrow();
    // Under a lower limit (10,000 events) one iteration's 1,441 looks do not fit an execution.
    process.env[HISTORY_EVENTS_ENV] = '10000';
    try {
      const message = refusal(batched);
      expect(message).toMatch(
        /in batch mode an iteration may wait up to the provider's 24 h job window, 1441 looks 60 s apart \(about 14482 history events with the iteration's own\), more than one execution holds \(Step Functions' 10,000 events\): raise batchPollSeconds to (\d+)$/,
      );
      const seconds = Number(/raise batchPollSeconds to (\d+)/.exec(message)?.[1]);
      expect(() => checkExecutionLimits({ ...batched, batchPollSeconds: seconds })).not.toThrow();
      expect(refusal({ ...batched, batchPollSeconds: seconds - 1 })).toMatch(/in batch mode/);
      // The same run on demand fits.
      expect(() => checkExecutionLimits({ ...batched, batch: false })).not.toThrow();
    } finally {
      delete process.env[HISTORY_EVENTS_ENV];
    }
  });

  it("refuses a projected duration past the state machine's 7-day timeout", () => {
    expect(() => checkExecutionDuration(168)).not.toThrow();
    expect(() => checkExecutionDuration(169)).toThrow(/over the state machine's 7-day timeout/);
  });
});
