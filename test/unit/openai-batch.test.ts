/**
 * Batch mode on OpenAI's Batch API: the records (the on-demand adapter's chat bodies), the reading of a
 * batch's output and error files, its statuses, the models it accepts, its price, and the idempotent
 * submit (its batch id noted in the pool table; a batch named in its metadata found again after a crash
 * between creating and noting it, past any number of newer batches) against the OpenAI stand-in.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { checkBatchModel, OPENAI_BATCH_ENDPOINTS_ENV } from '../../functions/shared/batch/jobs.ts';
import {
  CLOCK_SKEW_SECONDS,
  OpenAIBatchJobs,
  openAIBatchLine,
  openAIBatchStatus,
  parseOpenAIBatchOutput,
} from '../../functions/shared/batch/openai.ts';
import { promptHash } from '../../functions/shared/model-calls.ts';
import { type OpenAIEndpoint, parseModelId } from '../../functions/shared/models/model-ids.ts';
import { chatBody } from '../../functions/shared/models/openai.ts';
import type { ModelRequest } from '../../functions/shared/ports.ts';
import { modelCost, shippedPrices } from '../../functions/shared/pricing/pricing.ts';
import { useBatchStack } from '../support/batch-stack.ts';
import { type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';
import { MemoryObjects, MemoryPool } from './fakes.ts';

const request: ModelRequest = {
  kind: 'chat',
  stage: 'generate-instances',
  format: 'instances/default-generation',
  system: 'You write instances.',
  prompt: 'Name a fruit.',
  temperature: 0.7,
  topP: 1,
  maxTokens: 300,
  json: true,
  stop: ['', 'END'],
};
const OPENAI = parseModelId('openai:gpt-4o-mini') as OpenAIEndpoint;

describe('OpenAI batch records', () => {
  it('writes a record as its custom id, POST /v1/chat/completions and the body the on-demand adapter sends', () => {
    const line = JSON.parse(openAIBatchLine(OPENAI, 'abc12345678', request));
    expect(line).toEqual({
      custom_id: 'abc12345678',
      method: 'POST',
      url: '/v1/chat/completions',
      body: chatBody(OPENAI, request),
    });
    expect(line.body).toMatchObject({ model: 'gpt-4o-mini', max_completion_tokens: 300, stop: ['END'] });
  });

  it('reads the output and error files, each reply under the hash of the prompt its input line sent', () => {
    const input = [openAIBatchLine(OPENAI, 'a', request), openAIBatchLine(OPENAI, 'b', request)].join('\n');
    const output = JSON.stringify({
      custom_id: 'a',
      response: {
        status_code: 200,
        body: {
          choices: [{ message: { content: 'apple' }, finish_reason: 'length' }],
          usage: { prompt_tokens: 12, completion_tokens: 3 },
        },
      },
      error: null,
    });
    const errors = JSON.stringify({
      custom_id: 'b',
      response: { status_code: 500, body: { error: { message: 'server error' } } },
      error: null,
    });
    expect(parseOpenAIBatchOutput(input, output, errors)).toEqual([
      {
        recordId: 'a',
        promptHash: promptHash(request),
        reply: {
          text: 'apple',
          finish: 'length',
          usage: { inputTokens: 12, outputTokens: 3, estimated: false },
        },
      },
      { recordId: 'b', error: '500: server error' },
    ]);
  });

  it('reads the statuses: running until completed; failed, expired and cancelled fail the run', () => {
    for (const status of ['validating', 'in_progress', 'finalizing'])
      expect(openAIBatchStatus(status, undefined).status).toBe('running');
    expect(openAIBatchStatus('completed', undefined).status).toBe('completed');
    expect(openAIBatchStatus('expired', undefined)).toEqual({
      status: 'failed',
      providerStatus: 'expired',
      message: 'OpenAI batch expired',
    });
    expect(openAIBatchStatus('failed', 'bad line')).toMatchObject({
      message: 'OpenAI batch failed: bad line',
    });
  });

  it("accepts openai: models and a server listed as OpenAI's Batch API, refuses other OpenAI-compatible servers", () => {
    expect(() => checkBatchModel('openai:gpt-4o-mini')).not.toThrow();
    expect(() => checkBatchModel('openai-compatible:llama3.1@http://127.0.0.1:11434/v1')).toThrow(
      /batch mode needs a model with a batch API/,
    );
    expect(() => checkBatchModel('openai-completions:gpt-3.5-turbo-instruct')).toThrow(/batch API/);
    process.env[OPENAI_BATCH_ENDPOINTS_ENV] = 'http://127.0.0.1:11434/v1/';
    try {
      expect(() => checkBatchModel('openai-compatible:llama3.1@http://127.0.0.1:11434/v1')).not.toThrow();
    } finally {
      delete process.env[OPENAI_BATCH_ENDPOINTS_ENV];
    }
  });

  it('prices an OpenAI batch call at half the on-demand price', () => {
    const table = shippedPrices();
    const tokens = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    const onDemand = modelCost(table, 'openai:gpt-4o-mini', tokens);
    const batched = modelCost(table, 'openai:gpt-4o-mini', tokens, { batch: true });
    expect(onDemand.usd).toBeGreaterThan(0);
    expect(batched.usd).toBeCloseTo((onDemand.usd ?? 0) / 2, 12);
  });
});

describe('the OpenAI batch submit', () => {
  const world = useBatchStack('openai-batch-unit');
  let server: StandIn;
  beforeAll(async () => {
    server = await world.serve(startOpenAIStandIn({ apiKey: 'sk-unit', batch: { pollsToComplete: 1 } }));
    world.setEnv({ SELFINSTRUCT_API_KEY: 'sk-unit', SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS: server.url });
  });

  beforeEach(() => server.reset());

  const endpoint = () => parseModelId(`openai-compatible:stand-in-chat@${server.url}`) as OpenAIEndpoint;
  const spec = {
    runId: 'r',
    name: 'selfinstruct-0123456789abcdef-i1',
    modelId: 'stand-in-chat',
    inputKey: 'runs/r/iteration-1/batch/input/instances.jsonl',
    outputPrefix: 'runs/r/iteration-1/batch/output/',
    records: [
      { recordId: 'a', request },
      { recordId: 'b', request: { ...request, prompt: 'Name a colour.' } },
    ],
  };
  /** Batches of other jobs of the organization, created `ageSeconds` ago. */
  const otherBatches = (count: number, ageSeconds: number, from = 0) => {
    const createdAt = Math.floor(Date.now() / 1000) - ageSeconds;
    server.batches?.push(
      ...Array.from({ length: count }, (_, i) => ({
        id: `other_${from + i}`,
        inputFileId: 'file-other',
        endpoint: '/v1/chat/completions',
        completionWindow: '24h',
        metadata: { selfinstruct_job: `someone-else-${from + i}` },
        createdAt,
        lines: [],
        polls: 0,
        answered: 0,
        failed: 0,
      })),
    );
  };
  const created = () => server.requests.filter((r) => r.method === 'POST' && r.path === '/v1/batches');
  const listed = () => server.requests.filter((r) => r.method === 'GET' && r.path === '/v1/batches');

  it('uploads one batch, and a retried submit gets the same batch back', async () => {
    const jobs = new OpenAIBatchJobs(new MemoryObjects(), endpoint(), new MemoryPool());
    const first = await jobs.submit(spec);
    const again = await jobs.submit(spec);
    expect(again).toBe(first);
    expect(server.batches).toHaveLength(1);
    expect(server.batches?.[0]?.lines.map((line) => line.custom_id)).toEqual(['a', 'b']);
    expect(await jobs.status(first)).toMatchObject({ status: 'completed' });
    const results = await jobs.results(first, spec.inputKey);
    expect(results.map((result) => result.recordId).sort()).toEqual(['a', 'b']);
    expect(results.find((result) => result.recordId === 'b')).toMatchObject({
      promptHash: promptHash({ system: request.system, prompt: 'Name a colour.' }),
    });
  });

  it('a retried submit gets its batch from the noted id, however many batches are newer', async () => {
    const pool = new MemoryPool();
    const first = await new OpenAIBatchJobs(new MemoryObjects(), endpoint(), pool).submit(spec);
    otherBatches(600, 0);
    const again = await new OpenAIBatchJobs(new MemoryObjects(), endpoint(), pool).submit(spec);
    expect(again).toBe(first);
    expect(created()).toHaveLength(1);
    expect(pool.batchSubmits.get(`r/${spec.name}`)?.jobId).toBe(first);
  });

  it('after a crash between creating the batch and noting its id, finds it past 600 newer batches, and no further back', async () => {
    const pool = new MemoryPool();
    // The first attempt creates its batch and dies before noting the id.
    const crashing = Object.assign(Object.create(pool) as MemoryPool, {
      recordBatchJob: async () => {
        throw new Error('Lambda timed out');
      },
    });
    await expect(new OpenAIBatchJobs(new MemoryObjects(), endpoint(), crashing).submit(spec)).rejects.toThrow(
      'Lambda timed out',
    );
    const first = server.batches?.[0]?.id;
    expect(created()).toHaveLength(1);
    // Older batches than the first attempt (beyond the clock-skew margin), then 600 newer ones.
    server.batches?.unshift(
      ...Array.from({ length: 1000 }, (_, i) => ({
        id: `old_${i}`,
        inputFileId: 'file-old',
        endpoint: '/v1/chat/completions',
        completionWindow: '24h',
        metadata: { selfinstruct_job: spec.name },
        createdAt: Math.floor(Date.now() / 1000) - CLOCK_SKEW_SECONDS - 3600,
        lines: [],
        polls: 0,
        answered: 0,
        failed: 0,
      })),
    );
    otherBatches(600, 0);
    const again = await new OpenAIBatchJobs(new MemoryObjects(), endpoint(), pool).submit(spec);
    expect(again).toBe(first);
    expect(created()).toHaveLength(1);
    expect(pool.batchSubmits.get(`r/${spec.name}`)?.jobId).toBe(first);
    // 601 batches at 100 a page, and the page that reaches the older ones: the listing stops there.
    expect(listed().length).toBeLessThanOrEqual(7);
  });

  it('a first submit lists nothing and creates one batch, noting its start before creating it', async () => {
    const pool = new MemoryPool();
    otherBatches(600, 0);
    const before = new Date().toISOString();
    const id = await new OpenAIBatchJobs(new MemoryObjects(), endpoint(), pool).submit(spec);
    expect(created()).toHaveLength(1);
    expect(listed()).toHaveLength(0);
    const note = pool.batchSubmits.get(`r/${spec.name}`);
    expect(note?.jobId).toBe(id);
    expect((note?.startedAt ?? '') >= before).toBe(true);
  });
});
