/**
 * End to end, on the local stack: a failed run resumed by `RedriveExecution`. Its first stage takes
 * back the lease "Record failure" gave up (no run took the pool since, and Step Functions says the
 * execution is running again), and the run ends as the same run without the failure would have: the
 * same dataset, byte for byte. A redrive after another run took the pool stops with `PoolBusy`,
 * writing nothing; a zombie of the failed execution (a Lambda still running) may not take the pool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportKeys } from '../../functions/shared/keys.ts';
import { holdPool } from '../../functions/shared/pool-lease.ts';
import { STAGES } from '../../functions/stages.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { crashEveryAttempt, succeededSummary } from '../support/local-stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-redrive-'));
const RUN = 'run-redrive';
const input = { seed: 'redrive-e2e', target: 1000, maxIterations: 3, promptsPerIteration: 4, chunkSize: 10 };

/** Every attempt of the second iteration's first chunk crashes: the instances Map, so the run, fails. */
const failSecondIteration = crashEveryAttempt(
  STAGES.generateInstances.state,
  ({ progress, chunk }) => progress.iteration === 1 && chunk?.index === 0,
);

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function onStack<T>(name: string, use: (stack: LocalStack) => Promise<T>): Promise<T> {
  const stack = await LocalStack.start({ dataDir: path.join(work, name), fresh: true });
  try {
    return await use(stack);
  } finally {
    await stack.close();
  }
}

/** Runs `input` as RUN until it fails in its second iteration. */
async function failRun(stack: LocalStack): Promise<void> {
  const failed = await stack.execute(input, {
    executionName: RUN,
    retryIntervalMs: 10,
    faults: [failSecondIteration],
  });
  expect(failed.status).toBe('FAILED');
}

describe('a failed run, redriven', { timeout: 300_000 }, () => {
  it('takes its pool back and ends as the same run without the failure would have', async () => {
    const uninterrupted = await onStack('uninterrupted', async (stack) => {
      succeededSummary(await stack.execute(input, { executionName: RUN, retryIntervalMs: 10 }));
      return {
        dataset: await stack.objects.getText(exportKeys(RUN).dataset),
        meta: await stack.pool.getMeta('default'),
      };
    });

    await onStack('redriven', async (stack) => {
      await failRun(stack);
      const fence = (await stack.pool.getMeta('default'))?.fence ?? 0;
      expect(await stack.pool.getRun(RUN)).toMatchObject({ status: 'FAILED' });
      expect((await stack.pool.getMeta('default'))?.lease).toBeUndefined();

      // A zombie of the failed execution: Step Functions (the local endpoint) says FAILED, so no take-back.
      const execution = stack.executionArn(RUN);
      await expect(
        holdPool(stack.pool, { runId: RUN, config: { pool: 'default' }, progress: { fence }, execution }),
      ).rejects.toThrow(/lost the lease of pool "default" \(it gave the lease up when it ended\)/);
      expect((await stack.pool.getMeta('default'))?.lease).toBeUndefined();

      const redriven = await stack.redrive(RUN, { retryIntervalMs: 10 });
      const summary = succeededSummary(redriven);
      expect(summary.iterations).toBe(3);
      // Resumed at the failed Map: "Prepare run" and the first iteration's stages did not run again.
      const entered = redriven.events.flatMap((event) =>
        event.type === 'StateEntered' ? [event.state.name] : [],
      );
      expect(entered).not.toContain(STAGES.prepare.state);
      expect(entered[0]).toBe(STAGES.generateInstances.mapState);
      expect(await stack.pool.getRun(RUN)).toMatchObject({ status: 'SUCCEEDED', iteration: 3 });
      const meta = await stack.pool.getMeta('default');
      expect(meta?.lease).toBeUndefined();
      expect(meta?.fence).toBe(fence);
      expect(meta?.taskCount).toBe(uninterrupted.meta?.taskCount);
      expect(await stack.objects.getText(exportKeys(RUN).dataset)).toBe(uninterrupted.dataset);
    });
  });

  it('stops with PoolBusy, writing nothing, when another run took the pool meanwhile', async () => {
    await onStack('taken', async (stack) => {
      await failRun(stack);
      succeededSummary(
        await stack.execute(
          { ...input, maxIterations: 1 },
          { executionName: 'run-other', retryIntervalMs: 10 },
        ),
      );
      const before = await stack.pool.getMeta('default');
      const tasks = (await stack.objects.getText(exportKeys('run-other').dataset))?.length;

      const redriven = await stack.redrive(RUN, { retryIntervalMs: 10 });
      expect(redriven.status).toBe('FAILED');
      // The Map's item stopped at its first write (on AWS the Map then fails with
      // States.ExceedToleratedFailureThreshold, the item's PoolBusy in its child's history).
      const failures = redriven.events.flatMap((event) =>
        event.type === 'StateFailed' || event.type === 'MapIterationFailed' ? [JSON.stringify(event)] : [],
      );
      expect(failures.join('\n')).toMatch(
        /PoolBusy.*Run run-redrive lost the lease of pool .*default.* \(it gave the lease up when it ended, and another run has grown the pool since\)/,
      );
      expect(await stack.pool.getRun(RUN)).toMatchObject({ status: 'FAILED' });
      expect(await stack.pool.getMeta('default')).toEqual(before);
      expect((await stack.objects.getText(exportKeys('run-other').dataset))?.length).toBe(tasks);
    });
  });
});
