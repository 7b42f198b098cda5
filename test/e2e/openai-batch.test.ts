/**
 * Batch mode on OpenAI's Batch API through the whole state machine, against the local S3 and DynamoDB
 * servers and the OpenAI stand-in with its files and batches (`startOpenAIStandIn({ batch })`), through
 * the real `openai` client. The stand-in stands for api.openai.com: the operator lists it as a server
 * with OpenAI's Batch API (`SELFINSTRUCT_OPENAI_BATCH_ENDPOINTS`) and allows the key to go there.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { OPENAI_BATCH_ENDPOINTS_ENV } from '../../functions/shared/batch/jobs.ts';
import { BATCH_JOB_STATES } from '../../functions/stages.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { instanceRequests, useBatchStack } from '../support/batch-stack.ts';
import { timesEntered as entered, succeededSummary as summaryOf } from '../support/local-stack.ts';
import { type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';

const KEY = 'sk-openai-batch-e2e';
const world = useBatchStack('openai-batch');
let stack: LocalStack;
let openai: StandIn;
/** A stand-in whose batches expire. */
let expired: StandIn;
let failing = new Set<number>();

const small = { target: 200, maxIterations: 1, promptsPerIteration: 3, chunkSize: 40 };

/** Chat completions the stand-in answered on demand for instance generation. */
const onDemandInstanceCalls = () => instanceRequests(openai, '/v1/chat/completions');

beforeAll(async () => {
  openai = await world.serve(
    startOpenAIStandIn({
      apiKey: KEY,
      batch: { pollsToComplete: 2, failRecord: (_id, index) => failing.has(index) },
    }),
  );
  expired = await world.serve(startOpenAIStandIn({ apiKey: KEY, batch: { finalStatus: 'expired' } }));
  world.setEnv({
    SELFINSTRUCT_API_KEY: KEY,
    [OPENAI_BATCH_ENDPOINTS_ENV]: `${openai.url},${expired.url}`,
  });
  stack = await world.startStack({
    context: { 'selfinstruct:allowedModelEndpoints': [openai.url, expired.url] },
  });
}, 60_000);

describe('a run with --batch on OpenAI', { timeout: 240_000 }, () => {
  it('uploads the instance calls as one batch, polls it, and grows the pool from its output', async () => {
    openai.reset();
    failing = new Set([1]);
    const model = `openai-compatible:stand-in-chat@${openai.url}`;
    const result = await stack.execute(
      { ...small, model, pool: 'openai-batched', batch: true, batchPollSeconds: 600 },
      { retryIntervalMs: 10, waitMs: 0 },
    );
    const summary = summaryOf(result);
    expect(summary.added).toBeGreaterThan(0);

    // One batch of chat completion records, the very bodies the on-demand adapter sends, 24 h window.
    expect(openai.batches).toHaveLength(1);
    const [batch] = openai.batches ?? [];
    expect(batch?.endpoint).toBe('/v1/chat/completions');
    expect(batch?.completionWindow).toBe('24h');
    expect(batch?.lines.every((line) => line.method === 'POST' && line.url === '/v1/chat/completions')).toBe(
      true,
    );
    expect(batch?.lines[0]?.body).toMatchObject({ model: 'stand-in-chat', max_tokens: expect.any(Number) });
    expect(batch?.polls).toBeGreaterThanOrEqual(2);
    expect(entered(result, BATCH_JOB_STATES.check)).toBe(2);
    // Named in its metadata, where a retried submit finds it.
    expect(batch?.metadata).toEqual({
      selfinstruct_job: expect.stringMatching(/^selfinstruct-[0-9a-f]{16}-i1$/),
    });

    // Every answered record served from the ledger as a batch call; the failed one made on demand.
    expect(batch?.failed).toBe(1);
    expect(onDemandInstanceCalls()).toBe(1);
    const calls = await stack.pool.listCalls(summary.runId, '');
    const instanceCalls = calls.filter((call) => call.stage === 'generate-instances');
    expect(instanceCalls.filter((call) => call.batch === true)).toHaveLength(batch?.answered ?? -1);
    expect(instanceCalls.filter((call) => !call.batch)).toHaveLength(1);

    // The iteration's record says so, as the export's summary does.
    const figures = {
      provider: 'openai',
      jobId: batch?.id,
      planned: batch?.lines.length,
      sent: batch?.lines.length,
      served: batch?.answered,
      failed: 1,
      madeOnDemand: 1,
      belowMinimum: false,
      // The poll loop's looks, which its AWS cost counts.
      looks: entered(result, BATCH_JOB_STATES.check),
    };
    expect((await stack.pool.getIterations(summary.runId))['1']?.batch).toEqual(figures);
    expect(summary.batch).toEqual({ 1: figures });

    // The submit noted its start and its batch in the pool table: a retried submit finds it there.
    const job = String((batch?.metadata as { selfinstruct_job?: string } | undefined)?.selfinstruct_job);
    const note = await stack.pool.noteBatchSubmit(summary.runId, job, new Date().toISOString());
    expect(note).toMatchObject({ jobId: batch?.id, startedAt: expect.any(String) });
  });

  it('fails the run with a readable cause when the batch expires', async () => {
    const result = await stack.execute(
      {
        ...small,
        model: `openai-compatible:stand-in-chat@${expired.url}`,
        pool: 'openai-expired',
        batch: true,
        batchPollSeconds: 600,
      },
      { retryIntervalMs: 10, waitMs: 0 },
    );
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('BatchJobFailed');
    expect(result.cause).toMatch(/OpenAI batch expired/);
  });

  it('refuses batch for an OpenAI-compatible server without the Batch API', async () => {
    const result = await stack.execute(
      {
        ...small,
        model: 'openai-compatible:llama3.1@http://127.0.0.1:11434/v1',
        pool: 'openai-no-batch',
        batch: true,
      },
      { retryIntervalMs: 10 },
    );
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(
      /batch mode needs a model with a batch API; .*openai:<model> \(OpenAI's Batch API/,
    );
  });
});
