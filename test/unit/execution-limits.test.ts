import { describe, expect, it } from 'vitest';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { checkExecutionLimits, executionNeeds } from '../../functions/shared/execution-limits.ts';

const config = (input: Record<string, unknown>) => parseRunInput(input, 'r');

describe('the limits of one execution', () => {
  it('lets the default run and a 52,000-task run in 40 iterations through', () => {
    expect(() => checkExecutionLimits(config({}))).not.toThrow();
    const large = config({ target: 52_000, maxIterations: 40 });
    expect(() => checkExecutionLimits(large)).not.toThrow();
    expect(executionNeeds(large).historyEvents).toBeLessThan(25_000);
  });

  it('refuses a million tasks in one execution, saying how large a run may be and what chunk size would do', () => {
    const million = config({ target: 1_000_000, maxIterations: 1_000 });
    expect(() => checkExecutionLimits(million)).toThrow(
      /adding 1000000 tasks takes about \d+ history events .* over Step Functions' 25,000 per execution: split it into runs of at most \d+ tasks on the same pool/,
    );
    const message = (() => {
      try {
        checkExecutionLimits(million);
      } catch (error) {
        return (error as Error).message;
      }
    })();
    const largest = Number(/at most (\d+) tasks/.exec(message ?? '')?.[1]);
    expect(() => checkExecutionLimits({ ...million, target: largest })).not.toThrow();
    expect(() => checkExecutionLimits({ ...million, target: largest + 1 })).toThrow(/history events/);
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

  it('refuses prompts per iteration whose accepted ids would overflow a state payload', () => {
    expect(() => checkExecutionLimits(config({ target: 1_000_000, maxPromptsPerIteration: 5_000 }))).toThrow(
      /over Step Functions' 256 KB per state: use at most \d+ prompts per iteration/,
    );
  });
});
