/**
 * The model ids (run input `model`, CLI `--model`) that `createTextModel` (`index.ts`) accepts, parsed into a
 * `ModelSpec`, with the endpoints and the call timeout they default to. The accepted forms:
 *
 * - `offline`: the deterministic stand-in (no network; for trying the pipeline, not for training data);
 * - `bedrock:<model id or inference profile>`: Amazon Bedrock through the Converse API, e.g.
 *   `bedrock:amazon.nova-micro-v1:0`;
 * - `openai:<model>`: OpenAI's chat completions at https://api.openai.com/v1, e.g. `openai:gpt-4o-mini`;
 * - `openai-compatible:<model>@<base URL>`: any server speaking the OpenAI API (Ollama, vLLM, llama.cpp
 *   server, LM Studio, Together, Groq, Gemini's OpenAI-compatible endpoint…), e.g.
 *   `openai-compatible:llama3.1@http://127.0.0.1:11434/v1`;
 * - `openai-completions:<model>[@<base URL>]`: the same, but the raw prompts of the `self-instruct` and
 *   `alpaca` profiles go to the legacy `/v1/completions` endpoint, which continues the text as the
 *   paper's GPT-3 did (chat requests still go to chat completions). Without a base URL it is OpenAI, e.g.
 *   `openai-completions:gpt-3.5-turbo-instruct`; with one, e.g.
 *   `openai-completions:Qwen/Qwen2.5-7B@http://127.0.0.1:8000/v1` (vLLM).
 *
 * - `replay:<run id>[+<fallback model id>]`: the recorded replies of an earlier run of this stack, matched by
 *   prompt, so later stages can be re-run with other settings at no model cost.
 *
 * Any `openai*` id may end with `#no-json` for servers that reject `response_format: {type: 'json_object'}`:
 * the `default` profile's prompts ask for JSON in words anyway, and its parsers read JSON out of free text.
 */
import { ModelRequestFailed } from '../errors.ts';
import { hasUrlCredentials, redactUrlCredentials } from '../urls.ts';
import { parseReplayId } from './replay.ts';

/** OpenAI's API. */
export const OPENAI_BASE_URL = 'https://api.openai.com/v1';

/** The default time allowed for one model call. */
export const DEFAULT_TIMEOUT_MS = 120_000;

/** Where Ollama serves its OpenAI-compatible API by default. */
export const OLLAMA_BASE_URL = 'http://127.0.0.1:11434/v1';

/** Where an OpenAI-API model lives and how to talk to it. */
export interface OpenAIEndpoint {
  /** `openai` is OpenAI itself (key from `OPENAI_API_KEY`); `openai-compatible` any other server. */
  provider: 'openai' | 'openai-compatible';
  model: string;
  /** Base URL, ending before `/chat/completions`, e.g. `http://127.0.0.1:11434/v1`. */
  baseURL: string;
  /** Send completion-style requests to the legacy `/completions` endpoint. */
  completions: boolean;
  /** Send `response_format: {type: 'json_object'}` with requests that ask for JSON. */
  jsonMode: boolean;
}

/** A parsed model id. */
export type ModelSpec =
  | { provider: 'offline'; id: string }
  | { provider: 'replay'; id: string; runId: string; fallback?: string }
  | { provider: 'bedrock'; id: string; modelId: string }
  | ({ id: string } & OpenAIEndpoint);

const ACCEPTED = [
  'offline',
  'bedrock:<model id or inference profile> (e.g. bedrock:amazon.nova-micro-v1:0)',
  'openai:<model> (e.g. openai:gpt-4o-mini)',
  'openai-compatible:<model>@<base URL> (e.g. openai-compatible:llama3.1@http://127.0.0.1:11434/v1)',
  'openai-completions:<model>[@<base URL>] (e.g. openai-completions:gpt-3.5-turbo-instruct)',
  'replay:<run id>[+<fallback model id>] (serve a recorded run again)',
];

/** The id is of no accepted form; the message masks credentials in it. */
function invalid(id: string, why: string): ModelRequestFailed {
  return new ModelRequestFailed(
    `Unknown model "${redactUrlCredentials(id)}": ${why}. Use one of:\n  ${ACCEPTED.join('\n  ')}`,
  );
}

/** `<model>@<base URL>`: the model is everything before the `@` that starts the URL. */
function splitAtUrl(id: string, rest: string): { model: string; baseURL: string | undefined } {
  const match = /^(.*?)@(https?:\/\/.+)$/.exec(rest);
  if (!match) return { model: rest, baseURL: undefined };
  const [, model = '', baseURL = ''] = match;
  if (hasUrlCredentials(baseURL)) {
    throw invalid(
      id,
      'the base URL carries credentials (user:password@), which would be printed and stored with the run; remove them and put the API key in SELFINSTRUCT_API_KEY (locally) or the secret (AWS)',
    );
  }
  if (!URL.canParse(baseURL)) throw invalid(id, `"${baseURL}" is not a URL`);
  return { model, baseURL: baseURL.replace(/\/+$/, '') };
}

/**
 * Parses a model id into its provider and settings; throws `ModelRequestFailed` listing the accepted
 * forms when the id is none of them, or when its URL carries credentials (never echoed).
 */
export function parseModelId(id: string): ModelSpec {
  if (id === 'offline' || id.startsWith('offline:')) return { provider: 'offline', id };
  const colon = id.indexOf(':');
  const prefix = colon < 0 ? id : id.slice(0, colon);
  let rest = colon < 0 ? '' : id.slice(colon + 1).trim();
  if (prefix === 'replay') {
    const { runId, fallback } = parseReplayId(id);
    if (fallback !== undefined) parseModelId(fallback);
    return { provider: 'replay', id, runId, fallback };
  }
  if (prefix === 'bedrock') {
    if (rest === '') throw invalid(id, 'the Bedrock model id is missing');
    return { provider: 'bedrock', id, modelId: rest };
  }
  if (prefix !== 'openai' && prefix !== 'openai-compatible' && prefix !== 'openai-completions') {
    throw invalid(id, colon < 0 ? 'no provider prefix' : `unknown provider "${prefix}"`);
  }
  const jsonMode = !rest.endsWith('#no-json');
  if (!jsonMode) rest = rest.slice(0, -'#no-json'.length);
  const { model, baseURL } = splitAtUrl(id, rest);
  if (model === '') throw invalid(id, 'the model name is missing');
  if (prefix === 'openai') {
    if (baseURL !== undefined) throw invalid(id, '"openai:" takes no base URL (use "openai-compatible:")');
    return { provider: 'openai', id, model, baseURL: OPENAI_BASE_URL, completions: false, jsonMode };
  }
  if (prefix === 'openai-compatible' && baseURL === undefined) {
    throw invalid(id, 'the base URL is missing ("openai-compatible:<model>@<base URL>")');
  }
  return {
    provider: baseURL === undefined ? 'openai' : 'openai-compatible',
    id,
    model,
    baseURL: baseURL ?? OPENAI_BASE_URL,
    completions: prefix === 'openai-completions',
    jsonMode,
  };
}
