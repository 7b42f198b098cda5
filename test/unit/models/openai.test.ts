import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { renderInstructionRequest } from '../../../functions/generate-instructions/prompt.ts';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable } from '../../../functions/shared/errors.ts';
import { LIMIT_SETTINGS } from '../../../functions/shared/limits.ts';
import { createTextModel } from '../../../functions/shared/models/index.ts';
import { parseModelId } from '../../../functions/shared/models/model-ids.ts';
import { OpenAIModel } from '../../../functions/shared/models/openai.ts';
import type { ModelRequest, TextModel } from '../../../functions/shared/ports.ts';
import { MALFORMED_TEXT, type StandIn, startOpenAIStandIn, times } from '../../support/model-servers.ts';

const KEY = 'sk-test-0123456789abcdef';

const chat: ModelRequest = {
  stage: 'classify',
  format: 'classify/default',
  kind: 'chat',
  system: 'You label tasks.',
  prompt: 'Task: Is the sky blue?\n\nIs this a classification task?',
  temperature: 0.3,
  topP: 0.8,
  maxTokens: 64,
  stop: ['\n\n', 'Task:', 'A', 'B', 'C'],
  json: true,
};

const completion: ModelRequest = {
  stage: 'generate-instructions',
  format: 'instructions/self-instruct',
  kind: 'completion',
  prompt: 'Come up with a series of tasks:\n1. Name a fruit.\n2.',
  temperature: 0.7,
  topP: 0.5,
  maxTokens: 128,
  stop: ['\n16'],
};

let standIn: StandIn;
/** `openai-compatible:` and `openai-completions:` ids pointing at the stand-in. */
let compatible: (model?: string) => Promise<TextModel>;
let completions: () => Promise<TextModel>;

beforeAll(async () => {
  standIn = await startOpenAIStandIn({ apiKey: KEY });
  process.env.SELFINSTRUCT_API_KEY = KEY;
  delete process.env.OPENAI_API_KEY;
  // The key may go to the stand-in only (limits.ts): it is the one endpoint the tests allow.
  process.env[LIMIT_SETTINGS.allowedModelEndpoints.env] = standIn.url;
  delete process.env.MODEL_API_KEY_SECRET_ARN;
  compatible = (model = 'llama3.1') =>
    createTextModel(`openai-compatible:${model}@${standIn.url}`, { seed: 's', timeoutMs: 20_000 });
  completions = () => createTextModel(`openai-completions:qwen2.5@${standIn.url}`, { seed: 's' });
});

afterAll(async () => {
  await standIn.close();
});

beforeEach(() => {
  standIn.reset();
  process.env.SELFINSTRUCT_API_KEY = KEY;
});

describe('the OpenAI-compatible adapter', () => {
  it('returns the text, finish and the token usage the server reports', async () => {
    const model = await compatible();

    const reply = await model.generate(chat);

    const [received] = standIn.requests;
    expect(reply.text).toBe(received?.reply?.text);
    expect(reply.text).toContain('is_classification');
    expect(reply.finish).toBe('stop');
    expect(reply.usage).toEqual({ ...received?.reply?.usage, estimated: false });
    expect(reply.model).toBe(`openai-compatible:llama3.1@${standIn.url}`);
  });

  it('sends a chat request with the system and user messages and every parameter', async () => {
    await (await compatible()).generate(chat);

    const [received] = standIn.requests;
    expect(received?.path).toBe('/v1/chat/completions');
    expect(received?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(received?.body).toEqual({
      model: 'llama3.1',
      messages: [
        { role: 'system', content: chat.system },
        { role: 'user', content: chat.prompt },
      ],
      temperature: 0.3,
      top_p: 0.8,
      max_tokens: 64,
      stop: ['\n\n', 'Task:', 'A', 'B'],
      response_format: { type: 'json_object' },
    });
  });

  it('asks OpenAI itself for max_completion_tokens instead of max_tokens', async () => {
    const spec = parseModelId('openai:gpt-4o-mini');
    if (spec.provider !== 'openai') throw new Error('expected an OpenAI spec');
    process.env.OPENAI_API_KEY = KEY;
    const model = new OpenAIModel(spec.id, { ...spec, baseURL: standIn.url });

    await model.generate(chat);

    expect(standIn.requests[0]?.body).toMatchObject({ model: 'gpt-4o-mini', max_completion_tokens: 64 });
    expect(standIn.requests[0]?.body).not.toHaveProperty('max_tokens');
    delete process.env.OPENAI_API_KEY;
  });

  it('leaves JSON mode out for an id ending with #no-json', async () => {
    const model = await createTextModel(`openai-compatible:llama3.1@${standIn.url}#no-json`, { seed: 's' });

    await model.generate(chat);

    expect(standIn.requests[0]?.body).not.toHaveProperty('response_format');
  });

  it('sends a completion-style prompt as a lone user message to chat by default', async () => {
    await (await compatible()).generate(completion);

    const [received] = standIn.requests;
    expect(received?.path).toBe('/v1/chat/completions');
    expect(received?.body?.messages).toEqual([{ role: 'user', content: completion.prompt }]);
    expect(received?.body).not.toHaveProperty('response_format');
  });

  it('sends a completion-style prompt to the legacy completions endpoint with an openai-completions id', async () => {
    const reply = await (await completions()).generate(completion);

    const [received] = standIn.requests;
    expect(received?.path).toBe('/v1/completions');
    expect(received?.body).toEqual({
      model: 'qwen2.5',
      prompt: completion.prompt,
      temperature: 0.7,
      top_p: 0.5,
      max_tokens: 128,
      stop: ['\n16'],
    });
    expect(reply.text).toBe(received?.reply?.text);
    expect(reply.usage.estimated).toBe(false);
  });

  it('still sends chat requests to chat completions with an openai-completions id', async () => {
    await (await completions()).generate(chat);

    expect(standIn.requests[0]?.path).toBe('/v1/chat/completions');
  });

  it('answers a rendered self-instruct prompt with a continuation of its numbered list', async () => {
    const request = renderInstructionRequest('self-instruct', [
      { instruction: 'Give three tips for staying healthy.' },
      { instruction: 'Write a haiku about autumn leaves.' },
    ]);

    const reply = await (await completions()).generate(request);

    expect(reply.text).toMatch(/^ \S/);
    expect(reply.text).not.toContain('{');
  });

  it("reports finish 'length' when the server says the reply was cut", async () => {
    standIn.enqueue({ finish: 'length' });

    const reply = await (await compatible()).generate(chat);

    expect(reply.finish).toBe('length');
  });

  it('estimates token usage as ceil(characters / 4) when the server reports none', async () => {
    standIn.enqueue({ omitUsage: true, text: 'twelve chars' });

    const reply = await (await compatible()).generate(chat);

    const input = Math.ceil(((chat.system ?? '') + chat.prompt).length / 4);
    expect(reply.usage).toEqual({ inputTokens: input, outputTokens: 3, estimated: true });
  });

  it('passes garbage text through for the stage parsers to count', async () => {
    standIn.enqueue({ malformedText: true });

    const reply = await (await compatible()).generate(chat);

    expect(reply.text).toBe(MALFORMED_TEXT);
  });

  it('surfaces a 429 as ModelThrottled after exactly one HTTP attempt', async () => {
    standIn.enqueue(...times(3, { status: 429 }));

    const call = (await compatible()).generate(chat);

    await expect(call).rejects.toBeInstanceOf(ModelThrottled);
    await expect(call).rejects.toThrow(`OpenAI-compatible server ${standIn.url}, model llama3.1: HTTP 429`);
    expect(standIn.requests).toHaveLength(1);
  });

  it.each([
    [500, ModelUnavailable],
    [502, ModelUnavailable],
    [503, ModelUnavailable],
    [408, ModelUnavailable],
    [409, ModelUnavailable],
    [400, ModelRequestFailed],
    [403, ModelRequestFailed],
    [404, ModelRequestFailed],
  ])('maps HTTP %i to %o after one attempt', async (status, expected) => {
    standIn.enqueue(...times(3, { status }));

    const call = (await compatible()).generate(chat);

    await expect(call).rejects.toBeInstanceOf(expected);
    await expect(call).rejects.toThrow(`HTTP ${status}`);
    expect(standIn.requests).toHaveLength(1);
  });

  it('surfaces a wrong key as ModelRequestFailed whose message does not contain the key', async () => {
    process.env.SELFINSTRUCT_API_KEY = 'sk-wrong-key-that-must-not-leak';

    const call = (await compatible()).generate(chat);

    await expect(call).rejects.toBeInstanceOf(ModelRequestFailed);
    await expect(call).rejects.toThrow(/HTTP 401/);
    const error = (await call.catch((e: unknown) => e)) as Error;
    expect(error.message).not.toContain('sk-wrong-key-that-must-not-leak');
    expect(String((error.cause as Error).message)).not.toContain('sk-wrong-key-that-must-not-leak');
  });

  it('sends no Authorization header to a server when no key is set', async () => {
    delete process.env.SELFINSTRUCT_API_KEY;

    const call = (await compatible()).generate(chat);

    await expect(call).rejects.toBeInstanceOf(ModelRequestFailed);
    expect(standIn.requests[0]?.headers).not.toHaveProperty('authorization');
  });

  it('surfaces a reply that is not JSON as ModelUnavailable', async () => {
    standIn.enqueue({ badBody: true });

    const call = (await compatible()).generate(chat);

    await expect(call).rejects.toBeInstanceOf(ModelUnavailable);
    await expect(call).rejects.toThrow(/unreadable reply/);
  });

  it('waits for a slow reply within the timeout', async () => {
    standIn.enqueue({ latencyMs: 150 });

    const reply = await (await compatible()).generate(chat);

    expect(reply.text).toBe(standIn.requests[0]?.reply?.text);
  });

  it('gives up on a reply slower than the timeout with ModelUnavailable, without retrying', async () => {
    standIn.enqueue({ latencyMs: 1_000 });
    const model = await createTextModel(`openai-compatible:llama3.1@${standIn.url}`, {
      seed: 's',
      timeoutMs: 100,
    });

    const call = model.generate(chat);

    await expect(call).rejects.toBeInstanceOf(ModelUnavailable);
    await expect(call).rejects.toThrow(/no reply within the timeout/);
    expect(standIn.requests).toHaveLength(1);
  });

  it('surfaces a refused connection as ModelUnavailable', async () => {
    const gone = await startOpenAIStandIn();
    await gone.close();
    process.env[LIMIT_SETTINGS.allowedModelEndpoints.env] = `${standIn.url},${gone.url}`;
    const model = await createTextModel(`openai-compatible:llama3.1@${gone.url}`, { seed: 's' });

    await expect(model.generate(chat)).rejects.toBeInstanceOf(ModelUnavailable);
    process.env[LIMIT_SETTINGS.allowedModelEndpoints.env] = standIn.url;
  });
});
