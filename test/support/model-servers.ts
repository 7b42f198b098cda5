/**
 * Local stand-ins for the model providers, speaking their real wire protocols so that the adapters are
 * tested through the real SDK clients: Amazon Bedrock's runtime API (HTTP/2 cleartext, as the Bedrock
 * runtime client speaks HTTP/2 by default) and the OpenAI API (HTTP/1.1). Both listen on 127.0.0.1 on a
 * free port, answer with the project's `OfflineModel` (so replies parse in the pipeline), report
 * realistic token usage, record every request, and inject faults on demand.
 *
 * Faults come from a scripted queue (`faults`, one per request, first in first out, also refillable with
 * `enqueue`), then from a function deciding per request (`fault`); a request without a fault gets a
 * normal reply.
 *
 * Embeddings are deterministic (`hashedEmbedding`: a normalized hashed bag of words), so a test can
 * assert that near-duplicates are closer than unrelated texts.
 */

import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { SYSTEM_MESSAGES } from '../../functions/generate-instances/explain.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { hashedEmbedding } from '../../functions/shared/models/embeddings.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import type { ModelFormat, ModelRequest, ModelStage } from '../../functions/shared/ports.ts';
import { createRng, type Rng } from '../../functions/shared/random.ts';
import { keepIdleConnections } from '../../infra/local/servers.ts';

/** What to do to one request instead of (or before) answering it normally. Fields combine. */
export interface Fault {
  /** Answer with this HTTP error status (the provider's error body and headers). */
  status?: number;
  /**
   * Bedrock: the `x-amzn-errortype` header (default from `status`: 429 ThrottlingException, 500
   * InternalServerException, 503 ServiceUnavailableException, 408 ModelTimeoutException, 400
   * ValidationException, 403 AccessDeniedException, 404 ResourceNotFoundException); OpenAI: `error.type`.
   */
  errorType?: string;
  /** The error message in the body. */
  message?: string;
  /** Wait this long before answering (whatever the answer is). */
  latencyMs?: number;
  /**
   * A 200 reply whose text is garbage: every JSON and block parser of the stages counts it as malformed
   * (the `self-instruct` list parser, which has no notion of malformed, passes it on and the
   * punctuation filter drops it).
   */
  malformedText?: boolean;
  /** A 200 reply whose HTTP body is not JSON at all. */
  badBody?: boolean;
  /** Reply with exactly this text instead of the offline model's. */
  text?: string;
  /** Report this finish reason instead of the offline model's. */
  finish?: 'stop' | 'length';
  /** Leave token usage out of the reply (OpenAI-compatible servers that don't report it). */
  omitUsage?: boolean;
}

/** The garbage text of `malformedText`. */
export const MALFORMED_TEXT = '<|garbled|> ~~ %% ??';

/** A request as the stand-in received it. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string (`?limit=…`), when there was one. */
  query?: string;
  /** The model id: from the path (Bedrock) or the body (OpenAI). */
  model: string | undefined;
  /** The parsed JSON body, or `undefined` when there was none or it was not JSON. */
  body: Record<string, unknown> | undefined;
  /** The body as received when it was not JSON (a multipart file upload). */
  raw?: string;
  /** Request headers, lower-cased names. */
  headers: Record<string, string>;
  /** The SigV4 credential scope of a signed request: access key id, region and service. */
  credential?: { accessKeyId: string; region: string; service: string };
  /** What the stand-in answered: HTTP status, and the text and usage of a model reply. */
  reply?: { status: number; text?: string; usage?: { inputTokens: number; outputTokens: number } };
  /** True once the reply was written to the client (a client that hung up gets none). */
  delivered?: boolean;
}

/**
 * A seeded random mix of faults on model calls (chat and completions), decided per request in arrival
 * order: a share of throttled calls (429), a share of malformed replies (200 with garbage text), and a
 * latency drawn uniformly per call.
 */
export interface FaultMix {
  /** Seed of the draws. */
  seed: string;
  /** Share of calls answered 429. @default 0 */
  throttled?: number;
  /** Share of calls answered 200 with `MALFORMED_TEXT`. @default 0 */
  malformed?: number;
  /** Latency range of every call, in milliseconds. @default [0, 0] */
  latencyMs?: [number, number];
}

/** Options shared by both stand-ins. */
export interface StandInOptions {
  /** A seeded random fault mix, applied when neither the queue nor `fault` decides. */
  mix?: FaultMix;
  /** Faults for the next requests, in order: one per request. */
  faults?: Fault[];
  /** Decides a fault per request when the queue is empty; `undefined` for a normal reply. */
  fault?: (request: RecordedRequest) => Fault | undefined;
  /** Seed of the offline model behind the replies. @default 'stand-in' */
  seed?: string;
  /** Noise of the offline model (see `OfflineModelOptions`). @default 0.15 */
  noise?: number;
}

/** Options of the Bedrock stand-in. */
export interface BedrockStandInOptions extends StandInOptions {
  /**
   * When set, a request signed with another access key id gets Bedrock's 403
   * `UnrecognizedClientException`, as AWS answers a key it does not know.
   */
  accessKeyId?: string;
  /** When set, a request signed for another region gets 403 `InvalidSignatureException`. */
  region?: string;
  /**
   * `POST /guardrail/{id}/version/{v}/apply` blocks a text containing one of these words (whole word, any
   * case) with the content filter of that type (`VIOLENCE`, `HATE`, `INSULTS`, `SEXUAL`, `MISCONDUCT`,
   * `PROMPT_ATTACK`, which applies to `INPUT` only), or `PROFANITY` with the managed word list.
   * @default { kill: 'VIOLENCE' }
   */
  guardrailWords?: Record<string, string>;
  /** The guardrails that exist, as `<id>:<version>`; another gets 404 `ResourceNotFoundException`. @default any */
  guardrails?: string[];
}

/** Options of the OpenAI stand-in. */
export interface OpenAIStandInOptions extends StandInOptions {
  /** When set, every request must carry `Authorization: Bearer <apiKey>` or gets a 401. */
  apiKey?: string;
  /** What `GET /v1/models` lists. @default ['stand-in-chat', 'stand-in-embed'] */
  models?: string[];
  /** Dimensions of the embeddings when the request does not ask for a number. @default 256 */
  dimensions?: number;
  /**
   * `POST /v1/moderations` flags an input containing one of these words (whole word, any case) under
   * its category, as OpenAI's categories are named. @default { kill: 'violence' }
   */
  flaggedWords?: Record<string, string>;
  /**
   * The Batch API (`POST /v1/files` purpose `batch`, `GET /v1/files/{id}/content`, `POST /v1/batches`,
   * `GET /v1/batches/{id}`): a batch completes at its `pollsToComplete`-th retrieve (or ends with
   * `finalStatus`), answering each `/v1/chat/completions` line as the endpoint does; `failRecord` lines
   * go to the error file.
   */
  batch?: {
    pollsToComplete?: number;
    finalStatus?: 'completed' | 'failed' | 'expired';
    failRecord?: (customId: string, index: number) => boolean;
  };
}

/** A batch of the OpenAI stand-in, as it saw it. */
export interface OpenAIStandInBatch {
  id: string;
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  metadata: unknown;
  /** Its `created_at`, in seconds since the epoch. */
  createdAt: number;
  /** Input lines (records), their methods and URLs, and retrieves so far. */
  lines: { custom_id: string; method: string; url: string; body: Record<string, unknown> }[];
  polls: number;
  answered: number;
  failed: number;
}

/** A running stand-in. */
export interface StandIn {
  /** The OpenAI stand-in's batches (with `batch`), in creation order. */
  batches?: OpenAIStandInBatch[];
  /** Bedrock: the endpoint (for `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`); OpenAI: the base URL, ending in `/v1`. */
  url: string;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /**
   * Calls the provider bills: model calls answered 200 with a model reply (malformed text included) and
   * delivered to the client.
   */
  billedCalls(): number;
  /** Adds faults to the end of the scripted queue. */
  enqueue(...faults: Fault[]): void;
  /** Forgets the recorded requests and the faults still queued (between tests). */
  reset(): void;
  close(): Promise<void>;
}

/** `n` copies of a fault, for the queue: `faults: times(2, { status: 429 })`. */
export function times(n: number, fault: Fault): Fault[] {
  return Array.from({ length: n }, () => ({ ...fault }));
}

const TEACHER_SYSTEM_MESSAGES = new Set<string>(Object.values(SYSTEM_MESSAGES));

/** A rough token count, as real tokenizers give for English: about four characters a token. */
const tokens = (text: string) => Math.ceil(text.length / 4);

/** The pipeline step a prompt belongs to, read from the prompt (a provider never gets the stage). */
function stageOf({ system, prompt }: Pick<ModelRequest, 'system' | 'prompt'>): ModelStage {
  // A teacher's request is the user's turn alone, under one of the explanation system messages.
  if (system !== undefined && TEACHER_SYSTEM_MESSAGES.has(system)) return 'teach';
  if (prompt.includes('"instruction_valid"')) return 'judge';
  if (/Is it classification\?\s*$/.test(prompt) || /Is this a classification task/.test(prompt)) {
    return 'classify';
  }
  if (
    prompt.includes('{"instances"') ||
    /^(Come up with examples|Given the classification task)/.test(prompt)
  ) {
    return 'generate-instances';
  }
  return 'generate-instructions';
}

/**
 * The prompt format of a request rebuilt from the wire, read from its prompt as a model would (a
 * provider never gets the `format` tag): the offline model behind the stand-in writes its reply by it.
 */
function formatOf(request: Omit<ModelRequest, 'stage' | 'format'>): ModelFormat {
  const { prompt } = request;
  const chat = request.kind === 'chat' || request.json === true;
  switch (stageOf(request)) {
    case 'generate-instructions':
      if (chat) return 'instructions/default';
      return /Instruction:\s*$/.test(prompt) ? 'instructions/alpaca' : 'instructions/self-instruct';
    case 'classify':
      return chat ? 'classify/default' : 'classify/self-instruct';
    case 'generate-instances':
      if (chat) {
        return /classification task/i.test(prompt)
          ? 'instances/default-classification'
          : 'instances/default-generation';
      }
      return prompt.includes('Class label:')
        ? 'instances/self-instruct-classification'
        : 'instances/self-instruct-generation';
    case 'judge':
      return 'judge/default';
    case 'teach':
      return 'teach/explained';
  }
}

const ERROR_TYPES: Record<number, string> = {
  400: 'ValidationException',
  403: 'AccessDeniedException',
  404: 'ResourceNotFoundException',
  408: 'ModelTimeoutException',
  429: 'ThrottlingException',
  500: 'InternalServerException',
  503: 'ServiceUnavailableException',
};

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/** The fault machinery and request log both stand-ins share. */
class Recorder {
  readonly requests: RecordedRequest[] = [];
  readonly queue: Fault[];
  readonly model: OfflineModel;

  private readonly mixRng: Rng | undefined;

  constructor(private readonly options: StandInOptions) {
    this.queue = [...(options.faults ?? [])];
    this.model = new OfflineModel({ seed: options.seed ?? 'stand-in', noise: options.noise ?? 0.15 });
    this.mixRng = options.mix ? createRng(options.mix.seed) : undefined;
  }

  /** The mix's fault for the next model call (other requests get none). */
  private mixed(request: RecordedRequest): Fault {
    const mix = this.options.mix;
    if (!mix || !this.mixRng || !/\/(completions|converse)$/.test(request.path)) return {};
    const [low, high] = mix.latencyMs ?? [0, 0];
    const latencyMs = low + this.mixRng.next() * (high - low);
    const draw = this.mixRng.next();
    const throttled = mix.throttled ?? 0;
    if (draw < throttled) return { status: 429, latencyMs };
    if (draw < throttled + (mix.malformed ?? 0)) return { malformedText: true, latencyMs };
    return { latencyMs };
  }

  billedCalls(): number {
    return this.requests.filter(
      (request) => request.delivered && request.reply?.status === 200 && request.reply.text !== undefined,
    ).length;
  }

  async receive(req: AnyRequest, modelFromPath?: string): Promise<RecordedRequest> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: Record<string, unknown> | undefined;
    try {
      body = raw === '' ? undefined : (JSON.parse(raw) as Record<string, unknown>);
    } catch {
      body = undefined;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && !name.startsWith(':')) headers[name.toLowerCase()] = value;
    }
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const scope = /Credential=([^/]+)\/\d+\/([^/]+)\/([^/]+)\//.exec(headers.authorization ?? '');
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      ...(url.search === '' ? {} : { query: url.search }),
      model: modelFromPath ?? (typeof body?.model === 'string' ? body.model : undefined),
      body,
      ...(body === undefined && raw !== '' ? { raw } : {}),
      headers,
      ...(scope
        ? { credential: { accessKeyId: scope[1] ?? '', region: scope[2] ?? '', service: scope[3] ?? '' } }
        : {}),
    };
    this.requests.push(recorded);
    return recorded;
  }

  reset(): void {
    this.requests.length = 0;
    this.queue.length = 0;
  }

  faultFor(request: RecordedRequest): Fault {
    return this.queue.shift() ?? this.options.fault?.(request) ?? this.mixed(request);
  }
}

/** Writes a reply; false when the client has hung up. */
function send(res: AnyResponse, status: number, body: string, headers: Record<string, string> = {}): boolean {
  if (res.destroyed || res.writableEnded) return false;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
  return true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the offline model on a request rebuilt from the wire, then applies the fault's overrides. */
async function answer(
  recorder: Pick<Recorder, 'model'>,
  request: Omit<ModelRequest, 'stage' | 'format'>,
  fault: Fault,
): Promise<{ text: string; finish: 'stop' | 'length'; inputTokens: number; outputTokens: number }> {
  const reply = await recorder.model.generate({
    ...request,
    stage: stageOf(request),
    format: formatOf(request),
  });
  const text = fault.malformedText ? MALFORMED_TEXT : (fault.text ?? reply.text);
  // Real tokenizers count the chat template's tokens too: a few per message on top of the text.
  const messages = request.system ? 2 : 1;
  return {
    text,
    finish: fault.finish ?? reply.finish,
    inputTokens: tokens((request.system ?? '') + request.prompt) + 3 * messages,
    outputTokens: tokens(text),
  };
}

/**
 * A Converse request body answered by the offline model behind a stand-in: the Converse response body
 * (also a Bedrock batch job's `modelOutput`, see `batch-servers.ts`), with its text and token counts.
 */
export async function converseAnswer(
  recorder: Pick<Recorder, 'model'>,
  body: Record<string, unknown>,
  fault: Fault = {},
): Promise<{ response: Record<string, unknown>; text: string; inputTokens: number; outputTokens: number }> {
  const messages = (body.messages ?? []) as { content?: { text?: string }[] }[];
  const prompt = messages
    .flatMap((m) => m.content ?? [])
    .map((c) => c.text ?? '')
    .join('\n');
  const system = ((body.system ?? []) as { text?: string }[]).map((s) => s.text ?? '').join('\n');
  const config = (body.inferenceConfig ?? {}) as Record<string, unknown>;
  const result = await answer(
    recorder,
    {
      kind: system ? 'chat' : 'completion',
      ...(system ? { system, json: true } : {}),
      prompt,
      temperature: Number(config.temperature ?? 1),
      topP: Number(config.topP ?? 1),
      maxTokens: Number(config.maxTokens ?? 4096),
      ...(Array.isArray(config.stopSequences) ? { stop: config.stopSequences as string[] } : {}),
    },
    fault,
  );
  return {
    text: result.text,
    inputTokens: result.inputTokens,
    outputTokens: result.outputTokens,
    response: {
      output: { message: { role: 'assistant', content: [{ text: result.text }] } },
      stopReason: result.finish === 'length' ? 'max_tokens' : 'end_turn',
      usage: {
        inputTokens: result.inputTokens,
        outputTokens: result.outputTokens,
        totalTokens: result.inputTokens + result.outputTokens,
      },
    },
  };
}

export async function listen(
  server: ReturnType<typeof createHttpServer> | ReturnType<typeof createHttp2Server>,
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Starts an Amazon Bedrock runtime stand-in (HTTP/2 cleartext): `POST /model/{modelId}/converse`
 * (Converse, reply text from the offline model), `POST /model/{modelId}/invoke` (Titan Text
 * Embeddings V2: `{inputText, dimensions}` → `{embedding, inputTextTokenCount}`) and
 * `POST /guardrail/{id}/version/{v}/apply` (ApplyGuardrail, blocking `guardrailWords`). Errors carry the
 * `x-amzn-errortype` header and a `{"message"}` body, as Bedrock's do.
 */
export async function startBedrockStandIn(options: BedrockStandInOptions = {}): Promise<StandIn> {
  const recorder = new Recorder(options);
  const server = createHttp2Server();
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('request', async (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const pathname = new URL(req.url, 'http://x').pathname;
    const match =
      /^\/model\/([^/]+)\/(converse|invoke)$/.exec(pathname) ??
      /^\/guardrail\/([^/]+)\/version\/([^/]+)\/(apply)$/.exec(pathname);
    const recorded = await recorder.receive(req, match ? decodeURIComponent(match[1] ?? '') : undefined);
    const reply = (status: number, body: string, headers: Record<string, string> = {}) => {
      recorded.reply = { ...recorded.reply, status };
      recorded.delivered = send(res, status, body, headers);
    };
    if (req.method !== 'POST' || !match) {
      reply(404, JSON.stringify({ message: `No route ${req.method} ${req.url}` }), {
        'x-amzn-errortype': 'UnknownOperationException',
      });
      return;
    }
    const denied =
      options.accessKeyId !== undefined && recorded.credential?.accessKeyId !== options.accessKeyId
        ? ['UnrecognizedClientException', 'The security token included in the request is invalid.']
        : options.region !== undefined && recorded.credential?.region !== options.region
          ? ['InvalidSignatureException', `Credential should be scoped to a valid region.`]
          : undefined;
    if (denied) {
      reply(403, JSON.stringify({ message: denied[1] }), {
        'x-amzn-errortype': `${denied[0]}:http://internal.amazon.com/coral/com.amazon.coral.service/`,
      });
      return;
    }
    const fault = recorder.faultFor(recorded);
    if (fault.latencyMs) await sleep(fault.latencyMs);
    if (fault.status !== undefined && fault.status >= 400) {
      const type = fault.errorType ?? ERROR_TYPES[fault.status] ?? 'InternalServerException';
      reply(fault.status, JSON.stringify({ message: fault.message ?? `${type} from the stand-in` }), {
        'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazonaws.bedrock/`,
      });
      return;
    }
    if (fault.badBody) {
      reply(200, '<html><body>Bad gateway</body></html>', { 'content-type': 'text/html' });
      return;
    }
    const body = recorded.body ?? {};
    if (match[3] === 'apply') {
      const [status, answer] = applyGuardrail(
        `${recorded.model}:${decodeURIComponent(match[2] ?? '')}`,
        body,
        options,
      );
      if (status !== 200) {
        const type = ERROR_TYPES[status] ?? 'InternalServerException';
        reply(status, JSON.stringify(answer), {
          'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazonaws.bedrock/`,
        });
        return;
      }
      reply(200, JSON.stringify(answer));
      recorded.reply = { ...recorded.reply, status: 200 };
      return;
    }
    if (match[2] === 'invoke') {
      const inputText = String(body.inputText ?? '');
      const dimensions = Number(body.dimensions ?? 1024);
      reply(
        200,
        JSON.stringify({
          embedding: hashedEmbedding(inputText, dimensions),
          inputTextTokenCount: tokens(inputText),
        }),
      );
      return;
    }
    const result = await converseAnswer(recorder, body, fault);
    recorded.reply = {
      status: 200,
      text: result.text,
      usage: { inputTokens: result.inputTokens, outputTokens: result.outputTokens },
    };
    reply(200, JSON.stringify({ ...result.response, metrics: { latencyMs: fault.latencyMs ?? 1 } }));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests: recorder.requests,
    billedCalls: () => recorder.billedCalls(),
    enqueue: (...faults) => recorder.queue.push(...faults),
    reset: () => recorder.reset(),
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The stand-in's `ApplyGuardrail`: the request checked as Bedrock checks it (`source` INPUT or OUTPUT,
 * text content blocks), then each block screened for `guardrailWords`; the reply in Bedrock's shape,
 * with text units (one per 1,000 characters, per policy: content filters and the word filter) as usage.
 * It knows no classifier: only the configured words are blocked, at HIGH confidence.
 */
function applyGuardrail(
  guardrail: string,
  body: Record<string, unknown>,
  options: BedrockStandInOptions,
): [number, Record<string, unknown>] {
  if (options.guardrails && !options.guardrails.includes(guardrail)) {
    return [404, { message: `The guardrail ${guardrail} was not found.` }];
  }
  const { source, content } = body;
  const texts = Array.isArray(content)
    ? content.map((block) => (block as { text?: { text?: unknown } })?.text?.text)
    : [];
  if ((source !== 'INPUT' && source !== 'OUTPUT') || texts.length === 0) {
    return [400, { message: 'source must be INPUT or OUTPUT, and content a non-empty list' }];
  }
  if (texts.some((text) => typeof text !== 'string' || text.length === 0)) {
    return [400, { message: 'Each content block needs a text of at least 1 character.' }];
  }
  const text = (texts as string[]).join('\n');
  const found = Object.entries(options.guardrailWords ?? { kill: 'VIOLENCE' }).filter(
    ([word, type]) =>
      new RegExp(`\\b${word}\\b`, 'i').test(text) && !(type === 'PROMPT_ATTACK' && source === 'OUTPUT'),
  );
  const filters = found
    .filter(([, type]) => type !== 'PROFANITY')
    .map(([, type]) => ({
      type,
      confidence: 'HIGH',
      filterStrength: 'MEDIUM',
      action: 'BLOCKED',
      detected: true,
    }));
  const profane = found.filter(([, type]) => type === 'PROFANITY');
  const units = (texts as string[]).reduce((sum, t) => sum + Math.ceil(t.length / 1000), 0);
  const usage = {
    topicPolicyUnits: 0,
    contentPolicyUnits: units,
    wordPolicyUnits: units,
    sensitiveInformationPolicyUnits: 0,
    sensitiveInformationPolicyFreeUnits: 0,
    contextualGroundingPolicyUnits: 0,
  };
  const coverage = { textCharacters: { guarded: text.length, total: text.length } };
  const intervened = found.length > 0;
  return [
    200,
    {
      usage,
      action: intervened ? 'GUARDRAIL_INTERVENED' : 'NONE',
      ...(intervened ? { actionReason: 'Guardrail blocked.' } : {}),
      outputs: intervened ? [{ text: 'Blocked by the stand-in guardrail.' }] : [],
      assessments: [
        {
          ...(filters.length > 0 ? { contentPolicy: { filters } } : {}),
          ...(profane.length > 0
            ? {
                wordPolicy: {
                  customWords: [],
                  managedWordLists: profane.map(([word]) => ({
                    match: word,
                    type: 'PROFANITY',
                    action: 'BLOCKED',
                    detected: true,
                  })),
                },
              }
            : {}),
          invocationMetrics: { guardrailProcessingLatency: 1, usage, guardrailCoverage: coverage },
        },
      ],
      guardrailCoverage: coverage,
    },
  ];
}

/** The OpenAI error body. */
function openAIError(status: number, fault: Fault): string {
  const type =
    fault.errorType ??
    (status === 401
      ? 'invalid_request_error'
      : status === 429
        ? 'rate_limit_exceeded'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error');
  return JSON.stringify({
    error: { message: fault.message ?? `Stand-in error ${status}`, type, param: null, code: null },
  });
}

/**
 * Starts an OpenAI API stand-in (HTTP/1.1) at `<url>` = `http://127.0.0.1:<port>/v1`:
 * `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings` (float or base64
 * encoding), `POST /v1/moderations` (flags `flaggedWords`) and `GET /v1/models`. With `apiKey` set, a request without `Authorization: Bearer <apiKey>`
 * gets a 401 like OpenAI's, quoting the key it got.
 */
export async function startOpenAIStandIn(options: OpenAIStandInOptions = {}): Promise<StandIn> {
  const recorder = new Recorder(options);
  const models = options.models ?? ['stand-in-chat', 'stand-in-embed'];
  const batchApi = new OpenAIBatchStandIn(recorder, options.batch ?? {});
  const server = createHttpServer(async (req, res) => {
    const recorded = await recorder.receive(req);
    const reply = (status: number, body: string, headers: Record<string, string> = {}) => {
      recorded.reply = { ...recorded.reply, status };
      recorded.delivered = send(res, status, body, headers);
    };
    const route = `${req.method} ${recorded.path}`;
    if (options.batch && BATCH_ROUTE.test(route)) {
      if (options.apiKey !== undefined && recorded.headers.authorization !== `Bearer ${options.apiKey}`) {
        reply(401, openAIError(401, { message: 'Incorrect API key provided.' }));
        return;
      }
      const answered = await batchApi.handle(route, recorded);
      reply(answered.status, answered.body, answered.headers);
      return;
    }
    const known = [
      'POST /v1/chat/completions',
      'POST /v1/completions',
      'POST /v1/embeddings',
      'POST /v1/moderations',
      'GET /v1/models',
    ];
    if (!known.includes(route)) {
      reply(404, openAIError(404, { message: `Unknown request URL: ${route}` }));
      return;
    }
    if (options.apiKey !== undefined && recorded.headers.authorization !== `Bearer ${options.apiKey}`) {
      // Quotes the key it got, in full (OpenAI masks the middle): tests prove adapters never repeat it.
      const got = recorded.headers.authorization?.replace(/^Bearer /, '') ?? '';
      reply(401, openAIError(401, { message: `Incorrect API key provided: ${got}.` }));
      return;
    }
    const fault = recorder.faultFor(recorded);
    if (fault.latencyMs) await sleep(fault.latencyMs);
    if (fault.status !== undefined && fault.status >= 400) {
      reply(fault.status, openAIError(fault.status, fault));
      return;
    }
    if (fault.badBody) {
      reply(200, '<html><body>Bad gateway</body></html>', { 'content-type': 'text/html' });
      return;
    }
    const created = Math.floor(Date.now() / 1000);
    if (route === 'GET /v1/models') {
      reply(
        200,
        JSON.stringify({
          object: 'list',
          data: models.map((id) => ({ id, object: 'model', created, owned_by: 'stand-in' })),
        }),
      );
      return;
    }
    const body = recorded.body ?? {};
    if (route === 'POST /v1/embeddings') {
      const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? '')];
      const dimensions = Number(body.dimensions ?? options.dimensions ?? 256);
      const base64 = body.encoding_format === 'base64';
      reply(
        200,
        JSON.stringify({
          object: 'list',
          model: body.model,
          data: inputs.map((text, index) => {
            const vector = hashedEmbedding(text, dimensions);
            return {
              object: 'embedding',
              index,
              embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
            };
          }),
          usage: {
            prompt_tokens: inputs.reduce((sum, text) => sum + tokens(text), 0),
            total_tokens: inputs.reduce((sum, text) => sum + tokens(text), 0),
          },
        }),
      );
      return;
    }
    if (route === 'POST /v1/moderations') {
      const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? '')];
      const flaggedWords = Object.entries(options.flaggedWords ?? { kill: 'violence' });
      const categoriesOf = (text: string) =>
        Object.fromEntries(
          flaggedWords.map(([word, category]) => [category, new RegExp(`\\b${word}\\b`, 'i').test(text)]),
        );
      reply(
        200,
        JSON.stringify({
          id: `modr-${created}`,
          model: body.model,
          results: inputs.map((text) => {
            const categories = categoriesOf(text);
            return { flagged: Object.values(categories).some(Boolean), categories };
          }),
        }),
      );
      return;
    }
    const completion = await completionReply(recorder, route === 'POST /v1/chat/completions', body, fault);
    recorded.reply = {
      status: 200,
      text: completion.text,
      ...(completion.usage ? { usage: completion.usage } : {}),
    };
    reply(200, JSON.stringify(completion.json));
  });
  keepIdleConnections(server); // as the local S3 and DynamoDB servers do: see there
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests: recorder.requests,
    batches: batchApi.batches,
    billedCalls: () => recorder.billedCalls(),
    enqueue: (...faults) => recorder.queue.push(...faults),
    reset: () => {
      recorder.reset();
      batchApi.batches.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A chat or text completion's reply body to `body`, as the OpenAI endpoint answers it. */
async function completionReply(
  recorder: Recorder,
  chat: boolean,
  body: Record<string, unknown>,
  fault: Fault,
): Promise<{ json: unknown; text: string; usage?: { inputTokens: number; outputTokens: number } }> {
  const created = Math.floor(Date.now() / 1000);
  const messages = (chat ? (body.messages ?? []) : []) as { role?: string; content?: string }[];
  const system = messages
    .filter((m) => m.role === 'system')
    .map((m) => m.content ?? '')
    .join('\n');
  const prompt = chat
    ? messages
        .filter((m) => m.role !== 'system')
        .map((m) => m.content ?? '')
        .join('\n')
    : String(body.prompt ?? '');
  const json = (body.response_format as { type?: string } | undefined)?.type === 'json_object';
  const stop = typeof body.stop === 'string' ? [body.stop] : (body.stop as string[] | undefined);
  const result = await answer(
    recorder,
    {
      // A prompt sent as a lone user message is a completion-style prompt (the paper's profiles).
      kind: system || json ? 'chat' : 'completion',
      ...(system ? { system } : {}),
      ...(json ? { json } : {}),
      prompt,
      temperature: Number(body.temperature ?? 1),
      topP: Number(body.top_p ?? 1),
      maxTokens: Number(body.max_tokens ?? body.max_completion_tokens ?? 4096),
      ...(stop ? { stop } : {}),
    },
    fault,
  );
  const usage = fault.omitUsage
    ? {}
    : {
        usage: {
          prompt_tokens: result.inputTokens,
          completion_tokens: result.outputTokens,
          total_tokens: result.inputTokens + result.outputTokens,
        },
      };
  const finish_reason = result.finish;
  const id = `cmpl-${createHash('sha256').update(`${recorder.requests.length}`).digest('hex').slice(0, 12)}`;
  const replyBody = chat
    ? {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: result.text },
            finish_reason,
            logprobs: null,
          },
        ],
        ...usage,
      }
    : {
        id,
        object: 'text_completion',
        created,
        model: body.model,
        choices: [{ index: 0, text: result.text, finish_reason, logprobs: null }],
        ...usage,
      };
  return {
    json: replyBody,
    text: result.text,
    ...(fault.omitUsage
      ? {}
      : { usage: { inputTokens: result.inputTokens, outputTokens: result.outputTokens } }),
  };
}

const BATCH_ROUTE =
  /^(POST \/v1\/files|GET \/v1\/files\/[^/]+\/content|(POST|GET) \/v1\/batches|GET \/v1\/batches\/[^/]+)$/;

/** The OpenAI stand-in's Batch API (see `OpenAIStandInOptions.batch`). */
class OpenAIBatchStandIn {
  readonly batches: OpenAIStandInBatch[] = [];
  private readonly files = new Map<string, string>();
  private readonly outputs = new Map<string, { output?: string; errors?: string; status: string }>();

  constructor(
    private readonly recorder: Recorder,
    private readonly options: NonNullable<OpenAIStandInOptions['batch']>,
  ) {}

  async handle(
    route: string,
    recorded: RecordedRequest,
  ): Promise<{ status: number; body: string; headers?: Record<string, string> }> {
    const ok = (body: unknown) => ({ status: 200, body: JSON.stringify(body) });
    const notFound = (what: string) => ({
      status: 404,
      body: openAIError(404, { message: `No such ${what}` }),
    });
    const created_at = Math.floor(Date.now() / 1000);
    if (route === 'POST /v1/files') {
      const form = await new Request('http://stand-in/', {
        method: 'POST',
        headers: { 'content-type': recorded.headers['content-type'] ?? '' },
        body: recorded.raw ?? '',
      }).formData();
      const file = form.get('file');
      if (form.get('purpose') !== 'batch' || !(file instanceof Blob)) {
        return { status: 400, body: openAIError(400, { message: 'purpose must be batch, with a file' }) };
      }
      const id = `file-${this.files.size + 1}`;
      this.files.set(id, await file.text());
      return ok({
        id,
        object: 'file',
        bytes: file.size,
        created_at,
        filename: 'input.jsonl',
        purpose: 'batch',
      });
    }
    const content = /^GET \/v1\/files\/([^/]+)\/content$/.exec(route);
    if (content) {
      const text = this.files.get(content[1] ?? '');
      return text === undefined
        ? notFound('file')
        : { status: 200, body: text, headers: { 'content-type': 'application/octet-stream' } };
    }
    if (route === 'POST /v1/batches') {
      const body = recorded.body ?? {};
      const input = this.files.get(String(body.input_file_id));
      if (input === undefined) return notFound('file');
      const batch: OpenAIStandInBatch = {
        id: `batch_${this.batches.length + 1}`,
        inputFileId: String(body.input_file_id),
        endpoint: String(body.endpoint),
        completionWindow: String(body.completion_window),
        metadata: body.metadata,
        createdAt: created_at,
        lines: fromJsonLines(input),
        polls: 0,
        answered: 0,
        failed: 0,
      };
      this.batches.push(batch);
      this.outputs.set(batch.id, { status: 'validating' });
      return ok(this.view(batch));
    }
    if (route === 'GET /v1/batches') {
      // Newest first, a page of `limit` (default 20, at most 100) after the batch `after`, as OpenAI pages.
      const query = new URLSearchParams(recorded.query ?? '');
      const limit = Math.min(100, Number(query.get('limit') ?? 20));
      const newest = [...this.batches].reverse().sort((a, b) => b.createdAt - a.createdAt);
      const after = query.get('after');
      const from = after === null ? 0 : newest.findIndex((batch) => batch.id === after) + 1;
      const data = newest.slice(from, from + limit).map((batch) => this.view(batch));
      return ok({
        object: 'list',
        data,
        first_id: data[0]?.id ?? null,
        last_id: data.at(-1)?.id ?? null,
        has_more: from + limit < newest.length,
      });
    }
    const id = /^GET \/v1\/batches\/([^/]+)$/.exec(route)?.[1] ?? '';
    const batch = this.batches.find((each) => each.id === id);
    if (!batch) return notFound('batch');
    batch.polls++;
    const state = this.outputs.get(batch.id) ?? { status: 'validating' };
    if (state.status !== 'completed' && batch.polls >= (this.options.pollsToComplete ?? 1)) {
      const final = this.options.finalStatus ?? 'completed';
      if (final === 'completed') {
        const output: string[] = [];
        const errors: string[] = [];
        for (const [index, line] of batch.lines.entries()) {
          if (this.options.failRecord?.(line.custom_id, index)) {
            batch.failed++;
            errors.push(
              JSON.stringify({
                id: `batch_req_${index}`,
                custom_id: line.custom_id,
                response: { status_code: 500, body: { error: { message: 'stand-in failure' } } },
                error: null,
              }),
            );
            continue;
          }
          const completion = await completionReply(
            this.recorder,
            line.url === '/v1/chat/completions',
            line.body,
            {},
          );
          batch.answered++;
          output.push(
            JSON.stringify({
              id: `batch_req_${index}`,
              custom_id: line.custom_id,
              response: { status_code: 200, body: completion.json },
              error: null,
            }),
          );
        }
        const outputId = `file-out-${batch.id}`;
        this.files.set(outputId, `${output.join('\n')}\n`);
        const errorId = errors.length > 0 ? `file-err-${batch.id}` : undefined;
        if (errorId) this.files.set(errorId, `${errors.join('\n')}\n`);
        this.outputs.set(batch.id, {
          status: 'completed',
          output: outputId,
          ...(errorId ? { errors: errorId } : {}),
        });
      } else {
        this.outputs.set(batch.id, { status: final });
      }
    } else if (state.status === 'validating') {
      this.outputs.set(batch.id, { status: 'in_progress' });
    }
    return ok(this.view(batch));
  }

  private view(batch: OpenAIStandInBatch) {
    const state = this.outputs.get(batch.id) ?? { status: 'validating' };
    return {
      id: batch.id,
      object: 'batch',
      endpoint: batch.endpoint,
      input_file_id: batch.inputFileId,
      completion_window: batch.completionWindow,
      status: state.status,
      output_file_id: state.output ?? null,
      error_file_id: state.errors ?? null,
      created_at: batch.createdAt,
      metadata: batch.metadata ?? null,
      errors:
        state.status === 'failed'
          ? { object: 'list', data: [{ code: 'stand_in', message: 'stand-in batch failed' }] }
          : null,
      request_counts: { total: batch.lines.length, completed: batch.answered, failed: batch.failed },
    };
  }
}
