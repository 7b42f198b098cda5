/**
 * The set-up the batch-mode tests share (Bedrock batch inference and OpenAI's Batch API, end to end and
 * unit): the model stand-ins a test file starts, the environment variables that point the run's clients
 * at them, and, end to end, the local stack on a fresh data folder of its own, synthesized with the
 * context the stand-ins need (the model, the endpoints the operator allows); model-call retries wait
 * 5–50 ms. After the tests everything is closed, each variable set back as it was, the folder removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { LocalStack, type LocalStackOptions } from '../../infra/local/stack.ts';
import type { StandIn } from './model-servers.ts';

export interface BatchStack {
  /** Keeps a server as it starts, to close it after the tests. */
  serve<T extends { close(): Promise<void> }>(starting: Promise<T>): Promise<T>;
  /** Sets environment variables for the tests; each is set back to its value before after them. */
  setEnv(variables: Record<string, string>): void;
  /** Starts the local stack on a fresh data folder of its own (`dataDir` and `fresh` are the helper's). */
  startStack(options?: Omit<LocalStackOptions, 'dataDir' | 'fresh'>): Promise<LocalStack>;
}

/**
 * Registers the set-up's `beforeAll` (the fast retry waits) and `afterAll` (closes what `serve` and
 * `startStack` started, the last first, then sets the variables back and removes the folder) in the
 * calling file or `describe`; `name` names the temporary folder.
 */
export function useBatchStack(name: string): BatchStack {
  const closers: (() => Promise<void>)[] = [];
  const saved = new Map<string, string | undefined>();
  let work: string | undefined;
  const setEnv = (variables: Record<string, string>) => {
    for (const [variable, value] of Object.entries(variables)) {
      if (!saved.has(variable)) saved.set(variable, process.env[variable]);
      process.env[variable] = value;
    }
  };
  beforeAll(() => setEnv({ SELFINSTRUCT_RETRY_BASE_MS: '5', SELFINSTRUCT_RETRY_MAX_MS: '50' }));
  afterAll(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    for (const [variable, value] of saved) {
      if (value === undefined) delete process.env[variable];
      else process.env[variable] = value;
    }
    saved.clear();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  return {
    async serve(starting) {
      const server = await starting;
      closers.push(() => server.close());
      return server;
    },
    setEnv,
    async startStack(options = {}) {
      work ??= mkdtempSync(path.join(tmpdir(), `selfinstruct-${name}-`));
      const stack = await LocalStack.start({ ...options, dataDir: path.join(work, 'data'), fresh: true });
      closers.push(() => stack.close());
      return stack;
    },
  };
}

/**
 * How many instance-generation calls a model stand-in got (on demand, not in a batch): its requests (to
 * `path` when given) whose prompt asks for the `"instances"` of a task.
 */
export const instanceRequests = (standIn: StandIn, path?: string): number =>
  standIn.requests.filter(
    (request) =>
      (path === undefined || request.path === path) &&
      JSON.stringify(request.body ?? {}).includes('\\"instances\\"'),
  ).length;
