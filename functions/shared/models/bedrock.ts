/**
 * `TextModel` on Amazon Bedrock's Converse API: any text model id or inference profile.
 * The SDK makes one attempt only (`maxAttempts: 1`): throttling and service errors become named errors
 * that the state machine retries with backoff, so one component owns the retry policy.
 *
 * The client is built on first use, once per endpoint and timeout, so that the standard
 * `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` variable can point it at a local stand-in (tests) without code
 * branches.
 */
import {
  BedrockRuntimeClient,
  ConverseCommand,
  type ConverseCommandInput,
  type ConverseCommandOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { awsClientConfig } from '../config.ts';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable, type SelfInstructError } from '../errors.ts';
import type { ModelReply, ModelRequest, TextModel } from '../ports.ts';
import { DEFAULT_TIMEOUT_MS } from './model-ids.ts';
import { estimatedUsage } from './usage.ts';

/** Bedrock rejects more stop sequences than this. */
const MAX_STOP_SEQUENCES = 4;

const THROTTLED = new Set(['ThrottlingException', 'ServiceQuotaExceededException']);

/** Transient: the service or the model is busy, starting or slow. */
const UNAVAILABLE = new Set([
  'ModelNotReadyException',
  'ServiceUnavailableException',
  'InternalServerException',
  'ModelTimeoutException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'AbortError',
]);

/** Network failures below HTTP (connection refused or reset, DNS, HTTP/2 stream errors). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_HTTP2_STREAM_ERROR',
  'ERR_HTTP2_SESSION_ERROR',
  'ERR_HTTP2_GOAWAY_SESSION',
  'ERR_HTTP2_STREAM_CANCEL',
]);

const clients = new Map<string, BedrockRuntimeClient>();

/**
 * The Bedrock runtime client for a per-call timeout: one attempt per call, the default credential chain
 * (environment, profile, SSO, the function's role) and the user's region. Built once per endpoint,
 * identity settings and timeout, so a process whose environment names another identity gets a client
 * for it.
 */
export function bedrockClient(timeoutMs = DEFAULT_TIMEOUT_MS): BedrockRuntimeClient {
  const env = process.env;
  const key = [
    env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
    env.AWS_REGION,
    env.AWS_PROFILE,
    env.AWS_ACCESS_KEY_ID,
    env.AWS_SHARED_CREDENTIALS_FILE,
    env.AWS_CONFIG_FILE,
    timeoutMs,
  ].join('|');
  let client = clients.get(key);
  if (!client) {
    client = new BedrockRuntimeClient(
      awsClientConfig('bedrock-runtime', {
        maxAttempts: 1,
        // The runtime client speaks HTTP/2; one stream per session is the SDK's own default for Bedrock.
        requestHandler: { requestTimeout: timeoutMs, disableConcurrentStreams: true },
      }),
    );
    clients.set(key, client);
  }
  return client;
}

/** Where a Bedrock call went, for error messages. */
function endpoint(): string {
  return process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME ?? `region ${process.env.AWS_REGION ?? '(default)'}`;
}

/**
 * A Bedrock SDK error as a named error: `ThrottlingException`/`ServiceQuotaExceededException` →
 * `ModelThrottled`; `ModelNotReadyException`, `ServiceUnavailableException`, `InternalServerException`,
 * `ModelTimeoutException`, timeouts, other 5xx, network failures and unreadable replies →
 * `ModelUnavailable`; anything else (`ValidationException`, `AccessDeniedException`,
 * `ResourceNotFoundException`, missing credentials…) → `ModelRequestFailed`. The message names the
 * endpoint, what was called (`model <id>` by default, e.g. `guardrail <id>:<version>`), the HTTP status
 * and Bedrock's error.
 */
export function bedrockError(
  error: unknown,
  modelId: string,
  subject = `model ${modelId}`,
): SelfInstructError {
  const e = error as {
    name?: string;
    code?: string;
    message?: string;
    $fault?: string;
    $metadata?: { httpStatusCode?: number };
    $response?: unknown;
  };
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where = `Bedrock (${endpoint()}), ${subject}`;
  const message = `${where}: ${status ? `HTTP ${status} ` : ''}${name}: ${e.message ?? String(error)}`;
  if (THROTTLED.has(name)) return new ModelThrottled(message, { cause: error });
  if (UNAVAILABLE.has(name) || NETWORK_CODES.has(e.code ?? '')) {
    return new ModelUnavailable(message, { cause: error });
  }
  // The SDK could not read a 2xx reply (a proxy's HTML page, a cut connection): transient.
  if (e.$response !== undefined && (status === undefined || status < 300)) {
    return new ModelUnavailable(`${where}: unreadable reply: ${e.message ?? name}`, { cause: error });
  }
  if (status === 429) return new ModelThrottled(message, { cause: error });
  if (e.$fault === 'server' || (status !== undefined && status >= 500)) {
    return new ModelUnavailable(message, { cause: error });
  }
  return new ModelRequestFailed(message, { cause: error });
}

/**
 * The body of a Converse request for `request` (everything but the model id): the same body goes to
 * `ConverseCommand` and, as a record's `modelInput`, into a batch inference job of the `Converse` type
 * (`functions/shared/batch/bedrock.ts`), so an on-demand and a batched call of one prompt are one request.
 */
export function converseBody(request: ModelRequest): Omit<ConverseCommandInput, 'modelId'> {
  const stop = request.stop?.filter((s) => s !== '').slice(0, MAX_STOP_SEQUENCES) ?? [];
  return {
    ...(request.system ? { system: [{ text: request.system }] } : {}),
    messages: [{ role: 'user', content: [{ text: request.prompt }] }],
    inferenceConfig: {
      temperature: request.temperature,
      topP: request.topP,
      maxTokens: request.maxTokens,
      ...(stop.length > 0 ? { stopSequences: stop } : {}),
    },
  };
}

/** The reply a Converse response body holds (from `ConverseCommand`, or a batch record's `modelOutput`). */
export function converseReply(
  reply: Pick<ConverseCommandOutput, 'output' | 'stopReason' | 'usage'>,
  request: Pick<ModelRequest, 'system' | 'prompt'>,
): Pick<ModelReply, 'text' | 'finish' | 'usage'> {
  const text = (reply.output?.message?.content ?? []).map((block) => block.text ?? '').join('');
  const reported =
    typeof reply.usage?.inputTokens === 'number' && typeof reply.usage.outputTokens === 'number';
  return {
    text,
    finish:
      reply.stopReason === 'max_tokens' || reply.stopReason === 'model_context_window_exceeded'
        ? 'length'
        : 'stop',
    usage: reported
      ? {
          inputTokens: reply.usage?.inputTokens ?? 0,
          outputTokens: reply.usage?.outputTokens ?? 0,
          estimated: false,
        }
      : estimatedUsage(request, text),
  };
}

/** Options of the Bedrock adapter. */
export interface BedrockModelOptions {
  /** Time allowed for one call. @default 120000 */
  timeoutMs?: number | undefined;
}

/** A text model on Amazon Bedrock (Converse API). */
export class BedrockModel implements TextModel {
  private readonly modelId: string;
  private readonly timeoutMs: number;

  /** `id` is `bedrock:<model id or inference profile>`. */
  constructor(
    readonly id: string,
    { timeoutMs = DEFAULT_TIMEOUT_MS }: BedrockModelOptions = {},
  ) {
    this.modelId = id.slice('bedrock:'.length);
    this.timeoutMs = timeoutMs;
  }

  async generate(request: ModelRequest): Promise<ModelReply> {
    const started = performance.now();
    let reply: ConverseCommandOutput;
    try {
      reply = await bedrockClient(this.timeoutMs).send(
        new ConverseCommand({ modelId: this.modelId, ...converseBody(request) }),
      );
    } catch (error) {
      throw bedrockError(error, this.modelId);
    }
    return {
      ...converseReply(reply, request),
      latencyMs: Math.round(performance.now() - started),
      model: this.id,
    };
  }
}
