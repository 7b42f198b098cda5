/**
 * The files and records the pipeline stores, one zod schema each: writers check what they write with
 * `satisfies`, readers `.parse` what they read, so a field added on one side is a compile error or a
 * clear parse error on the other. Stage payloads (`RunState`, `Chunk`, `SaveInput` …) are in
 * `schemas.ts`; this module is for what outlives an execution: `gate.jsonl`, `tasks.jsonl` (and the
 * pool's snapshots), `summary.json` and the run record's per-iteration stats.
 */
import { z } from 'zod';
import { BatchProvider } from './batch/jobs.ts';
import { Counts, Lineage, ProfileName, RunConfig, SeedTask, UsageByStage } from './schemas.ts';

/**
 * One gate decision: a line of `runs/<run>/iteration-<n>/gate.jsonl` (written by "Filter and
 * deduplicate") and of the `dedup` command's output. Field names follow the Self-Instruct code's
 * records; `serializeDecision` writes it.
 */
export const GateRecord = z.object({
  /** The candidate as normalized by the profile (what the gate compared). */
  instruction: z.string(),
  /** The candidate as the model wrote it (the Filter stage's lines only). */
  raw: z.string().optional(),
  status: z.enum(['accepted', 'rejected']),
  /** A filter's name, `rouge`, `near-duplicate`, `duplicate` or `surplus`; null when accepted. */
  reason: z.string().nullable(),
  /** Highest ROUGE-L F to the pool; null for a candidate that never reached the gate. */
  max_similarity: z.number().nullable().default(null),
  /** The most similar pool instructions → score, highest first (at most 10); null when not gated. */
  most_similar: z.record(z.string(), z.number()).nullable().default(null),
  /** Mean ROUGE-L F to the pool; null when not gated. */
  avg_similarity_score: z.number().nullable().default(null),
  /** Its nearest instruction by embedding and their cosine (the near-duplicate gate's, when it compared it). */
  nearest_instruction: z.string().optional(),
  nearest_cosine: z.number().optional(),
  /** An evolved candidate's parent, operation and depth (`method: evol`; the Filter stage's lines only). */
  lineage: Lineage.optional(),
  /** The task id an accepted candidate got (the Filter stage's lines only). */
  id: z.string().optional(),
});
export type GateRecord = z.infer<typeof GateRecord>;

/**
 * One task line of `exports/<run>/tasks.jsonl` and `pools/<pool>/snapshots/<run>/iteration-<n>.jsonl`:
 * the Self-Instruct seed-file format plus provenance (`toSeedFormat` writes it). Seed lines
 * (`pools/<pool>/seeds.jsonl`) parse too, with `source` defaulting to `machine` unless the reader says
 * otherwise. Unknown fields are dropped.
 */
export const TaskLine = SeedTask.extend({
  // A seed line's fields, looser: machine tasks have no name, and the instruction is kept as accepted.
  name: SeedTask.shape.name.optional(),
  instruction: z.string().min(1),
  is_classification: SeedTask.shape.is_classification.default(false),
  source: z.enum(['seed', 'machine']).default('machine'),
  run_id: z.string().optional(),
  iteration: z.int().nonnegative().optional(),
  most_similar_instruction: z.string().optional(),
  most_similar_score: z.number().optional(),
  avg_similarity_score: z.number().optional(),
  /** The instruction's root verb and its direct object; null when it has none, absent when not found. */
  root_verb: z.string().nullable().optional(),
  direct_object: z.string().nullable().optional(),
  /**
   * The judge's verdict (`generate-instances/judge.ts`): the 1–5 score, the paper's three audit answers
   * and a one-sentence reason; absent when the task was not judged.
   */
  quality_score: z.number().optional(),
  instruction_valid: z.boolean().optional(),
  input_appropriate: z.boolean().optional(),
  output_correct: z.boolean().optional(),
  quality_reason: z.string().optional(),
  /**
   * How its outputs were written (`generate-instances/explain.ts`): `explained` by a teacher model under
   * `system_message`; absent for direct responses.
   */
  response_style: z.enum(['direct', 'explained']).optional(),
  system_message: z.string().optional(),
  /**
   * Method `backtranslate`: the document the task was made from, the span [start, end) of its passage in
   * the document's extracted text, and whether the passage is the task's output or its grounding.
   */
  source_document: z.string().optional(),
  source_span: z.tuple([z.int().nonnegative(), z.int().nonnegative()]).optional(),
  source_use: z.enum(['output', 'grounding']).optional(),
  /** An evolved task's parent task id, operation and depth in the evolution tree (`method: evol`). */
  lineage: Lineage.optional(),
});
export type TaskLine = z.infer<typeof TaskLine>;

/**
 * One passage of a document, a line of `runs/<run>/passages.jsonl` (method `backtranslate`: "Prepare run"
 * writes them, `functions/shared/documents/passages.ts` cuts them).
 */
export const Passage = z.object({
  /** Its position among the run's passages, from 0. */
  index: z.int().nonnegative(),
  document: z.string().min(1),
  start: z.int().nonnegative(),
  end: z.int().nonnegative(),
  text: z.string().min(1),
});
export type Passage = z.infer<typeof Passage>;

/** Estimated USD of one iteration: its model tokens at the price table's rates, and its AWS usage. */
export const IterationCost = z.object({
  modelUsd: z.number(),
  awsUsd: z.number(),
  totalUsd: z.number(),
  /** Model USD per step that calls the model. */
  modelUsdByStage: z.record(z.string(), z.number()),
  /** True when the model has no price in the table (its cost then counts as 0). */
  modelUnpriced: z.boolean(),
});
export type IterationCost = z.infer<typeof IterationCost>;

/** Buckets of the highest-ROUGE-L histogram: [0, 0.1), [0.1, 0.2), …, [0.9, 1]. */
export const ROUGE_BUCKETS = 10;

/**
 * What "Save iteration" stores about one iteration's diversity (the run record's `iterations.<n>`; see
 * `functions/save-iteration/diversity.ts`).
 */
export const IterationDiversity = z.object({
  /** Tasks the iteration added (complete), what the shares divide by. */
  added: z.int().nonnegative(),
  /** Distinct verb–noun pairs among them; of these, the pairs no earlier iteration of the run added. */
  distinctPairs: z.int().nonnegative(),
  newPairs: z.int().nonnegative(),
  /** newPairs / added; null when nothing was added. */
  newPairShare: z.number().nullable(),
  /** Added tasks by highest ROUGE-L to the pool, in `ROUGE_BUCKETS` buckets of 0.1; and the mean. */
  rougeHistogram: z.array(z.int().nonnegative()).length(ROUGE_BUCKETS),
  meanMaxRouge: z.number().nullable(),
  /** Added tasks farther than `newClusterCosine` from every earlier instruction / added; null without embeddings. */
  newClusterShare: z.number().nullable(),
  /** Mean cosine of the added tasks to their nearest instruction; null without embeddings. */
  meanNearestCosine: z.number().nullable(),
  /** Accepted / generated candidates; null when none was generated. */
  acceptanceRate: z.number().nullable(),
});
export type IterationDiversity = z.infer<typeof IterationDiversity>;

/**
 * Batch mode's share of one iteration's instance calls (run input `batch`; see
 * `functions/save-iteration/batch.ts`): the records sent to the provider's batch job, those it answered
 * (served to the Map from the call ledger at the batch price), those it failed (or left out of its
 * output) and, of these, the ones the Map then made on demand; or that the iteration ran on demand,
 * below the provider's minimum of records per job.
 */
export const IterationBatch = z.object({
  provider: BatchProvider,
  /** The provider's job id; absent when the iteration ran on demand. */
  jobId: z.string().optional(),
  /** Instance calls the iteration had for the job. */
  planned: z.int().nonnegative(),
  /** Records sent to the job (0 when the iteration ran on demand). */
  sent: z.int().nonnegative(),
  /** Records the job answered, served to the Map from the call ledger. */
  served: z.int().nonnegative(),
  /** Records the job failed or left out, and of those the ones made on demand by the Map. */
  failed: z.int().nonnegative(),
  madeOnDemand: z.int().nonnegative(),
  /** True when no job was started: fewer records than the provider's minimum; `reason` says so. */
  belowMinimum: z.boolean(),
  reason: z.string().optional(),
  /** Looks the poll loop took at the job until it completed (each a Wait, a check, a Choice). */
  looks: z.int().nonnegative().optional(),
});
export type IterationBatch = z.infer<typeof IterationBatch>;

/** What "Save iteration" stores under the run record's `iterations.<n>`. */
export const IterationRecord = z.object({
  counts: Counts,
  usage: UsageByStage,
  /** Some token counts are estimates (the provider reported none). */
  tokensEstimated: z.boolean(),
  cost: IterationCost,
  /** Its diversity (absent for iterations saved before it was measured). */
  diversity: IterationDiversity.optional(),
  /** Batch mode's share of its instance calls (absent without batch mode). */
  batch: IterationBatch.optional(),
});
export type IterationRecord = z.infer<typeof IterationRecord>;

/** `exports/<run>/summary.json`: what "Export dataset" returns and stores about the run. */
export const RunSummary = z.object({
  runId: z.string().min(1),
  pool: z.string().min(1),
  profile: ProfileName,
  model: z.string(),
  stopReason: z.string(),
  /** The run's full configuration (thresholds, seed file, sizes), for dataset cards and reports. */
  config: RunConfig,
  iterations: z.int().nonnegative(),
  /** Tasks this run added; tasks in the pool (seeds included); tasks and records exported. */
  added: z.int().nonnegative(),
  poolSize: z.int().nonnegative(),
  exportedTasks: z.int().nonnegative(),
  exportedRecords: z.int().nonnegative(),
  counts: z.record(z.string(), z.number()),
  usage: z.object({
    calls: z.number().nonnegative(),
    inputTokens: z.number().nonnegative(),
    outputTokens: z.number().nonnegative(),
  }),
  /** Estimated USD from the price table: model tokens, the AWS side, per task added and per 1,000. */
  cost: z.object({
    modelUsd: z.number(),
    awsUsd: z.number(),
    totalUsd: z.number(),
    perTaskUsd: z.number().nullable(),
    per1000TasksUsd: z.number().nullable(),
    /** The model has no price in the table: `modelUsd` leaves it out. */
    modelUnpriced: z.boolean(),
  }),
  exportPrefix: z.string(),
  files: z.object({ dataset: z.string(), alpaca: z.string(), tasks: z.string(), summary: z.string() }),
  /** Batch mode: each iteration's share of its instance calls, by iteration number (absent without). */
  batch: z.record(z.string(), IterationBatch).optional(),
});
export type RunSummary = z.infer<typeof RunSummary>;

/**
 * One part of a pool's ROUGE-L index (`pools/<pool>/segments/<run>/iteration-<n>.bin`, a `RougeIndex`
 * of the instructions one commit added), as the pool's index manifest lists it. A segment is written once
 * and never changed after its commit, so `sha256` names its content: a function may keep it in its
 * `/tmp` and memory under that name. `legacy`: an index written as one object before segments (its
 * size and digest unknown until read; a missing one reads as empty).
 */
export const IndexSegment = z.object({
  key: z.string().min(1),
  size: z.number().int().nonnegative().optional(),
  sha256: z.string().optional(),
  /** The segment holds seed tasks (a run's "Prepare run"), not machine ones. */
  seeds: z.boolean().optional(),
  legacy: z.boolean().optional(),
});
export type IndexSegment = z.infer<typeof IndexSegment>;

/**
 * A pool's committed ROUGE-L index (`pools/<pool>/index/<run>/iteration-<n>.json`; the pool's `META`
 * `indexKey` names it): its segments in pool order, seeds first, and the demonstration sample of its
 * machine tasks (`demonstrations`, see `MachineSample`) as of the same commit.
 */
export const IndexManifest = z.object({
  version: z.literal(1),
  segments: z.array(IndexSegment),
  demonstrations: z.string().optional(),
});
export type IndexManifest = z.infer<typeof IndexManifest>;

/**
 * What "Generate instructions" samples its machine demonstrations from, so it never loads the index
 * (`pools/<pool>/demonstrations/<run>/iteration-<n>.json`, written with each commit): every machine task
 * of the pool in pool order while there are at most `EXACT_DEMONSTRATIONS` (`tasks`), and always, per
 * leading word in order of first appearance, the number of tasks and a uniform sample of at most
 * `GROUP_SAMPLE` of them (`groups`, kept by reservoir sampling).
 */
export const MachineSample = z.object({
  version: z.literal(1),
  machine: z.number().int().nonnegative(),
  tasks: z.array(z.string()).optional(),
  groups: z.array(
    z.object({ word: z.string(), count: z.number().int().positive(), sample: z.array(z.string()) }),
  ),
});
export type MachineSample = z.infer<typeof MachineSample>;
