/**
 * End to end, on the local stack (local S3 and DynamoDB servers, IAM enforced): "Generate instructions"
 * as a Map of batches. Two iterations of 7 calls in batches of 3 (three Map items each); one batch is
 * killed right after its first write and retried, another is delivered twice, overlapping. Every
 * batch's candidates reach "Filter and deduplicate", every billed call is in the ledger and in the run's
 * usage, and the pool grows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { runKeys } from '../../functions/shared/keys.ts';
import type { Candidate } from '../../functions/shared/schemas.ts';
import type { Fault, InvocationInfo } from '../../infra/local/faults.ts';
import { type ExecutionResult, LocalStack } from '../../infra/local/stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-batches-'));
const BATCH_TASK = 'Generate a batch of instructions';
const input = {
  pool: 'batches',
  target: 1000,
  maxIterations: 2,
  promptsPerIteration: 7,
  instructionBatchSize: 3,
  chunkSize: 5,
};
let stack: LocalStack;
let result: ExecutionResult;

/** The first delivery of batch `batch` of iteration `iteration` (from 1). */
const batchOf =
  (iteration: number, batch: number) =>
  ({ state, input, attempt }: InvocationInfo) => {
    const item = input as { progress: { iteration: number }; instructions?: { batch?: { batch: number } } };
    return (
      state === BATCH_TASK &&
      attempt === 1 &&
      item.progress.iteration === iteration - 1 &&
      item.instructions?.batch?.batch === batch
    );
  };

beforeAll(async () => {
  stack = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
  const faults: Fault[] = [
    // Dies right after its candidates land: the retry finds its calls recorded and pays for none.
    {
      kind: 'crash',
      when: 'after',
      invocation: batchOf(1, 1),
      request: (r) => r.service === 's3' && r.operation === 'PutObject',
    },
    { kind: 'duplicate', invocation: batchOf(2, 2) },
  ];
  result = await stack.execute(input, { retryIntervalMs: 10, faults });
}, 240_000);

afterAll(async () => {
  await stack.close();
  rmSync(work, { recursive: true, force: true });
});

describe('instruction generation as a Map of batches', () => {
  it('runs three batches per iteration, retries the killed one, and succeeds', () => {
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(result.faultsStruck).toMatchObject({ crash: 1, duplicate: 1 });
    const failed = result.events.flatMap((e) =>
      e.type === 'StateFailed' ? [`${e.state.name}: ${(e as { Error?: string }).Error}`] : [],
    );
    expect(failed).toEqual([`${BATCH_TASK}: Lambda.Unknown`]);
    const items = result.events.filter(
      (e) => e.type === 'MapIterationStarted' && e.parentState.name === 'Generate instructions',
    );
    expect(items).toHaveLength(6);
  });

  it('grows the pool', async () => {
    const run = await stack.pool.getRun(result.executionName);
    const meta = await stack.pool.getMeta('batches');
    expect(run?.status).toBe('SUCCEEDED');
    expect(run?.counts?.prompts).toBe(14);
    expect(run?.counts?.complete).toBeGreaterThan(0);
    expect(meta?.taskCount).toBeGreaterThan(run?.counts?.complete ?? 0);
  });

  it('hands every batch’s candidates, in batch order, to "Filter and deduplicate", which decides on each', async () => {
    for (const iteration of [1, 2]) {
      const keys = runKeys(result.executionName, iteration);
      const batches = await Promise.all(
        [0, 1, 2].map(async (b) => (await stack.objects.getText(keys.instructionBatch(b).candidates)) ?? ''),
      );
      const candidates = fromJsonLines<Candidate & { call: number }>(
        await stack.objects.getText(keys.candidates),
      );
      expect(batches.every((text) => text.length > 0)).toBe(true);
      expect(await stack.objects.getText(keys.candidates)).toBe(batches.join(''));
      expect(new Set(candidates.map((c) => c.call))).toEqual(new Set([0, 1, 2, 3, 4, 5, 6]));
      const decisions = fromJsonLines(await stack.objects.getText(keys.gate));
      expect(decisions).toHaveLength(candidates.length);
    }
  });

  it('records every billed call in the ledger, and the run’s usage counts each once', async () => {
    const calls = (await stack.pool.listCalls(result.executionName, '')).filter(
      (call) => call.stage === 'generate-instructions',
    );
    const keys = (iteration: number) => calls.filter((c) => c.iteration === iteration).map((c) => c.callKey);
    const expected = (iteration: number) =>
      Array.from({ length: 7 }, (_, i) => `${iteration}#instructions#prompt-${i}`);
    // The killed batch's retry was served its recorded replies: each call of iteration 1 billed once.
    expect(keys(1).sort()).toEqual(expected(1).sort());
    // The duplicated batch's twin may have paid again for calls in flight: each is recorded.
    expect(new Set(keys(2))).toEqual(new Set(expected(2)));
    const run = await stack.pool.getRun(result.executionName);
    expect(run?.stageUsage?.['generate-instructions:calls']).toBe(calls.length);
  });
});
