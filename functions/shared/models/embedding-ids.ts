/**
 * Embedding model ids: which a run uses by default, which `createEmbedder` (`embeddings.ts`) accepts, and
 * the id that turns the near-duplicate gate off. Apart from the adapters, so that "Prepare run" checks a
 * run's input without loading them (or the offline word vectors).
 */
import { ModelRequestFailed } from '../errors.ts';
import { parseModelId } from './model-ids.ts';

/** The Bedrock embedding model the adapter speaks to (its request body is model-specific). */
export const TITAN_TEXT_EMBEDDINGS_V2 = 'amazon.titan-embed-text-v2:0';

/** `embeddingModel` that turns the near-duplicate gate off. */
export const NO_EMBEDDINGS = 'none';

/** Whether a run's near-duplicate gate is on: its filter then writes vectors its iterations commit. */
export const nearDuplicateGateOn = (config: { embeddingModel?: string }) =>
  config.embeddingModel !== undefined && config.embeddingModel !== NO_EMBEDDINGS;

/**
 * Vector length the near-duplicate gate asks for where the model can shorten its vectors (Titan V2's
 * smallest size, which AWS reports keeps about 97% of the 1,024-dimension retrieval accuracy; OpenAI's
 * `text-embedding-3-*` take `dimensions` too): a quarter of the storage and search time.
 */
export const GATE_DIMENSIONS = 256;

/** The embedding model a run uses by default: the run's own provider's, offline for the rest. */
export function defaultEmbeddingModel(model: string): string {
  const spec = parseModelId(model);
  if (spec.provider === 'bedrock') return `bedrock:${TITAN_TEXT_EMBEDDINGS_V2}`;
  if (spec.provider === 'openai' && !spec.completions) return 'openai:text-embedding-3-small';
  // An OpenAI-compatible server's embedding models have no common name; a replay records no vectors.
  return 'offline';
}

/** The embedder options the near-duplicate gate uses with `id`. */
export function gateEmbedderOptions(id: string): { dimensions?: number } {
  const spec = parseModelId(id);
  return spec.provider === 'bedrock' || spec.provider === 'openai' ? { dimensions: GATE_DIMENSIONS } : {};
}

/** Throws `ModelRequestFailed` when `id` names no embedding model `createEmbedder` can build. */
export function checkEmbedderId(id: string): void {
  const spec = parseModelId(id);
  switch (spec.provider) {
    case 'replay':
      throw new ModelRequestFailed(`"${id}": embeddings are not recorded, so they can't be replayed`);
    case 'bedrock':
      if (spec.modelId !== TITAN_TEXT_EMBEDDINGS_V2) {
        throw new ModelRequestFailed(
          `Unknown embedding model "${id}": on Bedrock, use bedrock:${TITAN_TEXT_EMBEDDINGS_V2}`,
        );
      }
      return;
    case 'openai':
    case 'openai-compatible':
      if (spec.completions) {
        throw new ModelRequestFailed(
          `Unknown embedding model "${id}": use openai:<model> or openai-compatible:<model>@<base URL>`,
        );
      }
      return;
    case 'offline':
      return;
  }
}
