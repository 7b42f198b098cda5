/**
 * The local stack with the OpenAI protocol stand-in as an allowed model endpoint, for the end-to-end
 * tests of a feature whose model calls a test throttles or garbles: the stand-in, the stack on a fresh
 * data folder, the fast retry waits the tests use, and a `run` that expects the execution to succeed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { RunSummary } from '../../functions/shared/records.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { type OpenAIStandInOptions, type StandIn, startOpenAIStandIn } from './model-servers.ts';

export interface StandInStack {
  stack: LocalStack;
  openai: StandIn;
  /** The test's own temporary folder (the stack's data is in `data/`). */
  work: string;
  /** Runs the state machine with `input` and returns the run's summary, once it succeeded. */
  run(input: Record<string, unknown>): Promise<RunSummary>;
  close(): Promise<void>;
}

/** Starts the stand-in (with `apiKey` required, also set as `SELFINSTRUCT_API_KEY`) and the stack. */
export async function startStandInStack(
  name: string,
  options: OpenAIStandInOptions & { apiKey: string },
): Promise<StandInStack> {
  process.env.SELFINSTRUCT_RETRY_BASE_MS = '5';
  process.env.SELFINSTRUCT_RETRY_MAX_MS = '50';
  process.env.SELFINSTRUCT_API_KEY = options.apiKey;
  const work = mkdtempSync(path.join(tmpdir(), `selfinstruct-${name}-`));
  const openai = await startOpenAIStandIn(options);
  const stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    context: { 'selfinstruct:allowedModelEndpoints': [openai.url] },
  });
  return {
    stack,
    openai,
    work,
    async run(input) {
      const result = await stack.execute(input, { retryIntervalMs: 10 });
      expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
      return RunSummary.parse(result.output);
    },
    async close() {
      await stack.close();
      await openai.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
