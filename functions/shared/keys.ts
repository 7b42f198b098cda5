/**
 * Where things live in the bucket. One place, so stages, the CLI, the tests and the IAM grants
 * (`functions/stages.ts` → `infra/workflow.ts`) agree: every prefix a stage may touch is named here.
 */

/** The bundled seed set, which the stack deploys (CDK BucketDeployment). */
export const DEFAULTS_PREFIX = 'defaults/';

/** The seed file the stack deploys and runs use when none is given. */
export const DEFAULT_SEED_KEY = `${DEFAULTS_PREFIX}seed_tasks.jsonl`;

/** Uploads under this prefix start a run (EventBridge rule). `seeds/<pool>/<file>` grows `<pool>`. */
export const SEED_UPLOAD_PREFIX = 'seeds/';

/**
 * Documents whose passages a `backtranslate` run turns into tasks: `documents/<pool>/<file>` (plain text,
 * Markdown, HTML, PDF). An upload here starts a run on pool `<pool>` (EventBridge rule), as under `seeds/`.
 */
export const DOCUMENTS_PREFIX = 'documents/';

/** The folder of a pool's documents. */
export const documentsPrefix = (pool: string) => `${DOCUMENTS_PREFIX}${pool}/`;

/** Files the CLI uploads for a deployed run (seed files), where no trigger watches. */
export const UPLOADS_PREFIX = 'uploads/';

/** Everything a pool keeps in S3: its seeds, ROUGE-L index and snapshots (`poolKeys`). */
export const POOLS_PREFIX = 'pools/';

/** Everything a run keeps in S3 besides its export: candidates, gate decisions, raw model calls (`runKeys`). */
export const RUNS_PREFIX = 'runs/';

/** Datasets and run summaries (`exportKeys`). */
export const EXPORTS_PREFIX = 'exports/';

/** Price tables a run merges over the shipped one (run input `priceTableKey`, CLI `--prices`). */
export const PRICE_TABLE_PREFIX = 'prices/';

/**
 * Prompt template files that replace the shipped ones by file name (run input `templates`, a folder
 * under this prefix; the CLI uploads `--templates <dir>` to `templates/<run id>/`).
 */
export const TEMPLATES_PREFIX = 'templates/';

/** Where the CLI puts a run's `--templates` files: a folder of the run's own, never shared or overwritten. */
export const runTemplatesPrefix = (runId: string) => `${TEMPLATES_PREFIX}${runId}/`;

/**
 * Where a run's seed file (run input `seedKey`) may be: the bundled seeds, uploads that start runs,
 * the CLI's uploads, and this stack's own files in the seed-file format (a pool's seeds, an export's
 * `tasks.jsonl`). "Prepare run" may read these prefixes only, so `runs/` stays out of its reach.
 */
export const SEED_FILE_PREFIXES = [
  DEFAULTS_PREFIX,
  SEED_UPLOAD_PREFIX,
  UPLOADS_PREFIX,
  POOLS_PREFIX,
  EXPORTS_PREFIX,
] as const;

export const poolKeys = (pool: string) => ({
  /**
   * The seed tasks of the pool (the union of every seed file it was started from), JSON Lines: a copy
   * of the committed version (`seedsVersion`) for readers of the bucket alone, written after each commit.
   */
  seeds: `${POOLS_PREFIX}${pool}/seeds.jsonl`,
  /** The seed list as a run's "Prepare run" commits it; the pool's `META` points at the current one. */
  seedsVersion: (runId: string) => `${POOLS_PREFIX}${pool}/seeds/${runId}.jsonl`,
  /** The ROUGE-L index of a pool committed before `META` pointed at versions (read, never written). */
  index: `${POOLS_PREFIX}${pool}/rouge-index.bin`,
  /**
   * The manifest of the persisted ROUGE-L index of every instruction the gate accepted, seeds first, as
   * an iteration commits it (iteration 0: a run's seeds): the list of its segments (`IndexManifest`).
   * The pool's `META` points at the current one, so what an iteration that never committed wrote is
   * never read. (Pools committed before segments point at a whole index under the same name, `.bin`.)
   */
  indexVersion: (runId: string, iteration: number) =>
    `${POOLS_PREFIX}${pool}/index/${runId}/iteration-${iteration}.json`,
  /** The segment of the ROUGE-L index one commit added (a `RougeIndex` of its instructions only). */
  segment: (runId: string, iteration: number) =>
    `${POOLS_PREFIX}${pool}/segments/${runId}/iteration-${iteration}.bin`,
  /** The machine demonstrations sample (`MachineSample`) as one commit left it. */
  demonstrations: (runId: string, iteration: number) =>
    `${POOLS_PREFIX}${pool}/demonstrations/${runId}/iteration-${iteration}.json`,
  /**
   * The near-duplicate gate's vectors (`VectorIndex`) as an iteration commits them; the pool's `META`
   * points at the current one, like the ROUGE-L index.
   */
  vectorsVersion: (runId: string, iteration: number) =>
    `${POOLS_PREFIX}${pool}/vectors/${runId}/iteration-${iteration}.bin`,
  /** Every committed version of the vectors (`vectorsVersion`), for `export --select` to find the newest. */
  vectorsPrefix: `${POOLS_PREFIX}${pool}/vectors/`,
  /** The tasks an iteration added, JSON Lines in the seed-file format. */
  snapshot: (runId: string, iteration: number) =>
    `${POOLS_PREFIX}${pool}/snapshots/${runId}/iteration-${iteration}.jsonl`,
});

/** Every object a run keeps under `runs/` (what a replay of it lists). */
export const runPrefix = (runId: string) => `${RUNS_PREFIX}${runId}/`;

/**
 * The passages "Prepare run" split a `backtranslate` run's documents into (JSON Lines, `Passage`), in
 * document and position order; "Generate instructions" reads them by key.
 */
export const passagesKey = (runId: string) => `${runPrefix(runId)}passages.jsonl`;

/** An iteration's batch input folder, under its `runs/<run>/iteration-<n>/` (what the provider's role reads). */
export const BATCH_INPUT_FOLDER = 'batch/input/';
/** An iteration's batch output folder (what the provider's role writes). */
export const BATCH_OUTPUT_FOLDER = 'batch/output/';

export const runKeys = (runId: string, iteration: number) => {
  const base = `${runPrefix(runId)}iteration-${iteration}`;
  return {
    candidates: `${base}/candidates.jsonl`,
    /** One decision per candidate: status, reason, scores. */
    gate: `${base}/gate.jsonl`,
    /** The index manifest after this iteration's gate; promoted to the pool's by "Save iteration". */
    index: `${base}/rouge-index.json`,
    /** The segment of the instructions this iteration's gate accepted; promoted with the manifest. */
    segment: `${base}/rouge-segment.bin`,
    /** The machine demonstrations sample after this iteration; promoted with the manifest. */
    demonstrations: `${base}/demonstrations.json`,
    /** The vectors after this iteration's near-duplicate gate; promoted to the pool's by "Save iteration". */
    vectors: `${base}/vectors.bin`,
    /** The verb–noun pairs the run added up to this iteration ("Save iteration"'s diversity). */
    pairs: `${base}/verb-noun-pairs.json`,
    /** The sharded gate's objects (`shared/gate-shards.ts`): its candidates, decisions and shard parts. */
    gateShards: {
      survivors: `${base}/gate-shards/survivors.json`,
      sizes: `${base}/gate-shards/sizes.json`,
      highest: (shard: number) => `${base}/gate-shards/shard-${shard}-highest.json`,
      scores: (shard: number) => `${base}/gate-shards/shard-${shard}-scores.json`,
    },
    /**
     * One batch of "Generate instructions" (`generate-instructions/batches.ts`): its candidates, raw calls
     * and result, which "Collect instructions" joins into `candidates` and the stage's raw calls.
     */
    instructionBatch: (batch: number) => ({
      candidates: `${base}/instruction-batches/batch-${batch}-candidates.jsonl`,
      raw: `${base}/instruction-batches/batch-${batch}-raw.jsonl`,
      result: `${base}/instruction-batches/batch-${batch}.json`,
    }),
    /**
     * The iteration's instance batch (batch mode, `shared/batch/`): the job's input file (the only object
     * of the input folder the provider reads), the folder its output goes to, which call each record is,
     * and what the submit did.
     */
    batch: {
      input: `${base}/${BATCH_INPUT_FOLDER}instances.jsonl`,
      output: `${base}/${BATCH_OUTPUT_FOLDER}`,
      records: `${base}/batch/records.jsonl`,
      /** What the submit did: the job it started, or why it started none (`BatchSubmission`). */
      submission: `${base}/batch/submission.json`,
      /** The looks the poll loop took at the job, once it completed (`BatchCompletion`). */
      completion: `${base}/batch/completion.json`,
    },
    /** Raw model requests and replies of one stage (and Map item). */
    raw: (stage: string, chunk?: number) =>
      `${base}/raw/${stage}${chunk === undefined ? '' : `-chunk-${chunk}`}.jsonl`,
  };
};

export const exportKeys = (runId: string) => {
  const prefix = `${EXPORTS_PREFIX}${runId}/`;
  return {
    prefix,
    dataset: `${prefix}dataset.jsonl`,
    alpaca: `${prefix}alpaca.json`,
    tasks: `${prefix}tasks.jsonl`,
    summary: `${prefix}summary.json`,
  };
};
