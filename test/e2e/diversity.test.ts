/**
 * End to end, through the state machine on the local stack: "Save iteration" measures each iteration's
 * diversity into the run record, and the `diversityPlateau` rule stops the loop at "Enough
 * instructions?" with the reason "diversity plateau", the dataset still exported.
 */
import { describe, expect, it } from 'vitest';
import { exportKeys } from '../../functions/shared/keys.ts';
import { IterationRecord } from '../../functions/shared/records.ts';
import { useLocalStack } from '../support/local-stack.ts';

const local = useLocalStack('diversity');
const run = async (input: Record<string, unknown>) => (await local.run(input)).summary;

describe('diversity per iteration', { timeout: 240_000 }, () => {
  it('stops with "diversity plateau" once new verb–noun pairs stay below the floor for the rule\'s iterations', async () => {
    // A floor no iteration reaches (every added task would need a pair of its own): two iterations below it.
    const summary = await run({
      pool: 'plateau',
      // A fixed seed (by default the run id's, random): the offline model's replies are the same each time.
      seed: 'diversity-e2e',
      target: 100_000,
      maxIterations: 6,
      promptsPerIteration: 6,
      diversityPlateau: { floor: 1, iterations: 2 },
    });

    expect(summary.iterations).toBe(2);
    expect(summary.stopReason).toMatch(/^diversity plateau: tasks with a new verb–noun pair below 100%/);
    expect(await local.stack.objects.getText(exportKeys(summary.runId).dataset)).toBeDefined();
    const iterations = await local.stack.pool.getIterations(summary.runId);
    const [first, second] = [1, 2].map((n) => IterationRecord.parse(iterations[n]).diversity);
    expect(first?.added).toBeGreaterThan(0);
    // Every pair of the first iteration is new to the run; the second meets some again.
    expect(first?.newPairs).toBe(first?.distinctPairs);
    expect(second?.newPairs).toBeLessThan(second?.distinctPairs ?? 0);
    expect(second?.newPairShare).toBeLessThan(1);
    // The offline embeddings ran: the new-cluster share is measured.
    expect(first?.newClusterShare).toBeGreaterThan(0);
  });

  it('runs to the iteration cap with the rule off', async () => {
    const summary = await run({
      pool: 'no-plateau',
      seed: 'diversity-e2e',
      target: 100_000,
      maxIterations: 2,
      promptsPerIteration: 3,
      diversityPlateau: false,
    });
    expect(summary.iterations).toBe(2);
    expect(summary.stopReason).toMatch(/^iteration cap reached/);
  });
});
