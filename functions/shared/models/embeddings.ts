/**
 * The `Embedder` port and its adapters, for finding near-duplicate instructions by meaning:
 *
 * - `bedrock:amazon.titan-embed-text-v2:0`: Amazon Titan Text Embeddings V2 through Bedrock's
 *   InvokeModel, one call per text (the model takes one text a call) with bounded concurrency, vectors
 *   normalized by the model;
 * - `openai:<model>` (e.g. `openai:text-embedding-3-small`) and `openai-compatible:<model>@<base URL>`:
 *   the OpenAI API's `/embeddings`, texts sent in batches;
 * - `offline`: pretrained GloVe word vectors averaged over the text's words (`word-vectors.ts`), for
 *   local runs and tests without a provider.
 *
 * `embedCall` is one billed call (at most `textsPerCall` texts) with its token usage, for the call
 * runner (`embedding-calls.ts`) to retry, count and record; `embed` embeds any number of texts.
 *
 * Errors are mapped as for the text models (`bedrockError`, `openAIError`): throttling →
 * `ModelThrottled`, transient faults → `ModelUnavailable`, the rest → `ModelRequestFailed`.
 */

import { createHash } from 'node:crypto';
import { InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime';
import pLimit from 'p-limit';
import { tokenize } from '../engine/rouge.ts';
import { ConfigurationError, ModelUnavailable } from '../errors.ts';
import { bedrockClient, bedrockError } from './bedrock.ts';
import { checkEmbedderId } from './embedding-ids.ts';
import { DEFAULT_TIMEOUT_MS, type OpenAIEndpoint, parseModelId } from './model-ids.ts';
import { describeEndpoint, openAIClient, openAIError } from './openai.ts';
import { WORD_VECTOR_DIMENSIONS, wordVectorEmbedding } from './word-vectors.ts';

/** The vectors of one call and the input tokens it was billed. */
export interface EmbeddingReply {
  vectors: number[][];
  inputTokens: number;
  /** The provider reported no token count: `inputTokens` is estimated (one per word). */
  estimated: boolean;
}

export { TITAN_TEXT_EMBEDDINGS_V2 } from './embedding-ids.ts';

/** Turns texts into vectors; similar meanings give close vectors. */
export interface Embedder {
  /** The embedder id as the user selected it, e.g. `bedrock:amazon.titan-embed-text-v2:0`. */
  readonly id: string;
  /**
   * Length of every vector; `undefined` until the first call when only the server knows it (a model of
   * an OpenAI-compatible server, without the `dimensions` option).
   */
  readonly dimensions: number | undefined;
  /** Texts one call takes (Titan: 1; an OpenAI-API server: the batch size). */
  readonly textsPerCall: number;
  /** A provider bills its calls (the call runner records them in the run's ledger); offline: no. */
  readonly billed: boolean;
  /** One vector per text, in the order of `texts`. */
  embed(texts: string[]): Promise<number[][]>;
  /** One call: at most `textsPerCall` texts, their vectors and the tokens billed. */
  embedCall(texts: string[]): Promise<EmbeddingReply>;
}

/** Tokens of texts whose provider reports none: their words, as the ROUGE tokenizer counts them. */
const estimateTokens = (texts: readonly string[]) => texts.reduce((n, text) => n + tokenize(text).length, 0);

/** Options of `createEmbedder`. */
export interface EmbedderOptions {
  /**
   * Length of the vectors: Titan V2 accepts 256, 512 or 1024 (default 1024); OpenAI's
   * `text-embedding-3-*` models shorten theirs on request; other servers get it as `dimensions` too.
   */
  dimensions?: number;
  /** Calls at once (Titan: one text a call; OpenAI API: one batch a call). @default 8 (Titan), 4 */
  concurrency?: number;
  /** Texts per call to an OpenAI-API server. @default 128 */
  batchSize?: number;
  /** Time allowed for one call. @default 120000 */
  timeoutMs?: number;
}

const TITAN_DIMENSIONS = [256, 512, 1024];

/** Native vector lengths of OpenAI's embedding models. */
const OPENAI_DIMENSIONS: Record<string, number> = {
  'text-embedding-3-small': 1536,
  'text-embedding-3-large': 3072,
  'text-embedding-ada-002': 1536,
};

/** A deterministic embedding: a hashed bag of the ROUGE tokenizer's words, L2-normalized. */
export function hashedEmbedding(text: string, dimensions: number): number[] {
  const vector = new Array<number>(dimensions).fill(0);
  for (const token of tokenize(text)) {
    const hash = createHash('sha256').update(token).digest();
    const index = hash.readUInt32BE(0) % dimensions;
    vector[index] = (vector[index] ?? 0) + ((hash.readUInt8(4) & 1) === 1 ? -1 : 1);
  }
  const norm = Math.hypot(...vector);
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

/**
 * The offline embedder: averaged pretrained word vectors (`word-vectors.ts`), no network, no charge.
 * Texts that use the same or related words are close, whatever their order.
 */
export class OfflineEmbedder implements Embedder {
  readonly id = 'offline';
  readonly dimensions = WORD_VECTOR_DIMENSIONS;
  readonly textsPerCall = 512;
  readonly billed = false;

  async embed(texts: string[]): Promise<number[][]> {
    return texts.map((text) => Array.from(wordVectorEmbedding(text)));
  }

  async embedCall(texts: string[]): Promise<EmbeddingReply> {
    return { vectors: await this.embed(texts), inputTokens: estimateTokens(texts), estimated: true };
  }
}

/** Amazon Titan Text Embeddings V2 on Bedrock (InvokeModel, one text a call, normalized vectors). */
export class TitanEmbedder implements Embedder {
  readonly dimensions: number;
  readonly textsPerCall = 1;
  readonly billed = true;
  private readonly modelId: string;
  private readonly concurrency: number;
  private readonly timeoutMs: number;

  /** `id` is `bedrock:amazon.titan-embed-text-v2:0`. */
  constructor(
    readonly id: string,
    { dimensions = 1024, concurrency = 8, timeoutMs = DEFAULT_TIMEOUT_MS }: EmbedderOptions = {},
  ) {
    if (!TITAN_DIMENSIONS.includes(dimensions)) {
      throw new ConfigurationError(
        `Titan Text Embeddings V2 takes 256, 512 or 1024 dimensions, not ${dimensions}`,
      );
    }
    this.modelId = id.slice('bedrock:'.length);
    this.dimensions = dimensions;
    this.concurrency = concurrency;
    this.timeoutMs = timeoutMs;
  }

  async embed(texts: string[]): Promise<number[][]> {
    const limit = pLimit(this.concurrency);
    return Promise.all(texts.map((text) => limit(async () => (await this.embedOne(text)).vector)));
  }

  async embedCall(texts: string[]): Promise<EmbeddingReply> {
    const replies = await Promise.all(texts.map((text) => this.embedOne(text)));
    return {
      vectors: replies.map((reply) => reply.vector),
      inputTokens: replies.reduce((n, reply) => n + (reply.tokens ?? 0), 0),
      estimated: replies.some((reply) => reply.tokens === undefined),
    };
  }

  private async embedOne(inputText: string): Promise<{ vector: number[]; tokens?: number }> {
    let body: Uint8Array;
    try {
      const reply = await bedrockClient(this.timeoutMs).send(
        new InvokeModelCommand({
          modelId: this.modelId,
          contentType: 'application/json',
          accept: 'application/json',
          body: JSON.stringify({ inputText, dimensions: this.dimensions, normalize: true }),
        }),
      );
      body = reply.body;
    } catch (error) {
      throw bedrockError(error, this.modelId);
    }
    let parsed: { embedding?: unknown; inputTextTokenCount?: unknown } = {};
    try {
      parsed = JSON.parse(new TextDecoder().decode(body));
    } catch {
      parsed = {};
    }
    if (!isVector(parsed.embedding, this.dimensions)) {
      throw new ModelUnavailable(`Bedrock, model ${this.modelId}: unreadable embedding reply`);
    }
    const tokens = parsed.inputTextTokenCount;
    return {
      vector: parsed.embedding,
      tokens: typeof tokens === 'number' && Number.isInteger(tokens) && tokens >= 0 ? tokens : undefined,
    };
  }
}

function isVector(value: unknown, dimensions?: number): value is number[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    (dimensions === undefined || value.length === dimensions) &&
    value.every((x) => typeof x === 'number')
  );
}

/** Embeddings through the OpenAI API's `/embeddings` (OpenAI or any compatible server). */
export class OpenAIEmbedder implements Embedder {
  readonly billed = true;
  #dimensions: number | undefined;
  private readonly requestDimensions: number | undefined;
  private readonly concurrency: number;
  private readonly batchSize: number;
  private readonly timeoutMs: number;

  /** `id` as the user gave it; `endpoint` its parsed form (`parseModelId`). */
  constructor(
    readonly id: string,
    private readonly endpoint: Pick<OpenAIEndpoint, 'provider' | 'baseURL' | 'model'>,
    { dimensions, concurrency = 4, batchSize = 128, timeoutMs = DEFAULT_TIMEOUT_MS }: EmbedderOptions = {},
  ) {
    this.requestDimensions = dimensions;
    this.#dimensions = dimensions ?? OPENAI_DIMENSIONS[endpoint.model];
    this.concurrency = concurrency;
    this.batchSize = batchSize;
    this.timeoutMs = timeoutMs;
  }

  get dimensions(): number | undefined {
    return this.#dimensions;
  }

  get textsPerCall(): number {
    return this.batchSize;
  }

  async embed(texts: string[]): Promise<number[][]> {
    const limit = pLimit(this.concurrency);
    const batches: string[][] = [];
    for (let i = 0; i < texts.length; i += this.batchSize) batches.push(texts.slice(i, i + this.batchSize));
    const results = await Promise.all(batches.map((batch) => limit(() => this.embedCall(batch))));
    return results.flatMap((result) => result.vectors);
  }

  async embedCall(input: string[]): Promise<EmbeddingReply> {
    const { client, apiKey } = await openAIClient(this.endpoint, this.timeoutMs);
    let data: { index?: number; embedding?: unknown }[] | undefined;
    let promptTokens: number | undefined;
    try {
      const reply = await client.embeddings.create({
        model: this.endpoint.model,
        input,
        // Floats, not the SDK's default base64: not every compatible server encodes base64.
        encoding_format: 'float',
        ...(this.requestDimensions === undefined ? {} : { dimensions: this.requestDimensions }),
      });
      data = reply.data;
      promptTokens = reply.usage?.prompt_tokens;
    } catch (error) {
      throw openAIError(error, this.endpoint, apiKey);
    }
    // Servers number the vectors with `index`; put them back in the order of the texts.
    const byIndex = new Map<number, number[]>();
    for (const [position, item] of (Array.isArray(data) ? data : []).entries()) {
      if (isVector(item.embedding, this.#dimensions)) byIndex.set(item.index ?? position, item.embedding);
    }
    const vectors = input.map((_, i) => byIndex.get(i));
    if (!vectors.every((v): v is number[] => v !== undefined) || byIndex.size !== input.length) {
      throw new ModelUnavailable(
        `${describeEndpoint(this.endpoint)}: unreadable embedding reply (${input.length} texts sent)`,
      );
    }
    this.#dimensions ??= vectors[0]?.length;
    const counted = typeof promptTokens === 'number' && Number.isInteger(promptTokens) && promptTokens >= 0;
    return {
      vectors,
      inputTokens: counted ? promptTokens : estimateTokens(input),
      estimated: !counted,
    } as EmbeddingReply;
  }
}

/**
 * Builds the `Embedder` an id names: `offline`, `bedrock:amazon.titan-embed-text-v2:0`,
 * `openai:<model>` or `openai-compatible:<model>@<base URL>`; anything else is `ModelRequestFailed`.
 */
export async function createEmbedder(id: string, options: EmbedderOptions = {}): Promise<Embedder> {
  checkEmbedderId(id);
  const spec = parseModelId(id);
  if (spec.provider === 'bedrock') return new TitanEmbedder(id, options);
  if (spec.provider === 'openai' || spec.provider === 'openai-compatible') {
    return new OpenAIEmbedder(id, spec, options);
  }
  if (options.dimensions !== undefined && options.dimensions !== WORD_VECTOR_DIMENSIONS) {
    throw new ConfigurationError(`the offline embedder's vectors have ${WORD_VECTOR_DIMENSIONS} dimensions`);
  }
  return new OfflineEmbedder();
}
