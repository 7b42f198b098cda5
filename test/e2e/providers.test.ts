/**
 * Model providers through the whole state machine, against local stand-ins that speak the real wire
 * protocols (Bedrock's Converse API over HTTP/2, the OpenAI API over HTTP/1.1): throttling retried
 * inside the stage (and by the state machine when a stage loses too many calls), every billed call
 * counted in the usage, a permanent error failing the run with a readable cause, malformed replies
 * recorded and counted, token usage and cost accounted, a budget stopping the loop, and a replayed run
 * reproducing its recording.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableCause } from '../../functions/record-failure/core.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, runKeys } from '../../functions/shared/keys.ts';
import type { CallRecord } from '../../functions/shared/model-calls.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { type ExecutionResult, LocalStack } from '../../infra/local/stack.ts';
import {
  MALFORMED_TEXT,
  type RecordedRequest,
  type StandIn,
  startBedrockStandIn,
  startOpenAIStandIn,
  times,
} from '../support/model-servers.ts';

const KEY = 'sk-test-0123456789abcdef';
const NOVA = 'bedrock:amazon.nova-micro-v1:0';
const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-providers-'));
let stack: LocalStack;
let openai: StandIn;
let bedrock: StandIn;
/** A stand-in whose faults a test sets (`flakyFault`), and one without noise. */
let flaky: StandIn;
let flakyFault: NonNullable<Parameters<typeof startOpenAIStandIn>[0]>['fault'] = () => undefined;
let quiet: StandIn;

const small = { target: 1000, maxIterations: 1, promptsPerIteration: 3, chunkSize: 10 };
const retried = (result: ExecutionResult) =>
  result.events.flatMap((event) => (event.type === 'StateRetried' ? [event.state.name] : []));
const summaryOf = (result: ExecutionResult) => {
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  return result.output as RunSummary;
};

/** The text of a chat request's messages. */
const promptOf = (request: RecordedRequest) =>
  ((request.body?.messages ?? []) as { content?: unknown }[])
    .map((message) => String(message.content))
    .join('\n');
/** An instruction-generation request of the `default` profile (its reply format names "tasks"). */
const asksForTasks = (request: RecordedRequest) => promptOf(request).includes('{"tasks"');

/** The chat requests the stand-in answered with a reply: the calls a provider bills. */
const billed = (standIn: StandIn) =>
  standIn.requests.filter(
    (request) => request.path.endsWith('/chat/completions') && request.reply?.status === 200,
  );

beforeAll(async () => {
  // Backoff inside the stages in milliseconds, not seconds: the same policy, scaled down.
  process.env.SELFINSTRUCT_RETRY_BASE_MS = '5';
  process.env.SELFINSTRUCT_RETRY_MAX_MS = '50';
  openai = await startOpenAIStandIn({ apiKey: KEY });
  flaky = await startOpenAIStandIn({ apiKey: KEY, fault: (request) => flakyFault?.(request) });
  // Without the stand-in's own noise, a malformed reply injected is the only one.
  quiet = await startOpenAIStandIn({ apiKey: KEY, noise: 0 });
  bedrock = await startBedrockStandIn();
  // The user's own environment: an API key, and AWS credentials and region for Bedrock.
  Object.assign(process.env, {
    SELFINSTRUCT_API_KEY: KEY,
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDPROVIDERS',
    AWS_SECRET_ACCESS_KEY: 'providers-secret',
  });
  // Synthesized for Nova as it would be deployed (the functions may invoke that model), and the
  // operator allows the key to go to the stand-in (functions/shared/limits.ts).
  stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    context: {
      'selfinstruct:model': NOVA,
      'selfinstruct:allowedModelEndpoints': [openai.url, flaky.url, quiet.url],
    },
  });
}, 60_000);

afterAll(async () => {
  await stack.close();
  await openai.close();
  await flaky.close();
  await quiet.close();
  await bedrock.close();
  rmSync(work, { recursive: true, force: true });
});

// Whole runs of the state machine: minutes, not seconds, on a busy machine.
describe('a run on an OpenAI-compatible server', { timeout: 180_000 }, () => {
  const model = () => `openai-compatible:stand-in-chat@${openai.url}`;

  it('counts the tokens the server reports and records every call', async () => {
    openai.reset();
    const summary = summaryOf(
      await stack.execute({ ...small, pool: 'oa', model: model() }, { retryIntervalMs: 10 }),
    );
    const calls = openai.requests.filter((request) => request.path === '/v1/chat/completions');
    expect(summary.usage.calls).toBe(calls.length);
    expect(summary.usage.inputTokens).toBe(
      calls.reduce((sum, call) => sum + (call.reply?.usage?.inputTokens ?? 0), 0),
    );
    const raw = fromJsonLines<CallRecord>(
      await stack.objects.getText(runKeys(summary.runId, 1).raw('generate-instructions')),
    );
    expect(raw).toHaveLength(3);
    expect(raw.every((record) => record.usage.estimated === false)).toBe(true);
  });

  it('retries a 429 inside the stage, keeping the calls that succeeded', async () => {
    openai.reset();
    // The three calls go out at once: two are throttled once each and retried with backoff in the function.
    openai.enqueue(...times(2, { status: 429 }));
    const result = await stack.execute({ ...small, pool: 'oa', model: model() }, { retryIntervalMs: 10 });
    const summary = summaryOf(result);
    expect(retried(result)).toEqual([]);
    expect(summary.added).toBeGreaterThan(0);
    expect(openai.requests.filter((request) => request.reply?.status === 429)).toHaveLength(2);
    expect(summary.usage.calls).toBe(billed(openai).length);
  });

  it('counts every billed call, once, when a stage loses too many calls and the state machine retries it', async () => {
    // A stand-in that throttles one of the three instruction prompts 8 times in a row: the stage's first
    // attempt loses that call (1 of 3, over the 10% a stage may lose) after its other two were answered.
    const throttled = new Map<string, number>();
    let target: string | undefined;
    flaky.reset();
    flakyFault = (request) => {
      if (!asksForTasks(request)) return undefined;
      const messages = promptOf(request);
      target ??= messages;
      const seen = throttled.get(messages) ?? 0;
      if (messages !== target || seen >= 8) return undefined;
      throttled.set(messages, seen + 1);
      return { status: 429 };
    };
    try {
      const result = await stack.execute(
        { ...small, pool: 'oa-flaky', model: `openai-compatible:stand-in-chat@${flaky.url}` },
        { retryIntervalMs: 10 },
      );
      const summary = summaryOf(result);
      expect(retried(result)).toEqual(['Generate a batch of instructions']);
      const instructionCalls = billed(flaky).filter(asksForTasks);
      // The retry paid only for the lost call: the two answered in the failed attempt were served again.
      expect(instructionCalls).toHaveLength(3);
      expect(throttled.get(target as string)).toBe(8);
      expect(summary.usage.calls).toBe(billed(flaky).length);
      expect(summary.usage.inputTokens).toBe(
        billed(flaky).reduce((sum, call) => sum + (call.reply?.usage?.inputTokens ?? 0), 0),
      );
      expect((await stack.pool.getRun(summary.runId))?.usage?.calls).toBe(billed(flaky).length);
    } finally {
      flakyFault = () => undefined;
    }
  });

  it('fails the run with a readable cause on a permanent error, without leaking the key', async () => {
    openai.reset();
    openai.enqueue({ status: 401, message: `Incorrect API key provided: ${KEY}` });
    const result = await stack.execute({ ...small, pool: 'oa', model: model() }, { retryIntervalMs: 10 });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('ModelRequestFailed');
    expect(readableCause('', result.cause)).toMatch(/401/);
    expect(result.cause).not.toContain(KEY);
    expect(retried(result)).toEqual([]);
    expect((await stack.pool.getRun(result.executionName))?.status).toBe('FAILED');
  });

  it('records and counts malformed replies without failing the run', async () => {
    quiet.reset();
    quiet.enqueue({ malformedText: true });
    {
      const summary = summaryOf(
        await stack.execute(
          {
            ...small,
            pool: 'oa-quiet',
            model: `openai-compatible:stand-in-chat@${quiet.url}`,
            profile: 'default',
          },
          { retryIntervalMs: 10 },
        ),
      );
      expect(summary.counts['reply-malformed']).toBe(1);
      expect(summary.counts.unparseable).toBe(1);
      const raw = fromJsonLines<CallRecord>(
        await stack.objects.getText(runKeys(summary.runId, 1).raw('generate-instructions')),
      );
      expect(raw.map((record) => record.reply).filter((reply) => reply === MALFORMED_TEXT)).toHaveLength(1);
    }
  });
});

describe('a run on Amazon Bedrock', { timeout: 180_000 }, () => {
  it('prices the tokens Bedrock reports and writes the cost on the run record', async () => {
    bedrock.reset();
    const summary = summaryOf(
      await stack.execute({ ...small, pool: 'bedrock', model: NOVA }, { retryIntervalMs: 10 }),
    );
    // Nova Micro for text, Titan Text Embeddings V2 for the near-duplicate gate (the default on Bedrock).
    expect(
      bedrock.requests.every((request) =>
        /^\/model\/amazon\.(nova-micro-v1|titan-embed-text-v2)%3A0\//.test(request.path),
      ),
    ).toBe(true);
    const run = await stack.pool.getRun(summary.runId);
    const embeddingTokens = run?.stageUsage?.['embed-instructions:inputTokens'] ?? 0;
    expect(embeddingTokens).toBeGreaterThan(0);
    // The list prices in the shipped table, applied to the reported tokens: Nova Micro's, Titan's.
    const expected =
      ((summary.usage.inputTokens - embeddingTokens) * 0.035 +
        summary.usage.outputTokens * 0.14 +
        embeddingTokens * 0.02) /
      1e6;
    expect(run?.cost?.modelUsd).toBeCloseTo(expected, 10);
    expect(run?.cost?.awsUsd).toBeGreaterThan(0);
    // The judge (by default the run's model) is priced as a step of its own.
    const byStage = ['generate-instructions', 'generate-instances', 'embed-instructions', 'judge'].map(
      (stage) => run?.cost?.[`model:${stage}`] ?? 0,
    );
    expect(byStage[0]).toBeGreaterThan(0);
    expect(byStage[3]).toBeGreaterThan(0);
    expect(byStage.reduce((a, b) => a + b, 0)).toBeCloseTo(run?.cost?.modelUsd ?? -1, 12);
    expect(summary.cost.totalUsd).toBeCloseTo((run?.cost?.modelUsd ?? 0) + (run?.cost?.awsUsd ?? 0), 10);
  });

  it('retries throttling with backoff inside the stage, and counts every billed call', async () => {
    bedrock.reset();
    bedrock.enqueue(...times(3, { status: 429 }));
    const result = await stack.execute({ ...small, pool: 'bedrock', model: NOVA }, { retryIntervalMs: 10 });
    const summary = summaryOf(result);
    expect(retried(result)).toEqual([]);
    expect(bedrock.requests.filter((request) => request.reply?.status === 429)).toHaveLength(3);
    expect(summary.usage.calls).toBe(
      bedrock.requests.filter((request) => request.reply?.status === 200).length,
    );
  });

  it('stops the loop before an iteration that would cross the budget, and still exports', async () => {
    const result = await stack.execute(
      {
        pool: 'budget',
        model: NOVA,
        target: 100_000,
        maxIterations: 10,
        promptsPerIteration: 3,
        maxCostUsd: 0.000001,
      },
      { retryIntervalMs: 10 },
    );
    const summary = summaryOf(result);
    expect(summary.iterations).toBe(1);
    expect(summary.stopReason).toMatch(/^budget/);
    expect(await stack.objects.getText(exportKeys(summary.runId).dataset)).toBeDefined();
  });

  it('refuses a budget for a model it has no price for, before any call', async () => {
    bedrock.reset();
    const result = await stack.execute({
      pool: 'budget',
      model: 'bedrock:some.unknown-model-v1:0',
      maxCostUsd: 1,
    });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(readableCause('', result.cause)).toMatch(/No price for model "bedrock:some.unknown-model-v1:0"/);
    expect(bedrock.requests).toHaveLength(0);
  });
});

describe('a replayed run', { timeout: 180_000 }, () => {
  it('reproduces the recorded run’s accepted tasks exactly, at no model cost', async () => {
    const input = {
      target: 1000,
      maxIterations: 2,
      promptsPerIteration: 4,
      seed: 'replay-me',
      profile: 'self-instruct',
    };
    const recorded = summaryOf(await stack.execute({ ...input, pool: 'original', model: 'offline' }));
    const replayed = summaryOf(
      await stack.execute({ ...input, pool: 'copy', model: `replay:${recorded.runId}`, seed: undefined }),
    );
    const tasks = async (summary: RunSummary) =>
      fromJsonLines<{ instruction: string; instances: unknown[] }>(
        await stack.objects.getText(exportKeys(summary.runId).tasks),
      )
        .map((task) => JSON.stringify([task.instruction, task.instances]))
        .sort();
    expect(await tasks(replayed)).toEqual(await tasks(recorded));
    expect(replayed.added).toBe(recorded.added);
    expect(replayed.usage.inputTokens + replayed.usage.outputTokens).toBe(0);
  });

  it('re-gates the recorded candidates under another threshold, at no model cost', async () => {
    const recorded = summaryOf(
      await stack.execute({
        target: 1000,
        maxIterations: 2,
        promptsPerIteration: 3,
        pool: 'rec2',
        model: 'offline',
        seed: 'refilter',
      }),
    );
    const exported = async (summary: RunSummary) =>
      new Map(
        fromJsonLines<{ instruction: string; instances: unknown[] }>(
          await stack.objects.getText(exportKeys(summary.runId).tasks),
        ).map((task) => [task.instruction, JSON.stringify(task.instances)]),
      );
    const recordedTasks = await exported(recorded);
    for (const [pool, rougeThreshold] of [
      ['strict', 0.5],
      ['loose', 0.9],
    ] as const) {
      // Only the threshold is given: seed, profile, target and iterations come from the recorded run.
      const refiltered = summaryOf(
        await stack.execute({ pool, model: `replay:${recorded.runId}`, rougeThreshold }),
      );
      const { counts } = refiltered;
      expect(refiltered.iterations).toBe(recorded.iterations);
      expect(counts.generated).toBe(recorded.counts.generated);
      expect(counts.prompts).toBe(recorded.counts.prompts);
      expect(refiltered.usage.inputTokens + refiltered.usage.outputTokens).toBe(0);
      if (rougeThreshold < 0.7) expect(counts.accepted).toBeLessThan(recorded.counts.accepted ?? 0);
      else expect(counts.accepted).toBeGreaterThan(recorded.counts.accepted ?? 0);
      // A task the recorded run also made keeps its recorded instances; one it never accepted has no
      // recorded reply: rejected as not recorded, nothing paid.
      for (const [instruction, instances] of await exported(refiltered)) {
        expect(recordedTasks.get(instruction)).toBe(instances);
      }
      if (rougeThreshold > 0.7) expect(counts['not-recorded']).toBeGreaterThan(0);
    }
  });
});
