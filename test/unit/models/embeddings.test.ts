import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable } from '../../../functions/shared/errors.ts';
import { LIMIT_SETTINGS } from '../../../functions/shared/limits.ts';
import {
  createEmbedder,
  hashedEmbedding,
  OfflineEmbedder,
} from '../../../functions/shared/models/embeddings.ts';
import { type StandIn, startBedrockStandIn, startOpenAIStandIn } from '../../support/model-servers.ts';

const TITAN = 'bedrock:amazon.titan-embed-text-v2:0';

const cosine = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0);

const texts = [
  'Give three tips for staying healthy during the winter.',
  'Give three tips for staying healthy in the winter months.',
  'Translate the following sentence about sourdough baking into Spanish.',
];

let bedrock: StandIn;
let openai: StandIn;

beforeAll(async () => {
  bedrock = await startBedrockStandIn();
  openai = await startOpenAIStandIn({ apiKey: 'sk-embed' });
  process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = bedrock.url;
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'AKIDSTANDIN';
  process.env.AWS_SECRET_ACCESS_KEY = 'stand-in-secret';
  process.env.SELFINSTRUCT_API_KEY = 'sk-embed';
  // The key may go to the stand-in only (limits.ts): it is the one endpoint the tests allow.
  process.env[LIMIT_SETTINGS.allowedModelEndpoints.env] = openai.url;
  delete process.env.MODEL_API_KEY_SECRET_ARN;
});

afterAll(async () => {
  await Promise.all([bedrock.close(), openai.close()]);
});

beforeEach(() => {
  bedrock.reset();
  openai.reset();
});

describe('the Titan Text Embeddings V2 adapter', () => {
  it('embeds each text with one InvokeModel call asking for normalized vectors', async () => {
    const embedder = await createEmbedder(TITAN, { dimensions: 256 });

    const vectors = await embedder.embed(texts);

    expect(embedder.dimensions).toBe(256);
    expect(vectors).toHaveLength(3);
    expect(vectors.every((v) => v.length === 256)).toBe(true);
    expect(bedrock.requests.map((r) => r.path)).toEqual(
      texts.map(() => '/model/amazon.titan-embed-text-v2%3A0/invoke'),
    );
    expect(
      bedrock.requests
        .map((r) => r.body)
        .sort((a, b) => String(a?.inputText).localeCompare(String(b?.inputText))),
    ).toEqual([...texts].sort().map((inputText) => ({ inputText, dimensions: 256, normalize: true })));
  });

  it('keeps the order of the texts and puts near-duplicates closer than unrelated texts', async () => {
    const [a, b, c] = await (await createEmbedder(TITAN, { dimensions: 512 })).embed(texts);

    expect(a).toEqual(hashedEmbedding(texts[0] ?? '', 512));
    expect(cosine(a ?? [], b ?? [])).toBeGreaterThan(cosine(a ?? [], c ?? []) + 0.3);
  });

  it('surfaces throttling as ModelThrottled after one attempt', async () => {
    bedrock.enqueue({ status: 429 }, { status: 429 });

    await expect((await createEmbedder(TITAN)).embed([texts[0] ?? ''])).rejects.toBeInstanceOf(
      ModelThrottled,
    );
    expect(bedrock.requests).toHaveLength(1);
  });

  it('surfaces a reply without an embedding as ModelUnavailable', async () => {
    bedrock.enqueue({ badBody: true });

    await expect((await createEmbedder(TITAN)).embed([texts[0] ?? ''])).rejects.toBeInstanceOf(
      ModelUnavailable,
    );
  });

  it('refuses dimensions Titan V2 does not offer', async () => {
    await expect(createEmbedder(TITAN, { dimensions: 300 })).rejects.toThrow(/256, 512 or 1024/);
  });

  it('refuses other Bedrock models, whose request bodies differ', async () => {
    await expect(createEmbedder('bedrock:cohere.embed-english-v3')).rejects.toBeInstanceOf(
      ModelRequestFailed,
    );
  });
});

describe('the OpenAI-API embeddings adapter', () => {
  it('embeds texts in batches, as floats, and learns the dimensions from the first reply', async () => {
    const embedder = await createEmbedder(`openai-compatible:nomic-embed-text@${openai.url}`, {
      batchSize: 2,
    });
    expect(embedder.dimensions).toBeUndefined();

    const vectors = await embedder.embed(texts);

    expect(vectors).toEqual(texts.map((text) => hashedEmbedding(text, 256)));
    expect(embedder.dimensions).toBe(256);
    expect(openai.requests.map((r) => r.body?.input)).toEqual([texts.slice(0, 2), texts.slice(2)]);
    expect(openai.requests.every((r) => r.path === '/v1/embeddings')).toBe(true);
    expect(openai.requests[0]?.body).toMatchObject({ model: 'nomic-embed-text', encoding_format: 'float' });
  });

  it('asks for the dimensions it was given', async () => {
    const embedder = await createEmbedder(`openai-compatible:m@${openai.url}`, { dimensions: 64 });

    const [vector] = await embedder.embed(['one text']);

    expect(openai.requests[0]?.body?.dimensions).toBe(64);
    expect(vector).toHaveLength(64);
  });

  it("knows the native dimensions of OpenAI's own models", async () => {
    process.env.OPENAI_API_KEY = 'sk-embed';

    const embedder = await createEmbedder('openai:text-embedding-3-small');

    expect(embedder.dimensions).toBe(1536);
  });

  it('puts near-duplicates closer than unrelated texts', async () => {
    const [a, b, c] = await (await createEmbedder(`openai-compatible:m@${openai.url}`)).embed(texts);

    expect(cosine(a ?? [], b ?? [])).toBeGreaterThan(cosine(a ?? [], c ?? []) + 0.3);
  });

  it('surfaces a 500 as ModelUnavailable and a 401 as ModelRequestFailed', async () => {
    const embedder = await createEmbedder(`openai-compatible:m@${openai.url}`);
    openai.enqueue({ status: 500 });

    await expect(embedder.embed(['x'])).rejects.toBeInstanceOf(ModelUnavailable);
    process.env.SELFINSTRUCT_API_KEY = 'sk-wrong';
    await expect(embedder.embed(['x'])).rejects.toBeInstanceOf(ModelRequestFailed);
    process.env.SELFINSTRUCT_API_KEY = 'sk-embed';
  });

  it('refuses an openai-completions id', async () => {
    await expect(createEmbedder(`openai-completions:m@${openai.url}`)).rejects.toBeInstanceOf(
      ModelRequestFailed,
    );
  });
});

describe('the offline embedder', () => {
  it('is deterministic and normalized', async () => {
    const embedder = new OfflineEmbedder();

    const [first] = await embedder.embed([texts[0] ?? '']);
    const [again] = await embedder.embed([texts[0] ?? '']);

    expect(first).toEqual(again);
    expect(cosine(first ?? [], first ?? [])).toBeCloseTo(1, 6);
  });

  it('puts a paraphrase closer than an unrelated instruction (pretrained word vectors, not hashed words)', async () => {
    const [poem, paraphrase, breakfast] = await new OfflineEmbedder().embed([
      'Write a poem about the ocean.',
      'Compose a verse about the sea.',
      'Give me a list of healthy breakfast ideas.',
    ]);

    expect(cosine(poem ?? [], paraphrase ?? [])).toBeGreaterThan(0.7);
    expect(cosine(poem ?? [], breakfast ?? [])).toBeLessThan(0.5);
  });

  it('bills one call per batch, its words counted as estimated tokens', async () => {
    const reply = await new OfflineEmbedder().embedCall(['Sort the numbers.', 'Name three rivers.']);

    expect(reply.vectors).toHaveLength(2);
    expect(reply).toMatchObject({ inputTokens: 6, estimated: true });
  });
});
