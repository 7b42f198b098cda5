/**
 * The local stack for an end-to-end test file: started on a fresh data folder in a temporary folder of
 * its own before the file's tests, closed and removed after them, and `run`, which executes the state
 * machine (Retry waits of 10 ms) and expects the run to succeed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys } from '../../functions/shared/keys.ts';
import { RunSummary, TaskLine } from '../../functions/shared/records.ts';
import type { Fault } from '../../infra/local/faults.ts';
import { type ExecutionResult, LocalStack } from '../../infra/local/stack.ts';

/** A run that succeeded: its summary, and the names of the states it entered, in order. */
export interface SucceededRun {
  summary: RunSummary;
  entered: string[];
}

export interface TestStack {
  /** The started stack (for its objects and pool); only inside the file's tests and hooks. */
  readonly stack: LocalStack;
  /** Runs the state machine with `input`; fails the test unless the run succeeded. */
  run(input: Record<string, unknown>): Promise<SucceededRun>;
}

/** What a stage's invocation carries that a fault picks it by: the run's progress, a Map item's chunk. */
export interface FaultTarget {
  progress: { iteration: number; execution: number };
  chunk?: { index: number };
}

/** A small run on its own pool (3 prompts an iteration, chunks of 10), seeded by `prefix` and the pool. */
export const smallRunInput = (prefix: string, pool: string, maxIterations: number) => ({
  pool,
  seed: `${prefix}-${pool}`,
  target: 1000,
  maxIterations,
  promptsPerIteration: 3,
  chunkSize: 10,
});

/**
 * A fault that crashes every attempt of `state` (its Retry's 7) when `when` accepts the invocation's
 * input: the state, so the execution, fails there.
 */
export const crashEveryAttempt = (state: string, when: (input: FaultTarget) => boolean): Fault => ({
  kind: 'crash',
  times: 7,
  error: 'Runtime.ExitError',
  invocation: (invocation) => invocation.state === state && when(invocation.input as FaultTarget),
});

/** The names of the states an execution entered, in order (Map items' states included). */
export const enteredStates = (result: ExecutionResult): string[] =>
  result.events.flatMap((event) =>
    event.type === 'StateEntered' && 'state' in event && event.state ? [event.state.name] : [],
  );

/** How often an execution entered the state `name`. */
export const timesEntered = (result: ExecutionResult, name: string): number =>
  enteredStates(result).filter((entered) => entered === name).length;

/** The summary of a run that must have succeeded (fails the test with the run's error otherwise). */
export function succeededSummary(result: ExecutionResult): RunSummary {
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  return result.output as RunSummary;
}

/** The tasks a run's "Export dataset" wrote to the bucket (`tasks.jsonl`: every machine task of its pool), parsed. */
export async function exportedTasks(stack: LocalStack, runId: string): Promise<TaskLine[]> {
  return fromJsonLines<unknown>(await stack.objects.getText(exportKeys(runId).tasks)).map((line) =>
    TaskLine.parse(line),
  );
}

/** Registers the stack's start and close as the calling file's `beforeAll` and `afterAll`. */
export function useLocalStack(name: string): TestStack {
  let work: string | undefined;
  let started: LocalStack | undefined;
  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), `selfinstruct-${name}-`));
    started = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
  }, 120_000);
  afterAll(async () => {
    await started?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  const stack = () => {
    if (!started) throw new Error(`The local stack of ${name} is used before it started`);
    return started;
  };
  return {
    get stack() {
      return stack();
    },
    async run(input) {
      const result = await stack().execute(input, { retryIntervalMs: 10 });
      expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
      return { summary: RunSummary.parse(result.output), entered: enteredStates(result) };
    },
  };
}
