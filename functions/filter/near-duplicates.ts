/**
 * The near-duplicate gate of "Filter and deduplicate" (Self-Instruct step 4's "embedding-based"
 * deduplication): after the ROUGE-L gate, the instructions it accepted are embedded (batched calls,
 * counted in the run's call ledger) and gated in order against the pool's vectors and those accepted
 * before them (`nearDuplicateGate`): a cosine strictly above `embeddingThreshold` rejects one as
 * `near-duplicate`, its nearest instruction and cosine in `gate.jsonl`.
 *
 * The pool's vectors persist like its ROUGE-L index: loaded from the key the pool's `META` points at,
 * written with this iteration's accepted ones under the run's key, and promoted to the pool's by "Save
 * iteration"'s commit, so an iteration that never commits leaves nothing behind and a retry reaches the
 * same decisions. The vectors record how many instructions of the ROUGE-L index they account for
 * (`synced`); instructions the index gained without vectors (a pool from before this gate, or runs with
 * `embeddingModel: "none"`) are embedded on first use. Vectors of another embedding model are computed
 * again for that model. While the gate is on, the stage always writes the iteration's vectors, which
 * "Save iteration" commits (`nearDuplicateGateOn`).
 */
import { EmbeddingCalls } from '../shared/embedding-calls.ts';
import { nearDuplicateGate, VectorIndex } from '../shared/engine/vector-index.ts';
import { runKeys } from '../shared/keys.ts';
import { nearDuplicateGateOn } from '../shared/models/embedding-ids.ts';
import { createEmbedder, type Embedder } from '../shared/models/embeddings.ts';
import type { ObjectStore, PoolStore } from '../shared/ports.ts';
import type { RunConfig } from '../shared/schemas.ts';
import type { GateDecision } from './core.ts';

/** The rejection reason of the gate. */
export const NEAR_DUPLICATE = 'near-duplicate';

export interface NearDuplicateDeps {
  objects: ObjectStore;
  pool: PoolStore;
  /** Builds the run's embedder. @default createEmbedder */
  embedders?: (id: string) => Promise<Embedder>;
  remainingMs?: () => number;
}

export interface NearDuplicateInput {
  runId: string;
  iteration: number;
  config: RunConfig;
  /** The pool's committed instructions (the ROUGE-L index as committed, seeds first). */
  poolInstructions: readonly string[];
  /** The size of the ROUGE-L index this iteration writes: what the vectors it writes account for. */
  synced: number;
  /** The pool's committed vectors (`META.vectorsKey`), if any. */
  vectorsKey: string | undefined;
  /** The decisions the ROUGE-L gate accepted, in order. */
  accepted: readonly GateDecision[];
}

/**
 * Gates `accepted` by embedding; marks the near-duplicates' decisions rejected (with `nearest_instruction`
 * and `nearest_cosine`, which accepted ones get too) and returns their positions in `accepted`.
 */
export async function rejectNearDuplicates(
  { runId, iteration, config, poolInstructions, synced, vectorsKey, accepted }: NearDuplicateInput,
  { objects, pool, embedders = createEmbedder, remainingMs }: NearDuplicateDeps,
): Promise<Set<number>> {
  const rejected = new Set<number>();
  const model = config.embeddingModel;
  if (model === undefined || !nearDuplicateGateOn(config)) return rejected;

  const stored = vectorsKey === undefined ? undefined : await objects.getBytes(vectorsKey);
  const committed = stored === undefined ? undefined : VectorIndex.fromBuffer(stored);
  const reuse = committed?.model === model && committed.size > 0 ? committed : undefined;
  // Instructions of the pool without vectors of this model: all of them for another model's vectors.
  const redo = committed && !reuse ? committed.instructions : [];
  const gap = poolInstructions.slice(committed?.synced ?? 0);
  const texts = [...redo, ...gap, ...accepted.map((decision) => decision.instruction)];
  const calls = new EmbeddingCalls(await embedders(model), {
    ledger: { pool, runId, iteration, scope: 'filter' },
    concurrency: config.callConcurrency,
    remainingMs,
  });
  const vectors = texts.length > 0 ? await calls.embed(texts) : [];
  // No dimensions only for an empty pool without candidates: an empty index, which no run reuses.
  const dimensions = reuse?.dimensions ?? vectors[0]?.length ?? 0;
  const index = reuse ?? new VectorIndex(model, dimensions);
  // Another model's instructions (when `reuse` is undefined), then the gap: the pool's order.
  for (const [i, instruction] of [...redo, ...gap].entries()) index.add(instruction, vectors[i] as number[]);
  const offset = redo.length + gap.length;
  const results = nearDuplicateGate(
    index,
    accepted.map((decision, i) => ({
      instruction: decision.instruction,
      vector: vectors[offset + i] as number[],
    })),
    config.embeddingThreshold,
  );
  results.forEach((result, i) => {
    const decision = accepted[i] as GateDecision;
    if (result.nearest) {
      decision.nearest_instruction = result.nearest.instruction;
      decision.nearest_cosine = result.nearest.score;
    }
    if (!result.accepted) {
      decision.status = 'rejected';
      decision.reason = NEAR_DUPLICATE;
      rejected.add(i);
    }
  });
  index.synced = synced;
  await objects.put(runKeys(runId, iteration).vectors, index.toBuffer());
  return rejected;
}
