import { describe, expect, it } from 'vitest';
import { parseRunInput } from '../../functions/prepare/core.ts';
import {
  batchEventsPerIteration,
  checkExecutionDuration,
  checkExecutionLimits,
  executionNeeds,
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

describe('the limits of one execution', () => {
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
      mapItems: 31_563,
      historyEvents: 20_052,
      childHistoryEvents: 25,
      acceptedPerIteration: 4_000,
      payloadBytes: 172_696,
    });
  });

  it('refuses too many iterations for one history, and the largest target and fewest prompts it names fit', () => {
    const million = config({ target: 1_000_000, maxIterations: 10_000, promptsPerIteration: 100 });
    const message = refusal(million);
    expect(message).toMatch(
      /adding 1000000 tasks takes about 40020 history events \(625 iterations of 100 prompts, .*\), over Step Functions' 25,000 per execution: split it into runs of at most (\d+) tasks on the same pool, or raise promptsPerIteration to (\d+)$/,
    );
    const target = Number(/at most (\d+) tasks/.exec(message)?.[1]);
    expect(() => checkExecutionLimits({ ...million, target })).not.toThrow();
    expect(refusal({ ...million, target: target + 1 })).toMatch(/history events/);
    const prompts = Number(/raise promptsPerIteration to (\d+)/.exec(message)?.[1]);
    expect(() => checkExecutionLimits({ ...million, promptsPerIteration: prompts })).not.toThrow();
    expect(refusal({ ...million, promptsPerIteration: prompts - 1 })).toMatch(/history events/);
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

  it('refuses a batch run whose poll loops could cross the history limit, and the poll interval it names fits', () => {
    const batched = config({
      target: 5_000,
      maxIterations: 5,
      promptsPerIteration: 50,
      batch: true,
      model: NOVA,
    });
    expect(executionNeeds(batched).iterations).toBe(5);
    const message = refusal(batched);
    expect(message).toMatch(
      /in batch mode each iteration may wait up to the provider's 24 h job window, 1441 looks 60 s apart \(about 14418 history events\); 5 iterations take about \d+ events at worst, .*: raise batchPollSeconds to (\d+), or split it/,
    );
    const seconds = Number(/raise batchPollSeconds to (\d+)/.exec(message)?.[1]);
    expect(() => checkExecutionLimits({ ...batched, batchPollSeconds: seconds })).not.toThrow();
    expect(refusal({ ...batched, batchPollSeconds: seconds - 1 })).toMatch(/in batch mode/);
    // The same run on demand fits.
    expect(() => checkExecutionLimits({ ...batched, batch: false })).not.toThrow();
  });

  it("refuses a projected duration past the state machine's 7-day timeout", () => {
    expect(() => checkExecutionDuration(168)).not.toThrow();
    expect(() => checkExecutionDuration(169)).toThrow(/over the state machine's 7-day timeout/);
  });
});
