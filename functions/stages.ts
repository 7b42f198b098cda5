/**
 * The stage registry: one entry per Lambda function of the workflow, with what the rest of the project
 * needs to know about it: its state name, folder, size, whether it calls the model, and what it may
 * touch in S3 and DynamoDB. Plain data (no CDK import), so the stage bundles, the pricing model, the
 * CLI, the local stack and the tests import the same facts that `infra/workflow.ts` builds the functions
 * and their IAM grants from; the README's "Permissions" table is generated from it too
 * (`infra/permissions.ts`).
 *
 * The S3 access of a stage is the set of key prefixes (from `shared/keys.ts`) its code, and the shared
 * modules it calls, reads, writes and lists; nothing else in the bucket is granted to it.
 */

import { EXPORT_SIZED_FOR_TASKS, ephemeralStorageMbFor } from './export/spill-size.ts';
import {
  DOCUMENTS_PREFIX,
  EXPORTS_PREFIX,
  POOLS_PREFIX,
  PRICE_TABLE_PREFIX,
  RUNS_PREFIX,
  SEED_FILE_PREFIXES,
  TEMPLATES_PREFIX,
} from './shared/keys.ts';

/** What a stage may do in the bucket, by key prefix. */
export interface S3Access {
  /**
   * Prefixes it gets objects from. Granted with CDK's `grantRead`: `s3:GetObject*` under the prefix, and
   * `s3:List*`/`s3:GetBucket*` on the bucket, which is also what makes S3 answer a missing key with 404
   * (`NoSuchKey`, which the adapters read as "not there yet") rather than 403.
   */
  readonly read: readonly string[];
  /**
   * Prefixes it gets objects from by keys it is told, without listing the bucket: `s3:GetObject` there
   * and nothing else, so a missing key is AccessDenied (403), as S3 answers a role that may not list.
   * For a stage that must not enumerate the bucket, reading what another stage found.
   */
  readonly get: readonly string[];
  /** Prefixes it puts objects under (`grantPut`). A copy needs `read` on its source and `write` here. */
  readonly write: readonly string[];
  /**
   * Prefixes it lists (`ListObjectsV2`). S3 grants listing on the bucket, not on a prefix, and
   * `grantRead` includes it: every prefix here is also in `read`.
   */
  readonly list: readonly string[];
}

/** What a stage may do in the pool table: nothing, read items, or read and write them. */
export type TableAccess = 'none' | 'read' | 'readWrite';

/** One stage function. */
export interface StageSpec {
  /** The name of its Task state: what the console, the execution history and the progress view show. */
  readonly state: string;
  /** For a stage run by a Map state once per item, the Map state's name. */
  readonly mapState?: string;
  /**
   * Run as the Lambda target of an EventBridge rule on the execution's end rather than by a Task state:
   * `state` is then only its name (registry, logs), not a state of the definition.
   */
  readonly ruleTarget?: boolean;
  /** Construct id of the function in the stack. */
  readonly id: string;
  /** Folder under `functions/`: the entry is its `handler.ts`, its prompts are in its `prompts/`. */
  readonly folder: string;
  /** The function's description. */
  readonly description: string;
  /** Lambda memory in MB (also the size the AWS cost model bills). */
  readonly memoryMb: number;
  /** Lambda timeout, and the Task's timeout, in seconds. */
  readonly timeoutSeconds: number;
  /**
   * Lambda ephemeral storage (`/tmp`) in MB, when more than the free 512 MB (billed per GB-second above
   * it, `aws-usage.ts`).
   */
  readonly ephemeralStorageMb?: number;
  /**
   * Calls the text model: it alone may read the API key secret and invoke the deployed Bedrock model,
   * and it gets the operator's endpoint allow-list and concurrency cap.
   */
  readonly callsModel: boolean;
  /**
   * Calls the judge model (`judgeModel`, inside "Generate instances"): besides the text model's grants,
   * it may invoke the deployed Bedrock judge model when that is another model (`selfinstruct:judgeModel`).
   */
  readonly callsJudgeModel: boolean;
  /**
   * Calls the teacher model (`teacherModel`, explained responses, inside "Generate instances"): besides the
   * text model's grants, it may invoke the deployed Bedrock teacher model when that is another model
   * (`selfinstruct:teacherModel`).
   */
  readonly callsTeacherModel: boolean;
  /**
   * Calls the embedding model (the near-duplicate gate): it may read the API key secret and invoke the
   * deployed Bedrock embedding model (Titan Text Embeddings V2), and it gets the endpoint allow-list.
   */
  readonly callsEmbeddingModel: boolean;
  /**
   * Screens texts for safety (`functions/shared/safety.ts`): with a deployment guardrail (CDK context
   * `selfinstruct:guardrail`), it gets the guardrail's id and version and may apply that guardrail.
   */
  readonly screensSafety: boolean;
  readonly s3: S3Access;
  readonly dynamodb: TableAccess;
  /**
   * Drives batch jobs (batch mode, `BATCH_JOB_STATES`): may start a Bedrock batch inference job of the
   * deployed models, pass the batch service role to Bedrock, and read a job's status.
   */
  readonly batchJobs?: boolean;
  /**
   * May be the first stage of a redriven execution, so take back the pool's lease the run gave up when
   * it failed (`holdPool`): it may ask Step Functions about its own execution
   * (`states:DescribeExecution` on this state machine's executions).
   */
  readonly takesLeaseBack: boolean;
}

/** The stage functions, in pipeline order, "Record failure" last. */
export const STAGES = {
  prepare: {
    state: 'Prepare run',
    id: 'PrepareRun',
    folder: 'prepare',
    description: 'Validates the run input and seed file, records the run and seeds the pool',
    memoryMb: 1024,
    timeoutSeconds: 5 * 60,
    callsModel: false,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: false,
    screensSafety: false,
    // The seed file, the pool's seeds and index, a price table when the run has a budget, the run's
    // templates (listed, to check them), and a backtranslate run's documents (listed, split into the
    // passages it writes to the run's folder).
    s3: {
      read: [...SEED_FILE_PREFIXES, PRICE_TABLE_PREFIX, TEMPLATES_PREFIX, DOCUMENTS_PREFIX],
      get: [],
      write: [POOLS_PREFIX, RUNS_PREFIX],
      list: [TEMPLATES_PREFIX, DOCUMENTS_PREFIX],
    },
    dynamodb: 'readWrite',
    takesLeaseBack: false,
  },
  generateInstructions: {
    state: 'Generate a batch of instructions',
    mapState: 'Generate instructions',
    id: 'GenerateInstructions',
    folder: 'generate-instructions',
    description:
      "Plans the iteration's instruction calls in batches, asks the model for new instructions from seed and machine demonstrations (one batch per Map item), and collects the batches",
    // It waits on the model, and Lambda bills the wait by memory. `npm run bench:memory`: about 140 MiB
    // at a 52,000-instruction pool (Node.js and its modules ~100 MiB, the pool's index ~40 MiB more).
    memoryMb: 512,
    timeoutSeconds: 15 * 60,
    callsModel: true,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: false,
    screensSafety: false,
    // The pool's seeds and index, the run's templates (the files "Prepare run" found), a backtranslate
    // run's passages (by key, as "Prepare run" wrote them), the batches' objects (by key); the
    // iteration's candidates and raw calls, and each batch's.
    s3: { read: [POOLS_PREFIX], get: [TEMPLATES_PREFIX, RUNS_PREFIX], write: [RUNS_PREFIX], list: [] },
    // Per-call records (usage, replies), which a `replay:` model reads too.
    dynamodb: 'readWrite',
    takesLeaseBack: true,
  },
  filter: {
    state: 'Filter and deduplicate',
    id: 'FilterAndDeduplicate',
    folder: 'filter',
    description:
      'Heuristic filters, the sequential ROUGE-L gate and the near-duplicate gate (embeddings) against the pool',
    memoryMb: 3008,
    timeoutSeconds: 15 * 60,
    callsModel: false,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: true,
    screensSafety: true,
    // The pool's ROUGE-L index and vectors, the iteration's candidates; its decisions, index and vectors.
    s3: { read: [POOLS_PREFIX, RUNS_PREFIX], get: [], write: [RUNS_PREFIX], list: [] },
    // The pool's tasks and lease; the embedding calls' records.
    dynamodb: 'readWrite',
    takesLeaseBack: true,
  },
  gateShard: {
    state: 'Score a gate shard',
    mapState: 'Score gate shards',
    id: 'ScoreGateShard',
    folder: 'gate-shard',
    description:
      "Scores the iteration's survivors against one range of the pool's ROUGE-L index (the sharded gate)",
    // One full vCPU (Lambda gives 1 vCPU at 1,769 MB): the kernel is single-threaded; the range's
    // segments and the kernel's copy of them fit many times over.
    memoryMb: 1769,
    timeoutSeconds: 15 * 60,
    callsModel: false,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: false,
    screensSafety: false,
    // Its range's segments of the pool's index and the iteration's `gate-shards/` objects, by the keys
    // it is given (it lists nothing); its results under the same folder.
    s3: { read: [], get: [POOLS_PREFIX, RUNS_PREFIX], write: [RUNS_PREFIX], list: [] },
    dynamodb: 'none',
    takesLeaseBack: false,
  },
  generateInstances: {
    state: 'Generate instances for a chunk',
    mapState: 'Generate instances',
    id: 'GenerateInstances',
    folder: 'generate-instances',
    description:
      'Classifies one chunk of instructions, generates their instances (explained by the teacher) and judges the tasks; batch mode: submits and checks the batch job of the instance calls',
    // It waits on the model (see "Generate instructions"); `npm run bench:memory`: about 150 MiB for a
    // chunk of 40 with the judge, whatever the pool's size.
    memoryMb: 512,
    timeoutSeconds: 15 * 60,
    callsModel: true,
    callsJudgeModel: true,
    callsTeacherModel: true,
    callsEmbeddingModel: false,
    screensSafety: true,
    // The run's templates (the files "Prepare run" found: it lists nothing); the chunk's raw calls;
    // batch mode's steps (`BATCH_JOB_STATES`): the job's input and records, and its output by key.
    // Per-call records (which a `replay:` model reads) are in the table.
    s3: { read: [], get: [TEMPLATES_PREFIX, RUNS_PREFIX], write: [RUNS_PREFIX], list: [] },
    dynamodb: 'readWrite',
    takesLeaseBack: true,
    batchJobs: true,
  },
  saveIteration: {
    state: 'Save iteration',
    id: 'SaveIteration',
    folder: 'save-iteration',
    description: 'Adds the iteration to the pool and the run record',
    memoryMb: 1024,
    timeoutSeconds: 5 * 60,
    callsModel: false,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: false,
    screensSafety: false,
    // The iteration's index and vectors (copied to the pool's), the run's verb–noun pairs (diversity);
    // the price table of the cost.
    s3: { read: [RUNS_PREFIX, PRICE_TABLE_PREFIX], get: [], write: [POOLS_PREFIX, RUNS_PREFIX], list: [] },
    dynamodb: 'readWrite',
    takesLeaseBack: true,
  },
  exportDataset: {
    state: 'Export dataset',
    id: 'ExportDataset',
    folder: 'export',
    description: 'Writes the dataset exports and the run summary',
    memoryMb: 2048,
    timeoutSeconds: 15 * 60,
    // Its files spill to /tmp while it reads the pool: room for a pool of 1,000,000 tasks with headroom.
    ephemeralStorageMb: ephemeralStorageMbFor(EXPORT_SIZED_FOR_TASKS),
    callsModel: false,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: false,
    screensSafety: false,
    s3: { read: [], get: [], write: [EXPORTS_PREFIX], list: [] },
    dynamodb: 'readWrite',
    takesLeaseBack: true,
  },
  recordFailure: {
    state: 'Record failure',
    ruleTarget: true,
    id: 'RecordFailure',
    folder: 'record-failure',
    description:
      'Marks a failed, timed-out or aborted run with a readable cause and gives its pool back (EventBridge rule on the execution end)',
    memoryMb: 512,
    timeoutSeconds: 60,
    callsModel: false,
    callsJudgeModel: false,
    callsTeacherModel: false,
    callsEmbeddingModel: false,
    screensSafety: false,
    // Reads the run item (its pool), marks it failed, releases the pool's lease.
    s3: { read: [], get: [], write: [], list: [] },
    dynamodb: 'readWrite',
    takesLeaseBack: false,
  },
} as const satisfies Record<string, StageSpec>;

/** A stage's key in `STAGES`. */
export type StageKey = keyof typeof STAGES;

/** The states that run no function: the start, the loop's choice and the two ends, the gate's choice. */
export const CONTROL_STATES = {
  start: 'Start run',
  enough: 'Enough instructions?',
  done: 'Done',
  shardGate: 'Gate in shards?',
  /** The run goes on in a new execution (its history is full: see `execution-limits.ts`). */
  continue: 'Continue in a new execution',
  continued: 'Continued in a new execution',
} as const;

/**
 * The other states of "Generate instructions" as a Map of batches (`generate-instructions/batches.ts`):
 * the function's plan and collect steps around the Map (`STAGES.generateInstructions.mapState`).
 */
export const INSTRUCTION_BATCH_STATES = {
  plan: 'Plan instructions',
  collect: 'Collect instructions',
} as const;

/**
 * Batch mode's states before the instances Map (run input `batch`: the instance calls as one provider
 * batch job; not to be confused with the instruction batches above, a Map's items): the "Generate
 * instances" function's two steps (`submit`, `check`) and the choices and wait around them
 * (`infra/workflow.ts`).
 */
export const BATCH_JOB_STATES = {
  submit: 'Submit the instance batch',
  check: 'Check the instance batch',
  choice: 'Batch the instances?',
  submitted: 'Instance batch submitted?',
  wait: 'Wait for the instance batch',
  done: 'Batch done?',
} as const;

/**
 * The sharded gate's other states (`infra/sharded-gate.ts`): the Filter function's three steps and the
 * shard function's second Map (its first is `STAGES.gateShard`'s).
 */
export const SHARDED_GATE_STATES = {
  plan: 'Plan the gate shards',
  decide: 'Decide on the shard scores',
  rescoreMap: 'Score gate shards again',
  rescore: 'Score a gate shard again',
  merge: 'Filter and merge the shard scores',
} as const;
