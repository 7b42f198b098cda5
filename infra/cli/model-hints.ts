/** What the CLI tells about a model before a run: a one-line description, and a hint when a local server answers. */
import { OLLAMA_BASE_URL, parseModelId } from '../../functions/shared/models/model-ids.ts';

/**
 * One line describing a model id for the CLI: provider, model, endpoint and whether token counts are
 * real. Throws `ModelRequestFailed` on an id of no accepted form.
 */
export function describeModel(id: string): string {
  const spec = parseModelId(id);
  switch (spec.provider) {
    case 'replay':
      return `replay of run ${spec.runId}'s recorded replies (no model calls, no cost)${spec.fallback ? `; unrecorded prompts go to ${describeModel(spec.fallback)}` : '; an unrecorded prompt fails the run'}`;
    case 'offline':
      return 'offline stand-in (deterministic, no network; not for training data); token counts estimated';
    case 'bedrock': {
      const endpoint =
        process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME ??
        `bedrock-runtime.${process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? '<region>'}.amazonaws.com`;
      return `Amazon Bedrock (Converse), model ${spec.modelId}, endpoint ${endpoint}; token counts reported by Bedrock`;
    }
    case 'openai':
    case 'openai-compatible': {
      const name = spec.provider === 'openai' ? 'OpenAI' : 'OpenAI-compatible server';
      const api = spec.completions
        ? 'completions for raw prompts, chat completions for chat'
        : 'chat completions';
      const json = spec.jsonMode ? '' : ', no JSON mode';
      return `${name} (${api}${json}), model ${spec.model}, endpoint ${spec.baseURL}; token counts reported by the server (estimated when it leaves them out)`;
    }
  }
}

/**
 * When an OpenAI-compatible server (by default Ollama's) answers `GET <baseURL>/models` within
 * `timeoutMs`, a one-line hint on how to use its first model, with the exact `--model` flag; otherwise
 * (nothing there, too slow, no models, not the OpenAI API) `undefined`. Never throws.
 */
export async function ollamaHint({
  baseURL = OLLAMA_BASE_URL,
  timeoutMs = 300,
}: {
  baseURL?: string;
  timeoutMs?: number;
} = {}): Promise<string | undefined> {
  try {
    const response = await fetch(`${baseURL}/models`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) return undefined;
    const body = (await response.json()) as { data?: { id?: unknown }[] };
    const model = body.data?.[0]?.id;
    if (typeof model !== 'string' || model === '') return undefined;
    return `A local model server answers at ${baseURL}: to use it, add --model openai-compatible:${model}@${baseURL}`;
  } catch {
    return undefined;
  }
}
