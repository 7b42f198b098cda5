/**
 * The zod schemas that are the single source of truth for seed files, pool records,
 * run input and every stage's input and output. Types come from `z.infer`.
 */
import { z } from 'zod';
import { MAX_BATCH_POLL_SECONDS } from './execution-limits.ts';
import { DOCUMENTS_PREFIX, PRICE_TABLE_PREFIX, SEED_FILE_PREFIXES, TEMPLATES_PREFIX } from './keys.ts';
import type { PoolTask } from './ports.ts';
import { hasUrlCredentials } from './urls.ts';

/** The three prompt/parser/filter profiles (see `profiles.ts`). */
export const ProfileName = z.enum(['self-instruct', 'alpaca', 'default']);
export type ProfileName = z.infer<typeof ProfileName>;

/**
 * How a run makes its candidates and their responses (see `methods.ts`): `self-instruct` bootstraps new
 * instructions from demonstrations (the profile then fixes prompts, parsers and filters), `evol` rewrites
 * pool instructions (Evol-Instruct, Xu et al., 2023), `backtranslate` writes the instruction each passage
 * of the user's documents answers (Humpback, Li et al., 2023).
 */
export const Method = z.enum(['self-instruct', 'evol', 'backtranslate']);
export type Method = z.infer<typeof Method>;

/**
 * How the responses of a run's instances are written (see `generate-instances/explain.ts`): `direct`, by
 * the instance stage's model as the profile asks; `explained`, rewritten by a teacher model under a system
 * message chosen per task type, as Orca's explanation traces (Mukherjee et al., 2023).
 */
export const ResponseStyle = z.enum(['direct', 'explained']);
export type ResponseStyle = z.infer<typeof ResponseStyle>;

/**
 * The evolving operations of Evol-Instruct (Xu et al., 2023): five in-depth ones that make an instruction
 * harder, and in-breadth, which writes a new, rarer instruction of the same domain (see
 * `generate-instructions/evol.ts`).
 */
export const EvolOperation = z.enum([
  'add-constraints',
  'deepen',
  'concretize',
  'increase-reasoning',
  'complicate-input',
  'breadth',
]);
export type EvolOperation = z.infer<typeof EvolOperation>;

/**
 * Where an evolved task comes from: the pool task it was evolved from (its id), the operation, and its
 * depth in the evolution tree (its parent's depth + 1; seeds and tasks not made by evolution are depth 0).
 */
export const Lineage = z.object({
  parent: z.string().min(1),
  operation: EvolOperation,
  depth: z.int().positive(),
});
export type Lineage = z.infer<typeof Lineage>;

/**
 * Evol-Instruct's elimination rules, each a counted reason (see `generate-instructions/evol.ts` and
 * `generate-instances/evol.ts`): `evol-no-gain` (the model judged the evolution equal to its parent),
 * `evol-copied-prompt` (the evolution copies the evolving prompt's own words), `evol-could-not-answer`
 * (a response apologizes and is short), `evol-stopwords-only` (a response of punctuation and stop words).
 */
export const EvolElimination = z.enum([
  'evol-no-gain',
  'evol-copied-prompt',
  'evol-could-not-answer',
  'evol-stopwords-only',
]);
export type EvolElimination = z.infer<typeof EvolElimination>;

/** One input/output example of a task. */
export const Instance = z.object({
  input: z.string(),
  output: z.string(),
});
export type Instance = z.infer<typeof Instance>;

/**
 * One line of a seed file in the original Self-Instruct format
 * (`seed_tasks.jsonl`: id, name, instruction, instances, is_classification).
 */
export const SeedTask = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  instruction: z.string().trim().min(1),
  instances: z.array(Instance).min(1),
  is_classification: z.boolean(),
});
export type SeedTask = z.infer<typeof SeedTask>;

/** A record of Stanford Alpaca's JSON format (`alpaca_data.json`), also accepted as a seed file. */
export const AlpacaTask = z.object({
  instruction: z.string().trim().min(1),
  input: z.string(),
  output: z.string().min(1),
});
export type AlpacaTask = z.infer<typeof AlpacaTask>;

/**
 * Where a backtranslated task comes from: the document's key, the character span [start, end) of its
 * passage in the document's extracted text (`functions/shared/documents/`), and how the task uses it:
 * `output` (the passage is the task's output, Humpback's self-augmentation) or `grounding` (a question and
 * answer the model drew from the passage).
 */
export const DocumentSource = z.object({
  document: z.string().min(1),
  span: z.tuple([z.int().nonnegative(), z.int().nonnegative()]),
  use: z.enum(['output', 'grounding']),
});
export type DocumentSource = z.infer<typeof DocumentSource>;

/**
 * A task as a model proposed it, before filtering. Profiles that generate more than the
 * instruction in one reply (Alpaca's batched generation, our JSON profile) fill the optional fields,
 * and the instance stage then skips the model calls it no longer needs.
 */
export const Candidate = z.object({
  instruction: z.string(),
  input: z.string().optional(),
  output: z.string().optional(),
  isClassification: z.boolean().optional(),
  /** The passage of the user's documents it was made from (method `backtranslate`). */
  document: DocumentSource.optional(),
  /** An evolved candidate's parent, operation and depth (`method: evol`). */
  lineage: Lineage.optional(),
  /** An elimination rule that dropped it before the filters (`method: evol`: no gain, copied prompt). */
  eliminated: EvolElimination.optional(),
  /** `method: evol`: the model's information-gain verdict on it was missing or unreadable (kept, counted). */
  gainUnparseable: z.literal(true).optional(),
});
export type Candidate = z.infer<typeof Candidate>;

/** Pool names become S3 prefixes and DynamoDB keys: keep them simple. */
/**
 * Step Functions runs at most this many iterations of an inline Map state at once, whatever its
 * `MaxConcurrency`: the bound of `mapConcurrency`.
 */
export const INLINE_MAP_MAX_CONCURRENCY = 40;

/**
 * Default pool size from which the gate runs sharded (`shardGateAbove`): where the largest iteration the
 * schema allows (5,000 prompts, about 50,000 candidates) would gate for about 5 minutes in one function
 * (174 M pairs per CPU-second, `npm run bench:shards`); an iteration of the default 200 prompts gates a
 * pool of 1M in about 11 s, less than the sharded path's own steps save (README, "The gate in shards").
 */
export const SHARD_GATE_ABOVE = 1_000_000;

/** What the `diversityPlateau` rule watches (see `functions/save-iteration/diversity.ts`). */
export const PlateauMetric = z.enum(['new-pairs', 'new-clusters']);
export type PlateauMetric = z.infer<typeof PlateauMetric>;

export const PoolName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'use 1-63 lowercase letters, digits or dashes, starting with a letter or digit',
  );

/**
 * The input of one run, as given in the Step Functions console, by the upload trigger, by the nightly
 * schedule or by the CLI. Every field has a default, so `{}` is a valid input. Exported as
 * `docs/run-input.schema.json`.
 */
export const RunInput = z
  .object({
    pool: PoolName.optional().describe(
      'Name of the pool to grow. Default: derived from `seedKey` (`seeds/<pool>/…`), else "default".',
    ),
    seedKey: z
      .string()
      .min(1)
      .max(1024)
      .regex(
        new RegExp(`^(${SEED_FILE_PREFIXES.join('|')})`),
        `must be under ${SEED_FILE_PREFIXES.join(', ')} (the prefixes "Prepare run" may read)`,
      )
      .optional()
      .describe(
        `S3 key of the seed file (Self-Instruct JSON Lines or Alpaca JSON), under ${SEED_FILE_PREFIXES.join(', ')}. Default: none for a pool that exists (it grows from its own seeds), the bundled seeds for a new one.`,
      ),
    profile: ProfileName.default('default').describe(
      'Prompts, parsers and filters: self-instruct, alpaca or default.',
    ),
    method: Method.default('self-instruct').describe(
      'How candidates and responses are made: self-instruct (new instructions from demonstrations), evol (Evol-Instruct: evolve pool instructions) or backtranslate (instructions for passages of your documents).',
    ),
    documents: z
      .string()
      .max(1024)
      .regex(
        new RegExp(`^${DOCUMENTS_PREFIX}[a-z0-9][a-z0-9-]{0,62}/`),
        `must be under ${DOCUMENTS_PREFIX}<pool>/ (a document there, or the folder)`,
      )
      .optional()
      .describe(
        `Method backtranslate: the documents, a folder ${DOCUMENTS_PREFIX}<pool>/ or a document in it (the upload trigger passes the uploaded key); every document of that folder is split into passages. Default pool: <pool>. CLI: --documents <dir>.`,
      ),
    groundedQuestions: z
      .int()
      .min(0)
      .max(5)
      .default(0)
      .describe(
        'Method backtranslate: besides the instruction each passage answers, ask for up to this many question–answer pairs grounded in the passage (0: none).',
      ),
    model: z
      .string()
      .min(1)
      .max(2048)
      .refine(
        (model) => !hasUrlCredentials(model),
        'the model URL carries credentials (user:password@), which would be logged and stored with the run: remove them and put the API key in the secret (SelfInstruct/ModelApiKey) in AWS, or in SELFINSTRUCT_API_KEY locally',
      )
      .default('offline')
      .describe(
        'Model: offline | bedrock:<model id> | openai:<model> | openai-compatible:<model>@<base URL> | openai-completions:<model>[@<base URL>] | replay:<run id>[+<fallback model>]',
      ),
    target: z.int().min(1).max(1_000_000).default(300).describe('New tasks to add to the pool in this run.'),
    maxIterations: z.int().min(1).max(10_000).default(3).describe('Iteration cap.'),
    promptsPerIteration: z
      .int()
      .min(1)
      .max(5_000)
      .optional()
      .describe('Instruction-generation calls per iteration. Default: sized from the remaining target.'),
    maxPromptsPerIteration: z
      .int()
      .min(1)
      .max(5_000)
      .default(200)
      .describe('Upper bound of the adaptive size.'),
    rougeThreshold: z
      .number()
      .min(0)
      .max(1)
      .default(0.7)
      .describe('Reject a new instruction whose highest ROUGE-L F to the pool is strictly above this.'),
    embeddingModel: z
      .string()
      .min(1)
      .max(2048)
      .refine(
        (model) => !hasUrlCredentials(model),
        'the embedding model URL carries credentials (user:password@): put the API key in the secret instead',
      )
      .optional()
      .describe(
        "Embedding model of the near-duplicate gate: offline | bedrock:amazon.titan-embed-text-v2:0 | openai:<model> | openai-compatible:<model>@<base URL> | none (no near-duplicate gate). Default: the run's provider's (bedrock → Titan Text Embeddings V2, openai → text-embedding-3-small), else offline (pretrained word vectors).",
      ),
    embeddingThreshold: z
      .number()
      .min(0)
      .max(1)
      .default(0.9)
      .describe(
        'Reject a new instruction whose highest cosine to the pool (and to those accepted before it) is strictly above this (1: never).',
      ),
    safetyScreen: z
      .string()
      .min(1)
      .max(2048)
      .refine(
        (screen) => !hasUrlCredentials(screen),
        'the safety screen URL carries credentials (user:password@): put the API key in the secret instead',
      )
      .default('lexicon')
      .describe(
        'Screen of candidate instructions and generated instances: lexicon (a profanity word list, local) | bedrock-guardrail (Amazon Bedrock Guardrails, the guardrail of CDK context selfinstruct:guardrail; bedrock-guardrail:<id>:<version> for another version of it) | openai:<moderation model> | openai-compatible:<model>@<base URL> (a /moderations endpoint) | none. A flagged text is dropped as unsafe-<category>.',
      ),
    diverseDemonstrations: z
      .boolean()
      .optional()
      .describe(
        'Sample the machine demonstrations of instruction prompts across their leading verbs (each verb equally likely) instead of uniformly. Default: on for the default profile, off for the paper profiles.',
      ),
    newClusterCosine: z
      .number()
      .min(0)
      .max(1)
      .default(0.8)
      .describe(
        'Diversity per iteration: an added task whose highest cosine to the instructions before it is below this opens a new cluster (needs an embedding model).',
      ),
    diversityPlateau: z
      .union([
        z.literal(false),
        z
          .object({
            metric: PlateauMetric.default('new-pairs'),
            floor: z.number().min(0).max(1).default(0.05),
            iterations: z.int().min(1).max(100).default(3),
          })
          .strict(),
      ])
      .default({ metric: 'new-pairs', floor: 0.05, iterations: 3 })
      .describe(
        'Stop with "diversity plateau" when the metric (new-pairs: share of added tasks with a verb–noun pair new to the run; new-clusters: share opening a new cluster by embedding) stays below floor for that many iterations in a row; false: never.',
      ),
    judgeModel: z
      .string()
      .min(1)
      .max(2048)
      .refine(
        (model) => !hasUrlCredentials(model),
        'the judge model URL carries credentials (user:password@): put the API key in the secret instead',
      )
      .optional()
      .describe(
        "Model that judges each task (three audit questions and a 1–5 score): any model id `model` takes, or none (no judge). Default: the run's model.",
      ),
    responseStyle: ResponseStyle.default('direct').describe(
      "How responses are written: direct (the instance stage's outputs) or explained (a teacher model rewrites each output as a step-by-step explanation under a system message chosen per task type, after Orca).",
    ),
    teacherModel: z
      .string()
      .min(1)
      .max(2048)
      .refine(
        (model) => !hasUrlCredentials(model),
        'the teacher model URL carries credentials (user:password@): put the API key in the secret instead',
      )
      .optional()
      .describe(
        "Model that writes the explained responses (responseStyle explained): any model id `model` takes. Default: the run's model.",
      ),
    minQuality: z
      .number()
      .min(1)
      .max(5)
      .optional()
      .describe(
        "Reject a task the judge scored below this (reason low-quality); unscored tasks are kept. Default: 4 for method backtranslate (Humpback's curation), else none (the judge only scores).",
      ),
    temperature: z
      .number()
      .min(0)
      .max(2)
      .optional()
      .describe('Overrides the profile temperature of every call.'),
    topP: z.number().min(0).max(1).optional().describe('Overrides the profile top-p of every call.'),
    bannedWords: z
      .array(z.string().min(1).max(64))
      .max(200)
      .optional()
      .describe('Banned words of the default profile (the paper and Alpaca profiles fix theirs).'),
    instanceRounds: z
      .int()
      .min(1)
      .max(5)
      .default(1)
      .describe('Instance-generation calls per task; more rounds give more diverse instances.'),
    maxCostUsd: z
      .number()
      .positive()
      .optional()
      .describe(
        'Budget in USD (model + AWS, estimated): the loop stops before an iteration that would cross it. Default: none.',
      ),
    priceTableKey: z
      .string()
      .max(1024)
      .startsWith(
        PRICE_TABLE_PREFIX,
        `must be under ${PRICE_TABLE_PREFIX} (where the CLI uploads --prices, and the only prefix the stages may read price tables from)`,
      )
      .optional()
      .describe(
        `S3 key of a JSON price table merged over the shipped one (functions/shared/pricing/prices.json), under ${PRICE_TABLE_PREFIX}.`,
      ),
    templates: z
      .string()
      .max(1024)
      .regex(
        new RegExp(`^${TEMPLATES_PREFIX}(?:[^/]+/)+$`),
        `must be a folder under ${TEMPLATES_PREFIX}, ending with "/" (the only prefix the stages may read templates from)`,
      )
      .optional()
      .describe(
        `S3 folder of prompt template files, under ${TEMPLATES_PREFIX} (e.g. ${TEMPLATES_PREFIX}legal/): each replaces the shipped template of the same file name; files not given keep the shipped ones. Checked by "Prepare run" (names, placeholders) before any model call. CLI: --templates <dir>.`,
      ),
    mapConcurrency: z
      .int()
      .min(1)
      .max(
        INLINE_MAP_MAX_CONCURRENCY,
        `an inline Map state runs at most ${INLINE_MAP_MAX_CONCURRENCY} items at once: use at most ${INLINE_MAP_MAX_CONCURRENCY}`,
      )
      .default(10)
      .describe(
        `Map state MaxConcurrency (chunks at once), at most ${INLINE_MAP_MAX_CONCURRENCY} (and the deployment's caps).`,
      ),
    chunkSize: z.int().min(1).max(500).default(40).describe('Instructions per Map item.'),
    instructionBatchSize: z
      .int()
      .min(1)
      .max(1000)
      // README "Cost": 40 with callConcurrency 20 took a 52K `default` run on Nova Micro from 10.8% AWS
      // (20 and 8) to 7.5% and its projected time from 3 h 50 min to 2 h 55 min.
      .default(40)
      .describe(
        'Instruction-generation calls per item of the "Generate instructions" Map: an iteration\'s calls run as batches of this many, mapConcurrency batches at once, each with callConcurrency calls in flight.',
      ),
    shardGateAbove: z
      .int()
      .min(0)
      .default(SHARD_GATE_ABOVE)
      .describe(
        `Pool size (tasks) from which the ROUGE-L gate runs as parallel shard Lambdas ("Gate in shards?"); below it, in "Filter and deduplicate". Default ${SHARD_GATE_ABOVE}: where one iteration's gate in one Lambda would pass a few minutes (README, "The gate in shards").`,
      ),
    gateShards: z
      .int()
      .min(1)
      .max(INLINE_MAP_MAX_CONCURRENCY)
      .default(16)
      .describe(
        `Shards of the sharded gate (Lambdas scoring one range of the pool each, at once), at most ${INLINE_MAP_MAX_CONCURRENCY}.`,
      ),
    batch: z
      .boolean()
      .default(false)
      .describe(
        'Generate the instances of each iteration through the provider\'s batch API (Amazon Bedrock batch inference, OpenAI\'s Batch API; about half the on-demand price, minutes to hours per iteration): see README "Batch mode". CLI: --batch.',
      ),
    batchPollSeconds: z
      .int()
      .min(0)
      .max(MAX_BATCH_POLL_SECONDS)
      .default(60)
      .describe(
        "Batch mode: seconds between two looks at the batch job (the Wait state); the polls stop after the provider's 24 h job window.",
      ),
    callConcurrency: z
      .int()
      .min(1)
      .max(64)
      // README "Cost" (with instructionBatchSize 40): a batch's 40 calls in 2 rounds; past 20 nothing
      // shortens (the Map's calls are at the model's quota).
      .default(20)
      .describe(
        'Model calls at once inside one Lambda; mapConcurrency × callConcurrency is capped by the deployment.',
      ),
    seed: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe('Random seed for sampling and the offline model. Default: the run id.'),
    trigger: z.enum(['console', 'upload', 'schedule', 'cli']).default('console'),
  })
  .strict();
export type RunInput = z.input<typeof RunInput>;

/** The validated, defaulted run configuration carried in the execution state. */
export const RunConfig = RunInput.extend({
  pool: PoolName,
  seed: z.string().min(1),
  /** Resolved by `parseRunInput`; optional for the state of a run started before the gate existed. */
  embeddingModel: z.string().min(1).max(2048).optional(),
  /** Resolved by `parseRunInput` (the run's model unless given); absent in the state of a run started before the judge: no judge. */
  judgeModel: z.string().min(1).max(2048).optional(),
  /** Resolved by `parseRunInput` when `responseStyle` is `explained` (the run's model unless given). */
  teacherModel: z.string().min(1).max(2048).optional(),
  /**
   * Resolved by "Prepare run": the file names it found and checked under `templates`, which the model
   * stages get by key (they may not list the bucket).
   */
  templateFiles: z.array(z.string().min(1).max(256)).max(64).optional(),
});
export type RunConfig = z.infer<typeof RunConfig>;

/** Token usage summed over calls. */
export const Usage = z.object({
  calls: z.int().nonnegative(),
  inputTokens: z.int().nonnegative(),
  outputTokens: z.int().nonnegative(),
  estimated: z.boolean(),
});
export type Usage = z.infer<typeof Usage>;

/** Usage per pipeline step that calls a model (`generate-instructions`, `classify`, `generate-instances`). */
export const UsageByStage = z.record(z.string(), Usage);
export type UsageByStage = z.infer<typeof UsageByStage>;

/** Counts by outcome; keys are reasons (`rouge`, `too-short`, …) or outcomes. */
export const Counts = z.record(z.string(), z.int().nonnegative());
export type Counts = z.infer<typeof Counts>;

/** Adds every count of `source` into `target`, in place, and returns `target`. */
export function addCounts(target: Counts, source: Counts | undefined): Counts {
  for (const [key, n] of Object.entries(source ?? {})) target[key] = (target[key] ?? 0) + n;
  return target;
}

/** A task's counts as the run reads them: its status, its reject reason and its instance outcome. */
export function taskCounts(task: Pick<PoolTask, 'status' | 'rejectReason' | 'outcome'>): Counts {
  const counts: Counts = task.status === 'complete' ? { complete: 1 } : { rejected: 1 };
  if (task.status === 'rejected') counts[task.rejectReason ?? 'rejected-unknown'] = 1;
  return addCounts(counts, task.outcome);
}

/** Where a run stands, carried from iteration to iteration (small: it is in every state's payload). */
export const Progress = z.object({
  /** Iterations completed. */
  iteration: z.int().nonnegative(),
  /** Tasks this run added to the pool (with valid instances). */
  added: z.int().nonnegative(),
  /** Tasks in the pool (seeds + machine tasks with valid instances). */
  poolSize: z.int().nonnegative(),
  /** Complete tasks per instruction-generation call in the last iteration (sizes the next one). */
  yieldPerPrompt: z.number().nonnegative().optional(),
  /** Estimated USD spent so far (model + AWS). */
  costUsd: z.number().nonnegative().default(0),
  /** `costUsd` plus the last iteration's cost: what the run will have spent after one more like it. */
  projectedCostUsd: z.number().nonnegative().default(0),
  /** False when `projectedCostUsd` is over the run's `maxCostUsd`: "Enough instructions?" then stops. */
  withinBudget: z.boolean().default(true),
  /** The fencing token of the pool's lease this run holds (see `pool-lease.ts`). */
  fence: z.int().nonnegative().default(0),
  /** Iterations in a row, ending with the last, whose new diversity stayed below the plateau rule's floor. */
  lowDiversity: z.int().nonnegative().default(0),
  /** True when `lowDiversity` reached the rule's `iterations`: "Enough instructions?" then stops. */
  diversityPlateau: z.boolean().default(false),
  /**
   * Which execution of the run this is: 1 for the first; a run whose next iteration would not fit in
   * its execution's history goes on in a new execution, `<run>-2`, `<run>-3` … (see `execution-limits.ts`).
   */
  execution: z.int().positive().default(1),
  /** `iteration` when this execution began (0 for the first): its history holds the iterations since. */
  executionFirstIteration: z.int().nonnegative().default(0),
  /**
   * False when one more iteration (and the end after it) could cross the execution's history limit:
   * "Enough instructions?" then goes on in a new execution instead of looping.
   */
  withinHistory: z.boolean().default(true),
});
export type Progress = z.infer<typeof Progress>;

/** The execution state between iterations: everything a stage needs besides S3 and DynamoDB. */
export const RunState = z.object({
  runId: z.string().min(1),
  config: RunConfig,
  progress: Progress,
  /**
   * The ARN of the execution running the stage (`$$.Execution.Id`, set by the state machine in every
   * stage's payload, never carried round the loop): a redriven stage asks Step Functions about it
   * before it takes back the pool's lease (see `holdPool`).
   */
  execution: z.string().optional(),
});
export type RunState = z.infer<typeof RunState>;

/**
 * The input of a run's next execution: "Continue in a new execution" starts it with the run's state,
 * and its "Prepare run" takes the run up there (see `execution-limits.ts`).
 */
export const ContinuedRun = z.object({ continueRun: RunState });

/**
 * The name of the run's execution number `execution` (the first is the run id itself); the state
 * machine formats the same (`States.Format('{}-{}', …)` in `infra/workflow.ts`). At most 80 characters.
 */
export const executionName = (runId: string, execution: number) =>
  execution === 1 ? runId : `${runId}-${execution}`;
export const MAX_EXECUTION_NAME = 80;

/** The output of an execution that handed the run to the next one (`continuedAs` is its name). */
export const ContinuedAs = z.object({ runId: z.string().min(1), continuedAs: z.string().min(1) });

/** One Map item: a chunk of instruction ids of one iteration. */
export const Chunk = z.object({
  index: z.int().nonnegative(),
  ids: z.array(z.string().min(1)).min(1),
});
export type Chunk = z.infer<typeof Chunk>;

/** The input of "Save iteration": the run state and what the iteration's stages returned. */
export const SaveInput = RunState.extend({
  generated: z.object({
    prompts: z.int(),
    candidates: z.int(),
    malformed: z.int(),
    droppedByTruncation: z.int(),
    lost: z.int().default(0),
    /** Instruction calls a `replay:` model had no recording for (and no fallback). */
    notRecorded: z.int().optional(),
    usage: UsageByStage,
  }),
  gated: z.object({ chunks: z.array(Chunk), counts: Counts }),
  instances: z.array(z.object({ chunk: z.int(), counts: Counts, usage: UsageByStage })),
  /** When this execution started (`$$.Execution.StartTime`): its 7-day timeout counts from it. */
  executionStartTime: z.iso.datetime({ offset: true }).optional(),
});
export type SaveInput = z.infer<typeof SaveInput>;
