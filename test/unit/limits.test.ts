import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { RunInputInvalid } from '../../functions/shared/errors.ts';
import {
  assertModelAllowed,
  assertModelEndpointAllowed,
  checkOperatorLimits,
  DEFAULT_OPERATOR_LIMITS,
  endpointProblem,
  LIMIT_SETTINGS,
  ModelEndpointNotAllowed,
  operatorLimitsFromEnv,
  parseEndpointList,
} from '../../functions/shared/limits.ts';
import { createTextModel } from '../../functions/shared/models/index.ts';
import type { ModelRequest } from '../../functions/shared/ports.ts';
import { RunInput } from '../../functions/shared/schemas.ts';
import { type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';

describe('a model endpoint', () => {
  it.each([
    'https://api.together.xyz/v1',
    'http://127.0.0.1:11434/v1',
    'http://127.1.2.3:8000/v1',
    'http://localhost:1234/v1',
    'http://[::1]:8080/v1',
  ])('may be %s', (url) => {
    expect(endpointProblem(url)).toBeUndefined();
  });

  it.each([
    ['http://gpu-box:8000/v1', /plain http: the API key would cross the network unencrypted; use https/],
    ['http://127.0.0.1.nip.io/v1', /plain http/],
    ['ftp://example.com/v1', /not an http\(s\) URL/],
    ['not a url', /is not a URL/],
    ['https://me:hunter2@api.together.xyz/v1', /https:\/\/\*\*\*@api\.together\.xyz\/v1 carries credentials/],
  ])('may not be %s', (url, why) => {
    expect(endpointProblem(url)).toMatch(why);
    expect(endpointProblem(url)).not.toContain('hunter2');
  });
});

describe('the allowed list', () => {
  const allowed = ['https://api.groq.com/openai/v1', 'https://api.together.xyz', 'http://127.0.0.1:8000/v1'];

  it.each([
    'https://api.groq.com/openai/v1',
    'https://api.groq.com/openai/v1/',
    'https://api.groq.com/openai/v1/beta',
    'https://api.together.xyz/v1',
    'http://127.0.0.1:8000/v1',
  ])('allows %s (the entry, or below it)', (url) => {
    expect(() => assertModelEndpointAllowed(url, allowed)).not.toThrow();
  });

  it.each([
    'https://api.groq.com/openai/v10',
    'https://api.groq.com/other/v1',
    'https://evil.example/openai/v1',
    'https://api.groq.com.evil.example/openai/v1',
    'http://127.0.0.1:8001/v1',
    'http://localhost:8000/v1',
  ])('refuses %s, naming it and how to allow it', (url) => {
    const check = () => assertModelEndpointAllowed(url, allowed);

    expect(check).toThrow(ModelEndpointNotAllowed);
    expect(check).toThrow(url);
    expect(check).toThrow(/-c selfinstruct:allowedModelEndpoints=.*SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS=/);
  });

  it('refuses plain http to a host that is not loopback, even one it lists', () => {
    const check = () => assertModelEndpointAllowed('http://gpu-box:8000/v1', ['http://gpu-box:8000/v1']);

    expect(check).toThrow(ModelEndpointNotAllowed);
    expect(check).toThrow(/http:\/\/gpu-box:8000\/v1 is plain http/);
  });

  it('checks the endpoint of every model form that has one, a replay fallback included', () => {
    expect(() =>
      assertModelAllowed('openai-compatible:m@https://api.groq.com/openai/v1', allowed),
    ).not.toThrow();
    expect(() => assertModelAllowed('openai:gpt-4o-mini', allowed)).toThrow(/api\.openai\.com/);
    expect(() => assertModelAllowed('openai-completions:m@https://evil.example/v1', allowed)).toThrow(
      ModelEndpointNotAllowed,
    );
    expect(() =>
      assertModelAllowed('replay:run-1+openai-compatible:m@https://evil.example/v1', allowed),
    ).toThrow(ModelEndpointNotAllowed);
    for (const model of [
      'offline',
      'bedrock:amazon.nova-micro-v1:0',
      'replay:run-1',
      'replay:run-1+offline',
    ]) {
      expect(() => assertModelAllowed(model, []), model).not.toThrow();
    }
  });

  it('reads from context or the environment as a JSON array or a comma- or space-separated text', () => {
    const urls = ['https://a.example/v1', 'http://127.0.0.1:8000/v1'];
    expect(parseEndpointList(urls)).toEqual(urls);
    expect(parseEndpointList(JSON.stringify(urls))).toEqual(urls);
    expect(parseEndpointList(' https://a.example/v1, http://127.0.0.1:8000/v1 ')).toEqual(urls);
    expect(parseEndpointList('https://a.example/v1 http://127.0.0.1:8000/v1')).toEqual(urls);
  });
});

describe("the operator's caps", () => {
  const config = (input: Record<string, unknown>) => parseRunInput(input, 'run-1');
  const limits = { ...DEFAULT_OPERATOR_LIMITS, maxModelCallsInFlight: 100, modelFunctionConcurrency: 12 };

  it('pass a run within them', () => {
    expect(() =>
      checkOperatorLimits(config({ mapConcurrency: 12, callConcurrency: 8 }), limits),
    ).not.toThrow();
  });

  it('refuse a Map concurrency above the reserved concurrency, naming the cap and its context key', () => {
    const check = () => checkOperatorLimits(config({ mapConcurrency: 13, callConcurrency: 1 }), limits);

    expect(check).toThrow(RunInputInvalid);
    expect(check).toThrow(
      /mapConcurrency 13 is above the 12 .*CDK context selfinstruct:modelFunctionConcurrency/,
    );
  });

  it('refuse more model calls at once than maxModelCallsInFlight, naming the cap and its context key', () => {
    const check = () => checkOperatorLimits(config({ mapConcurrency: 11, callConcurrency: 10 }), limits);

    expect(check).toThrow(
      /11 × 10 = 110 model calls at once .* cap of 100 \(CDK context selfinstruct:maxModelCallsInFlight\)/,
    );
  });

  it('are the defaults when the environment gives none, and the environment’s values otherwise', () => {
    const { allowedModelEndpoints, maxModelCallsInFlight, modelFunctionConcurrency } = LIMIT_SETTINGS;

    expect(operatorLimitsFromEnv({})).toEqual(DEFAULT_OPERATOR_LIMITS);
    expect(
      operatorLimitsFromEnv({
        [allowedModelEndpoints.env]: 'https://a.example/v1,https://b.example/v1',
        [maxModelCallsInFlight.env]: '64',
        [modelFunctionConcurrency.env]: '16',
      }),
    ).toEqual({
      allowedModelEndpoints: ['https://a.example/v1', 'https://b.example/v1'],
      maxModelCallsInFlight: 64,
      modelFunctionConcurrency: 16,
    });
    expect(() => operatorLimitsFromEnv({ [maxModelCallsInFlight.env]: 'lots' })).toThrow(/positive integer/);
  });
});

describe('the run input', () => {
  const issues = (input: Record<string, unknown>) =>
    RunInput.safeParse(input).error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`) ?? [];

  it('refuses a Map concurrency above the 40 items an inline Map runs at once', () => {
    expect(issues({ mapConcurrency: 40 })).toEqual([]);
    expect(issues({ mapConcurrency: 41 })).toEqual([
      'mapConcurrency: an inline Map state runs at most 40 items at once: use at most 40',
    ]);
  });

  it('takes a price table from prices/ only, and a seed file from the prefixes "Prepare run" may read', () => {
    expect(issues({ priceTableKey: 'prices/run-1/mine.json', seedKey: 'uploads/run-1/seeds.jsonl' })).toEqual(
      [],
    );
    expect(issues({ priceTableKey: 'runs/run-1/mine.json' })).toEqual([
      expect.stringMatching(/^priceTableKey: must be under prices\//),
    ]);
    expect(issues({ seedKey: 'runs/run-1/iteration-1/candidates.jsonl' })).toEqual([
      expect.stringMatching(/^seedKey: must be under defaults\/, seeds\/, uploads\/, pools\/, exports\//),
    ]);
  });

  it('refuses a model URL with credentials without repeating them', () => {
    const found = issues({ model: 'openai-compatible:m@https://me:hunter2@gpu-box/v1' });

    expect(found).toEqual([expect.stringMatching(/^model: the model URL carries credentials/)]);
    expect(found.join()).not.toContain('hunter2');
    expect(found.join()).toContain('SELFINSTRUCT_API_KEY');
  });
});

describe('the OpenAI adapter', () => {
  const KEY = 'sk-limits-test-0123';
  const request: ModelRequest = {
    stage: 'classify',
    format: 'classify/default',
    kind: 'chat',
    prompt: 'Is the sky blue?',
    temperature: 0,
    topP: 1,
    maxTokens: 16,
  };
  let allowed: StandIn;
  let other: StandIn;

  beforeAll(async () => {
    allowed = await startOpenAIStandIn({ apiKey: KEY });
    other = await startOpenAIStandIn({ apiKey: KEY });
    process.env.SELFINSTRUCT_API_KEY = KEY;
    delete process.env.MODEL_API_KEY_SECRET_ARN;
  });

  afterAll(async () => {
    await allowed.close();
    await other.close();
  });

  beforeEach(() => {
    process.env[LIMIT_SETTINGS.allowedModelEndpoints.env] = allowed.url;
    allowed.reset();
    other.reset();
  });

  it('sends a request, with the key, to an allowed endpoint', async () => {
    const model = await createTextModel(`openai-compatible:m@${allowed.url}`, { seed: 's' });

    await model.generate(request);

    expect(allowed.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${KEY}`]);
  });

  it('sends nothing to an endpoint outside the list, whoever calls it (defence in depth)', async () => {
    const model = await createTextModel(`openai-compatible:m@${other.url}`, { seed: 's' });

    await expect(model.generate(request)).rejects.toThrow(ModelEndpointNotAllowed);
    expect(other.requests).toEqual([]);
  });

  it('sends nothing anywhere but OpenAI and Ollama when the environment names no endpoints', async () => {
    delete process.env[LIMIT_SETTINGS.allowedModelEndpoints.env];
    const model = await createTextModel(`openai-compatible:m@${allowed.url}`, { seed: 's' });

    await expect(model.generate(request)).rejects.toThrow(
      /api\.openai\.com\/v1, http:\/\/127\.0\.0\.1:11434\/v1/,
    );
    expect(allowed.requests).toEqual([]);
  });
});
