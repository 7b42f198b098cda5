import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable } from '../../../functions/shared/errors.ts';
import { BedrockModel } from '../../../functions/shared/models/bedrock.ts';
import { createTextModel } from '../../../functions/shared/models/index.ts';
import type { ModelRequest } from '../../../functions/shared/ports.ts';
import { MALFORMED_TEXT, type StandIn, startBedrockStandIn, times } from '../../support/model-servers.ts';

const MODEL = 'bedrock:amazon.nova-micro-v1:0';

const request: ModelRequest = {
  stage: 'generate-instances',
  format: 'instances/default-generation',
  kind: 'chat',
  system: 'You write examples.',
  prompt: 'Task: Give three tips for sleeping well.\n\nReply with JSON only: {"instances": []}',
  temperature: 0.2,
  topP: 0.9,
  maxTokens: 300,
  stop: ['A', 'B', 'C', 'D', 'E'],
  json: true,
};

let standIn: StandIn;

beforeAll(async () => {
  standIn = await startBedrockStandIn();
  process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = standIn.url;
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'AKIDSTANDIN';
  process.env.AWS_SECRET_ACCESS_KEY = 'stand-in-secret';
});

afterAll(async () => {
  await standIn.close();
});

beforeEach(() => {
  standIn.reset();
});

describe('the Bedrock adapter', () => {
  it('returns the text, finish and token usage the Converse reply reports', async () => {
    const model = await createTextModel(MODEL, { seed: 's' });

    const reply = await model.generate(request);

    const [received] = standIn.requests;
    expect(received?.reply?.text).toBeDefined();
    expect(reply.text).toBe(received?.reply?.text);
    expect(reply.finish).toBe('stop');
    expect(reply.usage).toEqual({ ...received?.reply?.usage, estimated: false });
    expect(reply.model).toBe(MODEL);
  });

  it('posts to the url-encoded model path with the system prompt and every parameter', async () => {
    await new BedrockModel(MODEL).generate(request);

    const [received] = standIn.requests;
    expect(received?.path).toBe('/model/amazon.nova-micro-v1%3A0/converse');
    expect(received?.model).toBe('amazon.nova-micro-v1:0');
    expect(received?.body).toMatchObject({
      system: [{ text: request.system }],
      messages: [{ role: 'user', content: [{ text: request.prompt }] }],
      inferenceConfig: { temperature: 0.2, topP: 0.9, maxTokens: 300, stopSequences: ['A', 'B', 'C', 'D'] },
    });
  });

  it('sends no system block and no stop sequences when the request has none', async () => {
    const { system: _, stop: __, ...bare } = request;

    await new BedrockModel(MODEL).generate({ ...bare, kind: 'completion' });

    expect(standIn.requests[0]?.body?.system).toBeUndefined();
    expect(standIn.requests[0]?.body?.inferenceConfig).not.toHaveProperty('stopSequences');
  });

  it("reports finish 'length' when Bedrock stopped at max_tokens", async () => {
    standIn.enqueue({ finish: 'length' });

    const reply = await new BedrockModel(MODEL).generate(request);

    expect(reply.finish).toBe('length');
  });

  it('passes garbage text through for the stage parsers to count', async () => {
    standIn.enqueue({ malformedText: true });

    const reply = await new BedrockModel(MODEL).generate(request);

    expect(reply.text).toBe(MALFORMED_TEXT);
  });

  it('surfaces a throttled call as ModelThrottled after exactly one HTTP attempt', async () => {
    standIn.enqueue(...times(3, { status: 429 }));

    const call = new BedrockModel(MODEL).generate(request);

    await expect(call).rejects.toBeInstanceOf(ModelThrottled);
    await expect(call).rejects.toThrow(/HTTP 429 ThrottlingException/);
    expect(standIn.requests).toHaveLength(1);
  });

  it.each([
    [429, 'ServiceQuotaExceededException', ModelThrottled],
    [429, 'ModelNotReadyException', ModelUnavailable],
    [500, 'InternalServerException', ModelUnavailable],
    [503, 'ServiceUnavailableException', ModelUnavailable],
    [408, 'ModelTimeoutException', ModelUnavailable],
    [400, 'ValidationException', ModelRequestFailed],
    [403, 'AccessDeniedException', ModelRequestFailed],
    [404, 'ResourceNotFoundException', ModelRequestFailed],
  ])('maps HTTP %i %s to %o', async (status, errorType, expected) => {
    standIn.enqueue({ status, errorType, message: `${errorType} says hi` });

    const call = new BedrockModel(MODEL).generate(request);

    await expect(call).rejects.toBeInstanceOf(expected);
    await expect(call).rejects.toThrow(`${errorType} says hi`);
    expect(standIn.requests).toHaveLength(1);
  });

  it('names the endpoint and the model in the error message', async () => {
    standIn.enqueue({ status: 403 });

    const call = new BedrockModel(MODEL).generate(request);

    await expect(call).rejects.toThrow(`Bedrock (${standIn.url}), model amazon.nova-micro-v1:0: HTTP 403`);
  });

  it('surfaces a reply that is not JSON as ModelUnavailable', async () => {
    standIn.enqueue({ badBody: true });

    await expect(new BedrockModel(MODEL).generate(request)).rejects.toBeInstanceOf(ModelUnavailable);
  });

  it('waits for a slow reply within the timeout', async () => {
    standIn.enqueue({ latencyMs: 150 });

    const reply = await new BedrockModel(MODEL, { timeoutMs: 20_000 }).generate(request);

    expect(reply.text).toBe(standIn.requests[0]?.reply?.text);
  });

  it('gives up on a reply slower than the timeout with ModelUnavailable', async () => {
    standIn.enqueue({ latencyMs: 1_000 });

    const call = new BedrockModel(MODEL, { timeoutMs: 100 }).generate(request);

    await expect(call).rejects.toBeInstanceOf(ModelUnavailable);
  });

  it('surfaces a refused connection as ModelUnavailable', async () => {
    const gone = await startBedrockStandIn();
    await gone.close();
    const saved = process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME;
    process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = gone.url;
    try {
      await expect(new BedrockModel(MODEL).generate(request)).rejects.toBeInstanceOf(ModelUnavailable);
    } finally {
      process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = saved;
    }
  });
});
