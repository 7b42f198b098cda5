/**
 * What the operator allows a run, fixed at deploy time (CDK context, see README "Permissions") and
 * handed to the functions as environment variables, so that anyone who may start an execution can't
 * go beyond it:
 *
 * - `selfinstruct:allowedModelEndpoints`: the base URLs the model API key may be sent to. `https` only,
 *   except plain `http` to a loopback host (a local server such as Ollama), never with credentials in
 *   the URL. "Prepare run" refuses a run whose model names another one, before any model call, and the
 *   OpenAI adapter refuses to send a request there (defence in depth).
 * - `selfinstruct:maxModelCallsInFlight`: an upper bound on `mapConcurrency × callConcurrency`, the
 *   model calls one run makes at once.
 * - `selfinstruct:modelFunctionConcurrency`: the reserved concurrency of each model-calling function;
 *   a run's `mapConcurrency` can't exceed it (its Map items would be throttled).
 *
 * Each can also come from the environment variable of the same meaning (`SELFINSTRUCT_…`, below) when
 * the context key is not given: locally, where `npm start` synthesizes the stack in-process, the user is
 * the operator and sets them in the shell.
 */
import { z } from 'zod';
import { ConfigurationError, RunInputInvalid, SelfInstructError } from './errors.ts';
import { NO_EMBEDDINGS } from './models/embedding-ids.ts';
import { judgeModelOf, teacherModelOf } from './models/judge-ids.ts';
import { OLLAMA_BASE_URL, OPENAI_BASE_URL, parseModelId } from './models/model-ids.ts';
import type { RunConfig } from './schemas.ts';
import { hasUrlCredentials, isLoopbackHost, redactUrlCredentials } from './urls.ts';

/** A model endpoint outside the operator's allow-list: the API key is not sent there. */
export class ModelEndpointNotAllowed extends SelfInstructError {}

/** The operator's limits (see the module comment). */
export interface OperatorLimits {
  /** Base URLs (or origins) the model API key may be sent to. */
  readonly allowedModelEndpoints: readonly string[];
  /** Upper bound on `mapConcurrency × callConcurrency`. */
  readonly maxModelCallsInFlight: number;
  /** Reserved concurrency of each model-calling function; `undefined`: none reserved. */
  readonly modelFunctionConcurrency?: number | undefined;
}

/**
 * Each limit's CDK context key and the environment variable that carries it to the functions (and,
 * locally, stands in for the context key).
 */
export const LIMIT_SETTINGS = {
  allowedModelEndpoints: {
    context: 'selfinstruct:allowedModelEndpoints',
    env: 'SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS',
  },
  maxModelCallsInFlight: {
    context: 'selfinstruct:maxModelCallsInFlight',
    env: 'SELFINSTRUCT_MAX_MODEL_CALLS_IN_FLIGHT',
  },
  modelFunctionConcurrency: {
    context: 'selfinstruct:modelFunctionConcurrency',
    env: 'SELFINSTRUCT_MODEL_FUNCTION_CONCURRENCY',
  },
} as const satisfies Record<keyof OperatorLimits, { context: string; env: string }>;

/**
 * The defaults: OpenAI's API and Ollama's default local address; 320 model calls at once per run
 * (e.g. 40 Map items × 8 calls, or 10 × 32); no reserved concurrency (reserving needs an account
 * quota above Lambda's 100 unreserved minimum, which new accounts do not have).
 */
export const DEFAULT_OPERATOR_LIMITS: OperatorLimits = {
  allowedModelEndpoints: [OPENAI_BASE_URL, OLLAMA_BASE_URL],
  maxModelCallsInFlight: 320,
  modelFunctionConcurrency: undefined,
};

/**
 * Why `url` can't be a model endpoint (not a URL, credentials in it, plain `http` to a host that is not
 * loopback, another scheme), or `undefined` when it can. Never echoes credentials.
 */
export function endpointProblem(url: string): string | undefined {
  if (hasUrlCredentials(url)) {
    return `${redactUrlCredentials(url)} carries credentials (user:password@): put the API key in the secret (AWS) or SELFINSTRUCT_API_KEY (locally) instead`;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (parsed.protocol === 'https:') return undefined;
  if (parsed.protocol === 'http:') {
    return isLoopbackHost(parsed.hostname)
      ? undefined
      : `${url} is plain http: the API key would cross the network unencrypted; use https (plain http is allowed only to a loopback host: localhost, 127.0.0.1, [::1])`;
  }
  return `${url} is not an http(s) URL`;
}

/** True when `url` is `entry`, or below it: same origin, and a path equal to or under the entry's. */
function isUnder(url: URL, entry: URL): boolean {
  if (url.origin !== entry.origin) return false;
  const base = entry.pathname.replace(/\/+$/, '');
  const path = url.pathname.replace(/\/+$/, '');
  return base === '' || path === base || path.startsWith(`${base}/`);
}

/**
 * Throws `ModelEndpointNotAllowed` unless the API key may be sent to `baseURL`: a valid endpoint (see
 * `endpointProblem`) that is in `allowed` (an entry equal to it, or an origin or base URL above it). The
 * message names the URL and how to allow it.
 */
export function assertModelEndpointAllowed(baseURL: string, allowed: readonly string[]): void {
  const problem = endpointProblem(baseURL);
  if (problem) throw new ModelEndpointNotAllowed(`Model endpoint not allowed: ${problem}`);
  const url = new URL(baseURL);
  const listed = allowed.some((entry) => URL.canParse(entry) && isUnder(url, new URL(entry)));
  if (listed) return;
  const { context, env } = LIMIT_SETTINGS.allowedModelEndpoints;
  throw new ModelEndpointNotAllowed(
    `Model endpoint ${baseURL} is not allowed: the model API key is sent only to the endpoints the operator allows (${allowed.join(', ') || 'none'}). To allow it, deploy with -c ${context}=${[...allowed, baseURL].join(',')}; locally, set ${env}=${baseURL} (comma-separated, for several)`,
  );
}

/**
 * Throws `ModelEndpointNotAllowed` when the model id (`openai:`, `openai-compatible:`,
 * `openai-completions:`, or a `replay:` fallback) would send requests to an endpoint outside `allowed`.
 * Bedrock and the offline model have no such endpoint.
 */
export function assertModelAllowed(modelId: string, allowed: readonly string[]): void {
  const spec = parseModelId(modelId);
  if (spec.provider === 'replay' && spec.fallback) assertModelAllowed(spec.fallback, allowed);
  if (spec.provider === 'openai' || spec.provider === 'openai-compatible') {
    assertModelEndpointAllowed(spec.baseURL, allowed);
  }
}

/**
 * Checks a run's configuration against the operator's limits, before any model call: its model's
 * endpoint (`ModelEndpointNotAllowed`), and its concurrency (`RunInputInvalid` naming the cap and its
 * context key).
 */
export function checkOperatorLimits(
  config: RunConfig,
  limits: OperatorLimits = DEFAULT_OPERATOR_LIMITS,
): void {
  assertModelAllowed(config.model, limits.allowedModelEndpoints);
  if (config.embeddingModel !== undefined && config.embeddingModel !== NO_EMBEDDINGS) {
    assertModelAllowed(config.embeddingModel, limits.allowedModelEndpoints);
  }
  // A moderation endpoint gets the API key too (a Bedrock guardrail does not: IAM confines it).
  if (config.safetyScreen.startsWith('openai'))
    assertModelAllowed(config.safetyScreen, limits.allowedModelEndpoints);
  const judge = judgeModelOf(config);
  if (judge !== undefined) assertModelAllowed(judge, limits.allowedModelEndpoints);
  const teacher = teacherModelOf(config);
  if (teacher !== undefined) assertModelAllowed(teacher, limits.allowedModelEndpoints);
  const { mapConcurrency, callConcurrency } = config;
  const reserved = limits.modelFunctionConcurrency;
  if (reserved !== undefined && mapConcurrency > reserved) {
    throw new RunInputInvalid(
      `mapConcurrency ${mapConcurrency} is above the ${reserved} concurrent executions this deployment reserves for the model-calling functions (CDK context ${LIMIT_SETTINGS.modelFunctionConcurrency.context}): use at most ${reserved}`,
    );
  }
  const inFlight = mapConcurrency * callConcurrency;
  if (inFlight > limits.maxModelCallsInFlight) {
    throw new RunInputInvalid(
      `mapConcurrency × callConcurrency = ${mapConcurrency} × ${callConcurrency} = ${inFlight} model calls at once is above this deployment's cap of ${limits.maxModelCallsInFlight} (CDK context ${LIMIT_SETTINGS.maxModelCallsInFlight.context}): lower one of them`,
    );
  }
}

/** A list of URLs from context or the environment: a JSON array, or text separated by commas or spaces. */
export function parseEndpointList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  const text = String(value).trim();
  if (text.startsWith('[')) return z.array(z.string()).parse(JSON.parse(text));
  return text.split(/[\s,]+/).filter((url) => url !== '');
}

const positiveInt = (name: string, value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigurationError(`${name} must be a positive integer`);
  return n;
};

/**
 * The limits the deployment gave this function through its environment; a variable that is not set
 * takes its default (`DEFAULT_OPERATOR_LIMITS`), so an unconfigured process is as strict as a default
 * deployment.
 */
export function operatorLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): OperatorLimits {
  const { allowedModelEndpoints, maxModelCallsInFlight, modelFunctionConcurrency } = LIMIT_SETTINGS;
  const endpoints = env[allowedModelEndpoints.env];
  const maxCalls = env[maxModelCallsInFlight.env];
  const reserved = env[modelFunctionConcurrency.env];
  return {
    allowedModelEndpoints:
      endpoints === undefined ? DEFAULT_OPERATOR_LIMITS.allowedModelEndpoints : parseEndpointList(endpoints),
    maxModelCallsInFlight:
      maxCalls === undefined
        ? DEFAULT_OPERATOR_LIMITS.maxModelCallsInFlight
        : positiveInt(maxModelCallsInFlight.env, maxCalls),
    modelFunctionConcurrency:
      reserved === undefined || reserved === ''
        ? undefined
        : positiveInt(modelFunctionConcurrency.env, reserved),
  };
}
