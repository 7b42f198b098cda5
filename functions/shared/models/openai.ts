/**
 * `TextModel` on the OpenAI API (the `openai` package): OpenAI itself and any server speaking the same
 * API, such as Ollama, vLLM, llama.cpp server, LM Studio, Together, Groq or Gemini's OpenAI-compatible
 * endpoint.
 *
 * Requests:
 * - `chat` requests go to `/chat/completions` as a system and a user message. `json: true` adds
 *   `response_format: {type: 'json_object'}` unless the id ends with `#no-json`. The token limit is sent
 *   as `max_completion_tokens` to OpenAI (its current name; reasoning models reject `max_tokens`) and as
 *   `max_tokens` to other servers (the name they all accept).
 * - `completion` requests (the raw prompts of the `self-instruct` and `alpaca` profiles) go to the legacy
 *   `/completions` endpoint with an `openai-completions:` id, else to chat completions as a lone user
 *   message. Raw completion is offered by OpenAI only for `gpt-3.5-turbo-instruct`, `davinci-002` and
 *   `babbage-002`, and by vLLM, llama.cpp server, Ollama, LM Studio and Together; Groq and Gemini's
 *   compatible endpoint offer chat only.
 * - At most 4 stop sequences are sent (OpenAI's limit).
 *
 * Replies: the text, `finish: 'length'` when `finish_reason` is `length`, and the server's token usage
 * (`estimated: false`), or ceil(characters / 4) with `estimated: true` when it reports none.
 *
 * The client makes one attempt (`maxRetries: 0`) with a timeout: the state machine owns retries. Errors
 * become named errors: 429 → `ModelThrottled`; 408, 409, 5xx, timeouts, connection failures and
 * unreadable replies → `ModelUnavailable`; other 4xx → `ModelRequestFailed`. Messages name the
 * provider, base URL, model and HTTP status, and never the API key.
 *
 * API key: when `MODEL_API_KEY_SECRET_ARN` is set (in AWS), from that Secrets Manager secret (see
 * `apiKeyFromSecret`), cached for 5 minutes; otherwise from `OPENAI_API_KEY` for OpenAI, and from
 * `SELFINSTRUCT_API_KEY`, else `OPENAI_API_KEY`, else none (local servers such as Ollama) for other
 * servers. It is never logged, and it goes only to an endpoint the operator allows: no request at all is
 * made to a base URL outside `SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS` (`limits.ts`).
 */
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { awsClientConfig, modelFetch } from '../config.ts';
import {
  ConfigurationError,
  ModelRequestFailed,
  ModelThrottled,
  ModelUnavailable,
  type SelfInstructError,
} from '../errors.ts';
import { assertModelEndpointAllowed, operatorLimitsFromEnv } from '../limits.ts';
import type { ModelReply, ModelRequest, TextModel } from '../ports.ts';
import { redactUrlCredentials } from '../urls.ts';
import { DEFAULT_TIMEOUT_MS, type OpenAIEndpoint } from './model-ids.ts';
import { estimatedUsage } from './usage.ts';

/** The environment variable naming the Secrets Manager secret that holds the API key (set in AWS). */
export const API_KEY_SECRET_ENV = 'MODEL_API_KEY_SECRET_ARN';

/** How long a key read from Secrets Manager is reused, in seconds. */
const SECRET_MAX_AGE_SECONDS = 300;

/** OpenAI accepts at most this many stop sequences. */
const MAX_STOP_SEQUENCES = 4;

/** The environment variables (and secret JSON fields) holding a provider's key, in order of preference. */
export function apiKeyNames(provider: OpenAIEndpoint['provider']): string[] {
  return provider === 'openai' ? ['OPENAI_API_KEY'] : ['SELFINSTRUCT_API_KEY', 'OPENAI_API_KEY'];
}

/**
 * The API key in a Secrets Manager secret string: either the key itself, or a JSON object with an
 * `OPENAI_API_KEY` field (OpenAI) or a `SELFINSTRUCT_API_KEY` or `OPENAI_API_KEY` field (other servers,
 * in that order). Throws `ConfigurationError` (naming the fields, never the values) when there is none.
 */
export function apiKeyFromSecret(secret: string, provider: OpenAIEndpoint['provider']): string {
  const text = secret.trim();
  const names = apiKeyNames(provider);
  if (!text.startsWith('{')) {
    if (text === '') throw new ConfigurationError('the API key secret is empty');
    return text;
  }
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new ConfigurationError('the API key secret starts with "{" but is not valid JSON');
  }
  for (const name of names) {
    const value = fields[name];
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
  }
  throw new ConfigurationError(`the API key secret is JSON without a non-empty ${names.join(' or ')} field`);
}

/**
 * The API key for a provider: from the secret named by `MODEL_API_KEY_SECRET_ARN` when it is set, else
 * from the environment (see `apiKeyNames`). `undefined` for a server other than OpenAI without a key;
 * OpenAI without a key is a `ConfigurationError`.
 */
export async function resolveApiKey(
  provider: OpenAIEndpoint['provider'],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const secretId = env[API_KEY_SECRET_ENV];
  if (secretId) {
    let secret: unknown;
    try {
      secret = await (await secretsProvider()).get(secretId, { maxAge: SECRET_MAX_AGE_SECONDS });
    } catch (error) {
      throw new ConfigurationError(
        `could not read the API key secret ${secretId} (${API_KEY_SECRET_ENV}): ${(error as Error).name}`,
        { cause: error },
      );
    }
    if (typeof secret !== 'string') {
      throw new ConfigurationError(`the API key secret ${secretId} has no secret string`);
    }
    return apiKeyFromSecret(secret, provider);
  }
  for (const name of apiKeyNames(provider)) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  if (provider === 'openai') {
    throw new ConfigurationError(
      `OPENAI_API_KEY is not set: OpenAI needs an API key (in AWS, put it in the secret named by ${API_KEY_SECRET_ENV})`,
    );
  }
  return undefined;
}

let secrets: Promise<{ get(name: string, options: { maxAge: number }): Promise<unknown> }> | undefined;

/** Powertools' cached secrets reader, on a Secrets Manager client configured like every other. */
function secretsProvider() {
  secrets ??= (async () => {
    const [{ SecretsProvider }, { SecretsManagerClient }] = await Promise.all([
      import('@aws-lambda-powertools/parameters/secrets'),
      import('@aws-sdk/client-secrets-manager'),
    ]);
    return new SecretsProvider({
      awsSdkV3Client: new SecretsManagerClient(awsClientConfig('secretsmanager')),
    });
  })();
  return secrets;
}

const clients = new Map<string, OpenAI>();

/**
 * The `openai` client for an endpoint: one attempt per call, the given timeout, the key resolved as
 * `resolveApiKey` does. Built once per base URL, key and timeout. Without a key no `Authorization`
 * header is sent. Throws `ModelEndpointNotAllowed`, before reading the key, for an endpoint outside the
 * operator's allow-list (`SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS`, see `limits.ts`): "Prepare run" has
 * refused such a run already; this keeps the key from going there whatever the caller.
 */
export async function openAIClient(
  endpoint: Pick<OpenAIEndpoint, 'provider' | 'baseURL'>,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<{ client: OpenAI; apiKey: string | undefined }> {
  assertModelEndpointAllowed(endpoint.baseURL, operatorLimitsFromEnv().allowedModelEndpoints);
  const apiKey = await resolveApiKey(endpoint.provider);
  const cacheKey = createHash('sha256')
    .update(`${endpoint.baseURL}\n${timeoutMs}\n${apiKey ?? ''}`)
    .digest('hex');
  let client = clients.get(cacheKey);
  if (!client) {
    client = new OpenAI({
      baseURL: endpoint.baseURL,
      // The client insists on a key; without one the Authorization header is removed below.
      apiKey: apiKey ?? 'none',
      ...(apiKey === undefined ? { defaultHeaders: { Authorization: null } } : {}),
      // Organization and project ids from the environment are OpenAI's: don't send them elsewhere.
      ...(endpoint.provider === 'openai' ? {} : { organization: null, project: null }),
      maxRetries: 0,
      timeout: timeoutMs,
      // The local runtime's fetch where one is registered (injected faults, dead invocations).
      ...(modelFetch() ? { fetch: modelFetch() } : {}),
    });
    clients.set(cacheKey, client);
  }
  return { client, apiKey };
}

/** The label of an endpoint in messages: provider, base URL (credentials masked) and model. */
export function describeEndpoint(endpoint: Pick<OpenAIEndpoint, 'provider' | 'baseURL' | 'model'>): string {
  const name = endpoint.provider === 'openai' ? 'OpenAI' : 'OpenAI-compatible server';
  return `${name} ${redactUrlCredentials(endpoint.baseURL)}, model ${endpoint.model}`;
}

/** `text` with every occurrence of `secret` masked. */
function redact(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('***') : text;
}

/**
 * An `openai` client error as a named error (see the module comment), with a message naming the
 * endpoint, model and HTTP status, the server's own message shortened, and the API key masked wherever
 * a server echoed it.
 */
export function openAIError(
  error: unknown,
  endpoint: Pick<OpenAIEndpoint, 'provider' | 'baseURL' | 'model'>,
  apiKey: string | undefined,
): SelfInstructError {
  const where = describeEndpoint(endpoint);
  const safe = (text: string) => redact(text, apiKey).slice(0, 500);
  // The cause is kept unless the server echoed the key into it.
  const echoed =
    apiKey !== undefined &&
    JSON.stringify([String(error), (error as { error?: unknown }).error]).includes(apiKey);
  const cause = echoed ? new Error(safe(String((error as Error).message ?? error))) : error;
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new ModelUnavailable(`${where}: no reply within the timeout`, { cause });
  }
  if (error instanceof OpenAI.APIUserAbortError) {
    return new ModelUnavailable(`${where}: request aborted`, { cause });
  }
  if (error instanceof OpenAI.APIConnectionError) {
    // fetch wraps the socket error: `TypeError: fetch failed` whose cause has the code (ECONNREFUSED…).
    let reason: unknown = error.message;
    for (let c: unknown = error.cause; c instanceof Error; c = c.cause) {
      reason = (c as { code?: string }).code ?? reason;
    }
    return new ModelUnavailable(`${where}: connection failed (${safe(String(reason))})`, { cause });
  }
  if (error instanceof OpenAI.APIError && typeof error.status === 'number') {
    const status = error.status;
    const body = error.error as { message?: unknown } | undefined;
    const detail = typeof body?.message === 'string' ? body.message : error.message;
    const message = `${where}: HTTP ${status}: ${safe(detail)}`;
    if (status === 429) return new ModelThrottled(message, { cause });
    if (status === 408 || status === 409 || status >= 500) return new ModelUnavailable(message, { cause });
    return new ModelRequestFailed(message, { cause });
  }
  // A 2xx reply that is not the API's JSON (a proxy's HTML page, a cut body): transient.
  const reason = safe((error as Error).message ?? String(error));
  return new ModelUnavailable(`${where}: unreadable reply (${reason})`, { cause });
}

/** Options of the OpenAI adapter. */
export interface OpenAIModelOptions {
  /** Time allowed for one call. @default 120000 */
  timeoutMs?: number | undefined;
}

interface Choice {
  text: string | null | undefined;
  finishReason: string | null | undefined;
}

/**
 * The body of a chat completions request (see the module comment): what the adapter sends, and what a
 * record of an OpenAI batch job holds (`batch/openai.ts`).
 */
export function chatBody(
  endpoint: Pick<OpenAIEndpoint, 'provider' | 'model' | 'jsonMode'>,
  request: ModelRequest,
) {
  const stop = request.stop?.filter((s) => s !== '').slice(0, MAX_STOP_SEQUENCES) ?? [];
  return {
    model: endpoint.model,
    messages: [
      ...(request.system ? [{ role: 'system' as const, content: request.system }] : []),
      { role: 'user' as const, content: request.prompt },
    ],
    temperature: request.temperature,
    top_p: request.topP,
    ...(endpoint.provider === 'openai'
      ? { max_completion_tokens: request.maxTokens }
      : { max_tokens: request.maxTokens }),
    ...(stop.length > 0 ? { stop } : {}),
    ...(request.json && endpoint.jsonMode ? { response_format: { type: 'json_object' as const } } : {}),
  };
}

/** A text model behind the OpenAI API (see the module comment). */
export class OpenAIModel implements TextModel {
  private readonly timeoutMs: number;

  /** `id` is the model id as the user gave it; `endpoint` its parsed form (`parseModelId`). */
  constructor(
    readonly id: string,
    private readonly endpoint: OpenAIEndpoint,
    { timeoutMs = DEFAULT_TIMEOUT_MS }: OpenAIModelOptions = {},
  ) {
    this.timeoutMs = timeoutMs;
  }

  async generate(request: ModelRequest): Promise<ModelReply> {
    const started = performance.now();
    const { client, apiKey } = await openAIClient(this.endpoint, this.timeoutMs);
    const stop = request.stop?.filter((s) => s !== '').slice(0, MAX_STOP_SEQUENCES) ?? [];
    let choice: Choice | undefined;
    let usage: { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined;
    try {
      if (request.kind === 'completion' && this.endpoint.completions) {
        const reply = await client.completions.create({
          model: this.endpoint.model,
          prompt: request.prompt,
          temperature: request.temperature,
          top_p: request.topP,
          max_tokens: request.maxTokens,
          ...(stop.length > 0 ? { stop } : {}),
        });
        const first = reply.choices?.[0];
        choice = first && { text: first.text, finishReason: first.finish_reason };
        usage = reply.usage;
      } else {
        const reply = await client.chat.completions.create(chatBody(this.endpoint, request));
        const first = reply.choices?.[0];
        choice = first && { text: first.message?.content, finishReason: first.finish_reason };
        usage = reply.usage;
      }
    } catch (error) {
      throw openAIError(error, this.endpoint, apiKey);
    }
    if (choice === undefined) {
      throw new ModelUnavailable(`${describeEndpoint(this.endpoint)}: unreadable reply (no choices)`);
    }
    const text = choice.text ?? '';
    const reported = typeof usage?.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number';
    return {
      text,
      finish: choice.finishReason === 'length' ? 'length' : 'stop',
      usage: reported
        ? {
            inputTokens: usage?.prompt_tokens as number,
            outputTokens: usage?.completion_tokens as number,
            estimated: false,
          }
        : estimatedUsage(request, text),
      latencyMs: Math.round(performance.now() - started),
      model: this.id,
    };
  }
}
