import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRequestFailed } from '../../../functions/shared/errors.ts';
import { BedrockModel } from '../../../functions/shared/models/bedrock.ts';
import { createTextModel } from '../../../functions/shared/models/index.ts';
import { OPENAI_BASE_URL, parseModelId } from '../../../functions/shared/models/model-ids.ts';
import { OfflineModel } from '../../../functions/shared/models/offline.ts';
import { OpenAIModel } from '../../../functions/shared/models/openai.ts';
import { describeModel, ollamaHint } from '../../../infra/cli/model-hints.ts';
import { type StandIn, startOpenAIStandIn } from '../../support/model-servers.ts';

describe('parseModelId', () => {
  it.each([
    ['offline', { provider: 'offline', id: 'offline' }],
    [
      'bedrock:amazon.nova-micro-v1:0',
      { provider: 'bedrock', id: 'bedrock:amazon.nova-micro-v1:0', modelId: 'amazon.nova-micro-v1:0' },
    ],
    [
      'bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0',
      {
        provider: 'bedrock',
        id: 'bedrock:us.anthropic.claude-3-5-haiku-20241022-v1:0',
        modelId: 'us.anthropic.claude-3-5-haiku-20241022-v1:0',
      },
    ],
    [
      'openai:gpt-4o-mini',
      {
        provider: 'openai',
        id: 'openai:gpt-4o-mini',
        model: 'gpt-4o-mini',
        baseURL: OPENAI_BASE_URL,
        completions: false,
        jsonMode: true,
      },
    ],
    [
      'openai-compatible:llama3.1:8b@http://127.0.0.1:11434/v1/',
      {
        provider: 'openai-compatible',
        id: 'openai-compatible:llama3.1:8b@http://127.0.0.1:11434/v1/',
        model: 'llama3.1:8b',
        baseURL: 'http://127.0.0.1:11434/v1',
        completions: false,
        jsonMode: true,
      },
    ],
    [
      'openai-compatible:gemini-2.0-flash@https://generativelanguage.googleapis.com/v1beta/openai#no-json',
      {
        provider: 'openai-compatible',
        id: 'openai-compatible:gemini-2.0-flash@https://generativelanguage.googleapis.com/v1beta/openai#no-json',
        model: 'gemini-2.0-flash',
        baseURL: 'https://generativelanguage.googleapis.com/v1beta/openai',
        completions: false,
        jsonMode: false,
      },
    ],
    [
      'openai-completions:gpt-3.5-turbo-instruct',
      {
        provider: 'openai',
        id: 'openai-completions:gpt-3.5-turbo-instruct',
        model: 'gpt-3.5-turbo-instruct',
        baseURL: OPENAI_BASE_URL,
        completions: true,
        jsonMode: true,
      },
    ],
    [
      'openai-completions:Qwen/Qwen2.5-7B@http://gpu-box:8000/v1',
      {
        provider: 'openai-compatible',
        id: 'openai-completions:Qwen/Qwen2.5-7B@http://gpu-box:8000/v1',
        model: 'Qwen/Qwen2.5-7B',
        baseURL: 'http://gpu-box:8000/v1',
        completions: true,
        jsonMode: true,
      },
    ],
  ])('reads %s', (id, expected) => {
    expect(parseModelId(id)).toEqual(expected);
  });

  it.each([
    ['gpt-4o', /no provider prefix/],
    ['anthropic:claude', /unknown provider "anthropic"/],
    ['bedrock:', /Bedrock model id is missing/],
    ['openai:', /model name is missing/],
    ['openai:gpt-4o@http://localhost:1234/v1', /takes no base URL/],
    ['openai-compatible:llama3.1', /base URL is missing/],
    ['openai-compatible:@http://localhost:11434/v1', /model name is missing/],
    ['openai-compatible:llama3.1@http://exa mple/v1', /is not a URL/],
    ['openai-completions:qwen@http://user:pw@gpu-box:8000/v1', /carries credentials/],
  ])('rejects %s, listing the accepted forms', (id, why) => {
    const parse = () => parseModelId(id);

    expect(parse).toThrow(ModelRequestFailed);
    expect(parse).toThrow(why);
    expect(parse).toThrow(/openai-compatible:<model>@<base URL>/);
  });
});

describe('createTextModel', () => {
  it('builds the adapter the id names', async () => {
    expect(await createTextModel('offline', { seed: 's' })).toBeInstanceOf(OfflineModel);
    expect(await createTextModel('bedrock:amazon.nova-micro-v1:0', { seed: 's' })).toBeInstanceOf(
      BedrockModel,
    );
    expect(await createTextModel('openai:gpt-4o-mini', { seed: 's' })).toBeInstanceOf(OpenAIModel);
    expect(
      await createTextModel('openai-compatible:llama3.1@http://127.0.0.1:11434/v1', { seed: 's' }),
    ).toBeInstanceOf(OpenAIModel);
  });

  it('keeps the id the user gave as the model id', async () => {
    const id = 'openai-completions:gpt-3.5-turbo-instruct';

    expect((await createTextModel(id, { seed: 's' })).id).toBe(id);
  });

  it('rejects an unknown id with ModelRequestFailed', async () => {
    await expect(createTextModel('claude-3', { seed: 's' })).rejects.toBeInstanceOf(ModelRequestFailed);
  });
});

describe('describeModel', () => {
  it('says the offline model is a stand-in with estimated token counts', () => {
    expect(describeModel('offline')).toMatch(/stand-in.*estimated/);
  });

  it('names the provider, model, endpoint and that token counts are real', () => {
    expect(describeModel('openai-compatible:llama3.1@http://127.0.0.1:11434/v1')).toBe(
      'OpenAI-compatible server (chat completions), model llama3.1, endpoint http://127.0.0.1:11434/v1; token counts reported by the server (estimated when it leaves them out)',
    );
    expect(describeModel('openai-completions:gpt-3.5-turbo-instruct')).toMatch(
      /^OpenAI \(completions for raw prompts.*model gpt-3\.5-turbo-instruct, endpoint https:\/\/api\.openai\.com\/v1/,
    );
    expect(describeModel('bedrock:amazon.nova-micro-v1:0')).toMatch(
      /^Amazon Bedrock \(Converse\), model amazon\.nova-micro-v1:0, endpoint .+; token counts reported by Bedrock$/,
    );
  });

  it.each([
    'openai-compatible:m@https://me:hunter2@gpu-box:8000/v1',
    'openai-compatible:m@https://hunter2@gpu-box:8000/v1',
    'openai-compatible:m@https://me:hunter2 @gpu-box:8000/v1',
    'replay:run-1+openai-completions:m@http://me:hunter2@gpu-box:8000/v1#no-json',
  ])('refuses a base URL with credentials without printing them: %s', (id) => {
    const describe = () => describeModel(id);

    expect(describe).toThrow(ModelRequestFailed);
    expect(describe).toThrow(/credentials|not a URL/);
    expect(describe).toThrow(/https?:\/\/\*\*\*@gpu-box/);
    expect(describe).not.toThrow(/hunter2/);
  });

  it('rejects an unknown id', () => {
    expect(() => describeModel('nope')).toThrow(ModelRequestFailed);
  });
});

describe('ollamaHint', () => {
  let server: StandIn;

  beforeAll(async () => {
    server = await startOpenAIStandIn({ models: ['llama3.2:3b', 'nomic-embed-text:latest'] });
  });

  afterAll(async () => {
    await server.close();
  });

  it('gives the exact --model flag for the first model a server lists', async () => {
    // The default 300 ms probe is for a run's start; a loaded test machine can be slower than that.
    const hint = await ollamaHint({ baseURL: server.url, timeoutMs: 10_000 });

    expect(hint).toContain(`--model openai-compatible:llama3.2:3b@${server.url}`);
    expect(server.requests.at(-1)?.path).toBe('/v1/models');
  });

  it('returns undefined when nothing listens', async () => {
    const gone = await startOpenAIStandIn();
    await gone.close();

    expect(await ollamaHint({ baseURL: gone.url })).toBeUndefined();
  });

  it('returns undefined when the server is slower than the probe allows', async () => {
    server.enqueue({ latencyMs: 500 });

    expect(await ollamaHint({ baseURL: server.url, timeoutMs: 50 })).toBeUndefined();
  });

  it('returns undefined when the reply is not a model list', async () => {
    server.enqueue({ badBody: true });

    expect(await ollamaHint({ baseURL: server.url, timeoutMs: 10_000 })).toBeUndefined();
  });

  it('returns undefined when the server lists no models', async () => {
    const empty = await startOpenAIStandIn({ models: [] });

    expect(await ollamaHint({ baseURL: empty.url })).toBeUndefined();
    await empty.close();
  });
});
