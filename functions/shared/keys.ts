/** Where things live in the bucket. One place, so stages, the CLI and tests agree. */

/** The seed file the stack deploys and runs use when none is given. */
export const DEFAULT_SEED_KEY = 'defaults/seed_tasks.jsonl';

/** Uploads under this prefix start a run (EventBridge rule). `seeds/<pool>/<file>` grows `<pool>`. */
export const SEED_UPLOAD_PREFIX = 'seeds/';

export const poolKeys = (pool: string) => ({
  /**
   * The seed tasks of the pool (the union of every seed file it was started from), JSON Lines: a copy
   * of the committed version (`seedsVersion`) for readers of the bucket alone, written after each commit.
   */
  seeds: `pools/${pool}/seeds.jsonl`,
  /** The seed list as a run's "Prepare run" commits it; the pool's `META` points at the current one. */
  seedsVersion: (runId: string) => `pools/${pool}/seeds/${runId}.jsonl`,
  /** The ROUGE-L index of a pool committed before `META` pointed at versions (read, never written). */
  index: `pools/${pool}/rouge-index.bin`,
  /**
   * The persisted ROUGE-L index of every instruction the gate accepted, seeds first, as an iteration
   * commits it (iteration 0: a run's seeds); the pool's `META` points at the current one, so an index
   * written by an iteration that never committed is never read.
   */
  indexVersion: (runId: string, iteration: number) =>
    `pools/${pool}/index/${runId}/iteration-${iteration}.bin`,
  /** The tasks an iteration added, JSON Lines in the seed-file format. */
  snapshot: (runId: string, iteration: number) =>
    `pools/${pool}/snapshots/${runId}/iteration-${iteration}.jsonl`,
});

export const runKeys = (runId: string, iteration: number) => {
  const base = `runs/${runId}/iteration-${iteration}`;
  return {
    candidates: `${base}/candidates.jsonl`,
    /** One decision per candidate: status, reason, scores. */
    gate: `${base}/gate.jsonl`,
    /** The index after this iteration's gate; promoted to the pool's by "Save iteration". */
    index: `${base}/rouge-index.bin`,
    /** Raw model requests and replies of one stage (and Map item). */
    raw: (stage: string, chunk?: number) =>
      `${base}/raw/${stage}${chunk === undefined ? '' : `-chunk-${chunk}`}.jsonl`,
  };
};

export const exportKeys = (runId: string) => ({
  prefix: `exports/${runId}/`,
  dataset: `exports/${runId}/dataset.jsonl`,
  alpaca: `exports/${runId}/alpaca.json`,
  tasks: `exports/${runId}/tasks.jsonl`,
  summary: `exports/${runId}/summary.json`,
});
