/**
 * The schema of a run report's numbers (`exports/<run>/stats.json`, the `ReportStats` that `stats.ts`
 * computes and `html.ts` draws): one zod schema, so the file can be read back and checked.
 */
import { z } from 'zod';
import { IterationBatch, IterationDiversity } from '../../../functions/shared/records.ts';
import {
  EvolElimination,
  EvolOperation,
  Instance,
  Method,
  PlateauMetric,
  ResponseStyle,
} from '../../../functions/shared/schemas.ts';

/** Counts of values in `[edges[i], edges[i + 1])`; the last bin also holds its upper edge. */
export const Histogram = z.object({ edges: z.array(z.number()), counts: z.array(z.int().nonnegative()) });
export type Histogram = z.infer<typeof Histogram>;

/** A distribution: its histogram and summary numbers (null when empty). */
export const Distribution = z.object({
  count: z.int().nonnegative(),
  mean: z.number().nullable(),
  median: z.number().nullable(),
  max: z.number().nullable(),
  histogram: Histogram,
});
export type Distribution = z.infer<typeof Distribution>;

const Neighbour = z.object({ instruction: z.string(), score: z.number() });

const Cost = z.object({ modelUsd: z.number(), awsUsd: z.number(), totalUsd: z.number() });

/**
 * The judge's verdicts on the tasks it was asked about (those with valid instances, kept or then dropped
 * as `low-quality`): how many got each score and how many stayed unscored (verdict unparseable, judge
 * call lost), and the share of the scored ones answering yes to each of the paper's audit questions and
 * to all three (the paper: 92% valid instructions, 79% appropriate inputs, 58% correct outputs, 54% all).
 */
export const QualityStats = z.object({
  judged: z.int().nonnegative(),
  scores: z.object({
    1: z.int().nonnegative(),
    2: z.int().nonnegative(),
    3: z.int().nonnegative(),
    4: z.int().nonnegative(),
    5: z.int().nonnegative(),
    unscored: z.int().nonnegative(),
  }),
  meanScore: z.number().nullable(),
  instructionValid: z.number().nullable(),
  inputAppropriate: z.number().nullable(),
  outputCorrect: z.number().nullable(),
  fullyValid: z.number().nullable(),
});
export type QualityStats = z.infer<typeof QualityStats>;

/**
 * Texts the safety screen flagged, by category (`profanity`, `violence` …): candidate instructions
 * (dropped at the filter as `unsafe-<category>`) and generated instances (dropped one by one at the
 * instance stage, counted as `instance-unsafe-<category>`).
 */
export const SafetyCounts = z.object({
  instructions: z.record(z.string(), z.int().nonnegative()),
  instances: z.record(z.string(), z.int().nonnegative()),
});
export type SafetyCounts = z.infer<typeof SafetyCounts>;

/** A candidate the embeddings rejected as a near-duplicate, with its nearest instruction and their cosine. */
export const NearDuplicateExample = z.object({
  iteration: z.int(),
  instruction: z.string(),
  /** Null in a gate line written before the gate recorded it. */
  nearestInstruction: z.string().nullable(),
  cosine: z.number().nullable(),
});
export type NearDuplicateExample = z.infer<typeof NearDuplicateExample>;

/**
 * The near-duplicate gate of the run (Self-Instruct's step 4 by embeddings): candidates whose highest
 * cosine to the pool (and to those accepted before them) is above `threshold`, and a few of them, drawn
 * with the samples' seed.
 */
export const NearDuplicateStats = z.object({
  embeddingModel: z.string(),
  threshold: z.number().nullable(),
  count: z.int().nonnegative(),
  examples: z.array(NearDuplicateExample),
});
export type NearDuplicateStats = z.infer<typeof NearDuplicateStats>;

/**
 * The run's `diversityPlateau` rule: the figure it watches (`metric` new-pairs: `newPairShare`,
 * new-clusters: `newClusterShare`), its `floor` and how many `iterations` in a row below it stop the run;
 * the iterations that were below it, and the one the run stopped after for a plateau (null if it did not).
 */
export const PlateauStats = z.object({
  metric: PlateauMetric,
  figure: z.enum(['newPairShare', 'newClusterShare']),
  floor: z.number(),
  iterations: z.int().positive(),
  belowFloor: z.array(z.int().positive()),
  stoppedAt: z.int().positive().nullable(),
});
export type PlateauStats = z.infer<typeof PlateauStats>;

/** One iteration: the pool-growth funnel, usage and cost. */
export const IterationStats = z.object({
  iteration: z.int().positive(),
  /** Candidates parsed from the model's replies (one gate decision each). */
  generated: z.int().nonnegative(),
  /** Candidates rejected by a heuristic filter, the ROUGE-L gate (`rouge`), the embeddings (`near-duplicate`) or as duplicates, by reason. */
  rejected: z.record(z.string(), z.int().nonnegative()),
  /** Candidates that passed the filters and the gate (they joined the pool as pending tasks). */
  accepted: z.int().nonnegative(),
  /** Accepted tasks left without a valid instance, by reason. */
  droppedAtInstances: z.record(z.string(), z.int().nonnegative()),
  /** Tasks with valid instances: what the iteration added to the dataset. */
  added: z.int().nonnegative(),
  /** Tasks in the pool (seeds included) after the iteration. */
  poolSize: z.int().nonnegative(),
  /** accepted / generated and added / generated (null when nothing was generated). */
  acceptanceRate: z.number().nullable(),
  yieldRate: z.number().nullable(),
  usage: z.object({ calls: z.int(), inputTokens: z.int(), outputTokens: z.int() }),
  cost: Cost,
  /** Tokens (in + out) and USD per 1,000 added tasks; null when none was added. */
  per1000Added: z.object({ tokens: z.number(), usd: z.number() }).nullable(),
  /** New verb–noun pairs, highest ROUGE-L, new clusters (see `diversity.ts`); null when not saved. */
  diversity: IterationDiversity.nullable(),
  /** False when the run record has no saved stats for it (a run that failed in this iteration). */
  saved: z.boolean(),
  /** The judge's verdicts on the iteration's tasks; null when the run had no judge. */
  quality: QualityStats.nullable(),
  /** What the safety screen flagged in the iteration; null when the run had no screen. */
  safety: SafetyCounts.nullable(),
  /** Batch mode's share of its instance calls (the run record's); null without batch mode. */
  batch: IterationBatch.nullable(),
});
export type IterationStats = z.infer<typeof IterationStats>;

/** A sampled task: an accepted one (with an instance) or a rejected one (with the reason). */
export const SampledTask = z.object({
  iteration: z.int(),
  instruction: z.string(),
  status: z.enum(['added', 'rejected']),
  reason: z.string().nullable(),
  /** Where a rejected task was lost: a heuristic filter, the ROUGE-L gate (`rouge`, `duplicate`), instances. */
  stage: z.enum(['filter', 'gate', 'instances']).nullable(),
  /** Highest ROUGE-L to the pool at the gate (absent when a filter rejected it before the gate). */
  maxSimilarity: z.number().nullable(),
  /** Highest ROUGE-L to the seeds (added tasks). */
  seedSimilarity: z.number().nullable(),
  /** The gate's 3 most similar pool instructions. */
  neighbours: z.array(Neighbour),
  isClassification: z.boolean().nullable(),
  instances: z.int().nonnegative(),
  example: Instance.nullable(),
});
export type SampledTask = z.infer<typeof SampledTask>;

/** Evolved candidates of one operation: generated, eliminated by a rule of the paper, added with valid instances. */
export const OperationStats = z.object({
  generated: z.int().nonnegative(),
  eliminated: z.int().nonnegative(),
  added: z.int().nonnegative(),
});
export type OperationStats = z.infer<typeof OperationStats>;

/**
 * An Evol-Instruct run (`method: evol`, see `generate-instructions/evol.ts`): per operation, its
 * candidates (from the gate lines' lineage) and added tasks; per elimination rule, the candidates or
 * tasks it dropped; and the evolution tree's depth distribution of the added tasks (depth 1: a seed's or
 * an unevolved task's child).
 */
export const EvolutionStats = z.object({
  operations: z.record(EvolOperation, OperationStats),
  eliminations: z.record(EvolElimination, z.int().nonnegative()),
  depths: z.array(z.object({ depth: z.int().positive(), tasks: z.int().nonnegative() })),
  maxDepth: z.int().nonnegative(),
});
export type EvolutionStats = z.infer<typeof EvolutionStats>;

/** The whole `stats.json`. */
export const ReportStats = z.object({
  version: z.literal(1),
  run: z.object({
    runId: z.string(),
    pool: z.string(),
    status: z.string(),
    model: z.string(),
    profile: z.string(),
    /** How the run made its candidates (`functions/shared/methods.ts`); `self-instruct` before `method` existed. */
    method: Method,
    /** How its responses were written; `direct` before `responseStyle` existed. */
    responseStyle: ResponseStyle,
    rougeThreshold: z.number(),
    target: z.number().nullable(),
    maxIterations: z.number().nullable(),
    seed: z.string().nullable(),
    startedAt: z.string(),
    endedAt: z.string().nullable(),
    stopReason: z.string().nullable(),
    /** Token counts are estimates (the offline model, or a provider that did not report them). */
    tokensEstimated: z.boolean(),
    /** The quality checks the run had; null when off (`none`, or a run from before the check existed). */
    judgeModel: z.string().nullable(),
    minQuality: z.number().nullable(),
    embeddingModel: z.string().nullable(),
    safetyScreen: z.string().nullable(),
  }),
  totals: z.object({
    seeds: z.int().nonnegative(),
    iterations: z.int().nonnegative(),
    generated: z.int().nonnegative(),
    accepted: z.int().nonnegative(),
    added: z.int().nonnegative(),
    rejected: z.record(z.string(), z.int().nonnegative()),
    droppedAtInstances: z.record(z.string(), z.int().nonnegative()),
    poolSizeBefore: z.int().nonnegative(),
    poolSizeAfter: z.int().nonnegative(),
    acceptanceRate: z.number().nullable(),
    yieldRate: z.number().nullable(),
    instances: z.int().nonnegative(),
    usage: z.object({ calls: z.int(), inputTokens: z.int(), outputTokens: z.int() }),
    cost: Cost.extend({ modelUnpriced: z.boolean() }),
    per1000Added: z.object({ tokens: z.number(), usd: z.number() }).nullable(),
    /** The judge's verdicts on the run's tasks; null when the run had no judge. */
    quality: QualityStats.nullable(),
    /** What the safety screen flagged over the run; null when the run had no screen. */
    safety: SafetyCounts.nullable(),
  }),
  iterations: z.array(IterationStats),
  /** The near-duplicate gate's rejections; null when the run had no embedding model. */
  nearDuplicates: NearDuplicateStats.nullable(),
  /** The plateau stop rule and where it fired; null when the run had none. */
  plateau: PlateauStats.nullable(),
  /** Evol-Instruct's operations, eliminations and tree depths; null when the run's method is not `evol`. */
  evolution: EvolutionStats.nullable(),
  similarity: z.object({
    threshold: z.number(),
    /** Each added instruction's highest ROUGE-L F to the seed instructions (the paper's figure 3). */
    toSeeds: Distribution,
    /** The gate's highest ROUGE-L F to the pool: of the added instructions, and of those it rejected. */
    toPool: z.object({ added: Distribution, rejected: Distribution }),
  }),
  /** Lengths in words (whitespace-separated) of the added tasks. */
  lengths: z.object({
    instructions: Distribution,
    /** Non-empty inputs only, as in the paper; `emptyInputs` counts the rest. */
    inputs: Distribution,
    emptyInputs: z.int().nonnegative(),
    outputs: Distribution,
  }),
  /** Root verb → direct noun object of the added instructions (see `verb-noun.ts`). */
  verbNoun: z.object({
    instructions: z.int().nonnegative(),
    withStructure: z.int().nonnegative(),
    withoutStructure: z.int().nonnegative(),
    verbs: z.array(
      z.object({
        verb: z.string(),
        count: z.int().positive(),
        nouns: z.array(z.object({ noun: z.string(), count: z.int().positive() })),
      }),
    ),
  }),
  samples: z.object({ seed: z.string(), added: z.array(SampledTask), rejected: z.array(SampledTask) }),
});
export type ReportStats = z.infer<typeof ReportStats>;
