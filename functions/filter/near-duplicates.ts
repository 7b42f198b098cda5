/**
 * The near-duplicate gate of "Filter and deduplicate" (Self-Instruct step 4's "embedding-based"
 * deduplication), a veto inside the ROUGE-L gate: the survivors of the filters are embedded first
 * (batched calls, counted in the run's call ledger), then each candidate the ROUGE-L threshold lets
 * through is compared, in order, with the pool's vectors and those accepted before it: a cosine strictly
 * above `embeddingThreshold` rejects it as `near-duplicate` (its nearest instruction and cosine in
 * `gate.jsonl`), so that it neither joins the ROUGE-L index nor takes a place of the run's quota.
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
import { NearDuplicateGate, type NearDuplicateResult, VectorIndex } from '../shared/engine/vector-index.ts';
import { runKeys } from '../shared/keys.ts';
import { nearDuplicateGateOn } from '../shared/models/embedding-ids.ts';
import { createEmbedder, type Embedder } from '../shared/models/embeddings.ts';
import type { ObjectStore, PoolStore } from '../shared/ports.ts';
import type { RunConfig } from '../shared/schemas.ts';

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
  /** The pool's committed vectors (`META.vectorsKey`), if any. */
  vectorsKey: string | undefined;
  /** The candidates that go to the ROUGE-L gate, in order. */
  survivors: readonly string[];
}

/** The gate over one iteration's survivors, embedded and ready (see `prepareNearDuplicates`). */
export interface NearDuplicates {
  /** The ROUGE-L gate's veto: checks survivor `position` (in order), admitting it to the vectors or not. */
  veto(position: number): string | null;
  /** Survivor `position`'s nearest instruction and cosine, once checked. */
  nearest(position: number): { instruction: string; score: number } | undefined;
  /** Writes the pool's vectors with the admitted ones, accounting for `synced` ROUGE-L instructions. */
  save(synced: number): Promise<void>;
}

/**
 * Loads the pool's vectors, embeds what they lack and the survivors, and returns the gate; undefined
 * when the run has it off.
 */
export async function prepareNearDuplicates(
  { runId, iteration, config, poolInstructions, vectorsKey, survivors }: NearDuplicateInput,
  { objects, pool, embedders = createEmbedder, remainingMs }: NearDuplicateDeps,
): Promise<NearDuplicates | undefined> {
  const model = config.embeddingModel;
  if (model === undefined || !nearDuplicateGateOn(config)) return undefined;

  const stored = vectorsKey === undefined ? undefined : await objects.getBytes(vectorsKey);
  const committed = stored === undefined ? undefined : VectorIndex.fromBuffer(stored);
  const reuse = committed?.model === model && committed.size > 0 ? committed : undefined;
  // Instructions of the pool without vectors of this model: all of them for another model's vectors.
  const redo = committed && !reuse ? committed.instructions : [];
  const gap = poolInstructions.slice(committed?.synced ?? 0);
  const texts = [...redo, ...gap, ...survivors];
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
  const gate = new NearDuplicateGate(
    index,
    survivors.map((instruction, i) => ({ instruction, vector: vectors[offset + i] as number[] })),
    config.embeddingThreshold,
  );
  const checked = new Map<number, NearDuplicateResult>();
  return {
    veto(position) {
      const result = gate.check(position);
      checked.set(position, result);
      return result.accepted ? null : NEAR_DUPLICATE;
    },
    nearest: (position) => checked.get(position)?.nearest,
    async save(synced) {
      index.synced = synced;
      await objects.put(runKeys(runId, iteration).vectors, index.toBuffer());
    },
  };
}
