/**
 * The embeddings `export --select` compares: one per candidate instruction, by the run's embedding model.
 * The pool's stored vectors (the near-duplicate gate's, `pools/<pool>/vectors/<run>/iteration-<n>.bin`)
 * are reused where they hold an instruction, at no model cost; the rest is embedded with the same model
 * and options as the gate, each billed call counted and priced at the shipped price table's rate.
 *
 * Like the gate, selection embeds a task's instruction alone (DEITA embeds the whole sample with its own
 * model): that is what the stored vectors hold, so a run with the gate on costs nothing to select from.
 */
import { EmbeddingCalls } from '../../../functions/shared/embedding-calls.ts';
import { normalized, VectorIndex } from '../../../functions/shared/engine/vector-index.ts';
import { poolKeys } from '../../../functions/shared/keys.ts';
import {
  defaultEmbeddingModel,
  gateEmbedderOptions,
  NO_EMBEDDINGS,
} from '../../../functions/shared/models/embedding-ids.ts';
import { createEmbedder, type Embedder } from '../../../functions/shared/models/embeddings.ts';
import type { ObjectStore } from '../../../functions/shared/ports.ts';
import { modelCost, shippedPrices } from '../../../functions/shared/pricing/pricing.ts';
import type { TaskLine } from '../../../functions/shared/records.ts';
import type { Usage } from '../../../functions/shared/schemas.ts';
import type { TaskSource } from './sources.ts';

/** The candidates' vectors and where they came from. */
export interface SelectionVectors {
  /** The embedding model of every vector. */
  model: string;
  /** Unit vector of each candidate instruction. */
  vectors: Map<string, Float32Array>;
  /** Instructions whose vector came from the pool's stored vectors, and the object it was read from. */
  reused: number;
  storedKey?: string;
  /** Instructions embedded now, the billed calls that took (none offline) and their cost in USD. */
  embedded: number;
  usage: Usage;
  /** Undefined when the price table has no price for `model`. */
  costUsd: number | undefined;
}

/** Options of `selectionVectors`. */
export interface SelectionVectorsOptions {
  /** Builds the embedder. @default createEmbedder with the gate's options (`gateEmbedderOptions`) */
  embedders?: (id: string) => Promise<Embedder>;
}

/**
 * The embedding model selection uses for `source`: its newest run's `embeddingModel`, or, when that run
 * had the gate off (`none`) or predates it, the default for its text model (`offline` for offline runs).
 */
export function selectionModel(source: Pick<TaskSource, 'runs'>): string {
  const summary = source.runs.findLast((run) => run.summary)?.summary;
  if (summary === undefined) return 'offline';
  const model = summary.config.embeddingModel;
  return model === undefined || model === NO_EMBEDDINGS ? defaultEmbeddingModel(summary.model) : model;
}

/** A unit vector for each of `candidates`' instructions: the pool's stored ones, then the model's. */
export async function selectionVectors(
  objects: ObjectStore,
  source: Pick<TaskSource, 'pool' | 'runs'>,
  candidates: readonly TaskLine[],
  { embedders = (id) => createEmbedder(id, gateEmbedderOptions(id)) }: SelectionVectorsOptions = {},
): Promise<SelectionVectors> {
  const model = selectionModel(source);
  const instructions = [...new Set(candidates.map((task) => task.instruction))];
  const stored = await newestStoredVectors(objects, source.pool, model);
  const vectors = new Map<string, Float32Array>();
  for (const instruction of instructions) {
    const vector = stored?.index.vectorOf(instruction);
    if (vector) vectors.set(instruction, vector);
  }
  const reused = vectors.size;
  const missing = instructions.filter((instruction) => !vectors.has(instruction));
  const calls = new EmbeddingCalls(await embedders(model), { concurrency: 4 });
  if (missing.length > 0) {
    const embedded = await calls.embed(missing);
    missing.forEach((instruction, i) => {
      vectors.set(instruction, normalized(embedded[i] as number[]));
    });
  }
  const cost = modelCost(shippedPrices(), model, { inputTokens: calls.usage.inputTokens, outputTokens: 0 });
  return {
    model,
    vectors,
    reused,
    ...(stored && reused > 0 ? { storedKey: stored.key } : {}),
    embedded: missing.length,
    usage: calls.usage,
    costUsd: cost.usd,
  };
}

/**
 * The pool's newest stored vectors of `model`: the newest run's last iteration first (run ids start
 * with their start time). The gate's vectors only grow, so the newest file of a model holds every
 * instruction an earlier one of that model held.
 */
async function newestStoredVectors(
  objects: ObjectStore,
  pool: string,
  model: string,
): Promise<{ key: string; index: VectorIndex } | undefined> {
  const prefix = poolKeys(pool).vectorsPrefix;
  const files = (await objects.list(prefix))
    .map((key) => ({ key, match: /^([^/]+)\/iteration-(\d+)\.bin$/.exec(key.slice(prefix.length)) }))
    .flatMap(({ key, match }) =>
      match ? [{ key, runId: match[1] as string, iteration: Number(match[2]) }] : [],
    )
    .sort((a, b) => b.runId.localeCompare(a.runId) || b.iteration - a.iteration);
  for (const { key } of files) {
    const bytes = await objects.getBytes(key);
    if (bytes === undefined) continue;
    const index = VectorIndex.fromBuffer(bytes);
    if (index.model === model) return { key, index };
  }
  return undefined;
}
