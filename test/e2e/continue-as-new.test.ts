/**
 * End to end, on the local stack: a run whose next iteration might not fit in its execution's history
 * goes on in a new execution of the state machine (`<run>-2`, `<run>-3` …), as many times as it takes.
 * The history limit is lowered to 120 events, both the one the local stack enforces and the one the
 * run plans with (`SELFINSTRUCT_HISTORY_EVENTS`), so that each execution holds one iteration. The chained
 * run adds the same tasks as the same run in one execution; a lost reply of the hand-off starts no second
 * execution; a run that fails in a later execution is recorded failed under its own id, its pool free.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HISTORY_EVENTS_ENV, iterationsPerExecution } from '../../functions/shared/execution-limits.ts';
import { exportKeys } from '../../functions/shared/keys.ts';
import { CONTROL_STATES, INSTRUCTION_BATCH_STATES, STAGES } from '../../functions/stages.ts';
import { HistoryCounter } from '../../infra/local/history-events.ts';
import { type EventLog, type ExecuteOptions, LocalStack } from '../../infra/local/stack.ts';
import { enteredStates, succeededSummary } from '../support/local-stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-continue-'));
const LIMIT = 120;
const input = {
  seed: 'continue-as-new-e2e',
  target: 1000,
  maxIterations: 3,
  promptsPerIteration: 4,
  chunkSize: 10,
};

afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => {
  delete process.env[HISTORY_EVENTS_ENV];
});

/**
 * Runs `input` as run `runId` on a fresh local stack, its history limit lowered to `limit` when given
 * (enforced, and planned with); returns the result, each execution's parent events, and the dataset.
 */
async function runOn(
  name: string,
  limit: number | undefined,
  options: Omit<ExecuteOptions, 'executionName' | 'onEvent'> = {},
  runInput: Record<string, unknown> = input,
) {
  if (limit === undefined) delete process.env[HISTORY_EVENTS_ENV];
  else process.env[HISTORY_EVENTS_ENV] = String(limit);
  const stack = await LocalStack.start({ dataDir: path.join(work, name), fresh: true });
  try {
    const counters = new Map<string, HistoryCounter>();
    const result = await stack.execute(runInput, {
      ...options,
      executionName: 'run-chain',
      retryIntervalMs: 10,
      ...(limit === undefined ? {} : { limits: { historyEvents: limit } }),
      onEvent: (event: EventLog, execution: string) => {
        const counter = counters.get(execution) ?? new HistoryCounter(stack.distributed);
        counters.set(execution, counter);
        counter.add(event);
      },
    });
    const parentEvents = Object.fromEntries([...counters].map(([execution, c]) => [execution, c.parent]));
    const dataset =
      result.status === 'SUCCEEDED'
        ? await stack.objects.getText(exportKeys('run-chain').dataset)
        : undefined;
    const run = await stack.pool.getRun('run-chain');
    const meta = await stack.pool.getMeta('default');
    return { result, parentEvents, dataset, run, meta };
  } finally {
    await stack.close();
  }
}

describe('a run longer than one execution', { timeout: 300_000 }, () => {
  it('goes on in new executions, each within the history limit, and adds what one execution adds', async () => {
    expect(iterationsPerExecution({}, LIMIT)).toBe(1);
    const chained = await runOn('chained', LIMIT);
    const summary = succeededSummary(chained.result);
    expect(chained.result.executions).toEqual(['run-chain', 'run-chain-2', 'run-chain-3']);
    for (const events of Object.values(chained.parentEvents)) expect(events).toBeLessThan(LIMIT);
    // One iteration each; the first prepares the run, the later ones take it up; the last exports.
    const entered = enteredStates(chained.result);
    expect(entered.filter((state) => state === INSTRUCTION_BATCH_STATES.plan)).toHaveLength(3);
    expect(entered.filter((state) => state === STAGES.prepare.state)).toHaveLength(3);
    expect(entered.filter((state) => state === CONTROL_STATES.continue)).toHaveLength(2);
    expect(entered.filter((state) => state === STAGES.exportDataset.state)).toHaveLength(1);
    expect(summary.iterations).toBe(3);
    expect(chained.run).toMatchObject({ status: 'SUCCEEDED', iteration: 3 });
    expect(chained.meta?.lease).toBeUndefined();

    // The same run in one execution (the limit not lowered): the same tasks, the same counts.
    const single = await runOn('single', undefined);
    expect(single.result.executions).toEqual(['run-chain']);
    const one = succeededSummary(single.result);
    expect(Object.values(single.parentEvents)[0]).toBeGreaterThan(LIMIT);
    expect(summary.counts).toEqual(one.counts);
    expect(summary.added).toBe(one.added);
    expect(chained.dataset).toBeDefined();
    expect(chained.dataset).toBe(single.dataset);
  });

  it('starts the next execution once when the reply of the hand-off is lost and the hand-off retried', async () => {
    const lost = await runOn('lost-reply', LIMIT, {
      faults: [
        {
          kind: 'crash',
          when: 'after',
          invocation: (invocation) => invocation.state === CONTROL_STATES.continue,
        },
      ],
    });
    succeededSummary(lost.result);
    expect(lost.result.faultsStruck.crash).toBe(1);
    expect(lost.result.executions).toEqual(['run-chain', 'run-chain-2', 'run-chain-3']);
    // The retry found the execution it had started.
    const handOffs = lost.result.events.filter(
      (event) => event.type === 'StateRetried' && event.state.name === CONTROL_STATES.continue,
    );
    expect(handOffs).toHaveLength(1);
    // …as running with the same name and input (StartExecution is idempotent), not as already there.
    expect(
      lost.result.events.filter(
        (event) => event.type === 'StateCaught' && event.state.name === CONTROL_STATES.continue,
      ),
    ).toEqual([]);
  });

  it('records a run that fails in a later execution as failed, under its own id, and frees its pool', async () => {
    const failed = await runOn('failed-later', LIMIT, {
      faults: [
        {
          kind: 'crash',
          times: 7,
          error: 'Runtime.ExitError',
          invocation: (invocation) =>
            invocation.state === INSTRUCTION_BATCH_STATES.plan &&
            (invocation.input as { progress: { execution: number } }).progress.execution === 2,
        },
      ],
    });
    expect(failed.result.status).toBe('FAILED');
    expect(failed.result.executions).toEqual(['run-chain', 'run-chain-2']);
    expect(failed.result.deliveries.filter((delivery) => delivery.error)).toEqual([]);
    expect(failed.run).toMatchObject({ status: 'FAILED', error: 'Runtime.ExitError' });
    expect(failed.meta?.lease).toBeUndefined();
  });
});
