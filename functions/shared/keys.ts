/** Where things live in the bucket. One place, so stages, the CLI and tests agree. */

/** The seed file the stack deploys and runs use when none is given. */
export const DEFAULT_SEED_KEY = 'defaults/seed_tasks.jsonl';

/** Uploads under this prefix start a run (EventBridge rule). `seeds/<pool>/<file>` grows `<pool>`. */
export const SEED_UPLOAD_PREFIX = 'seeds/';

export const poolKeys = (pool: string) => ({
  /** The seed tasks of the pool (the union of every seed file it was started from), JSON Lines. */
  seeds: `pools/${pool}/seeds.jsonl`,
  /** The persisted ROUGE-L index of every instruction the gate accepted, seeds first. */
  index: `pools/${pool}/rouge-index.bin`,
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
    /** Tasks completed by one Map item. */
    chunkTasks: (chunk: number) => `${base}/tasks/chunk-${chunk}.jsonl`,
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
