/**
 * Ports: the interfaces the stage cores depend on. Adapters (Bedrock, OpenAI-compatible,
 * the offline stand-in, S3, DynamoDB) implement them; unit tests use in-memory fakes.
 */

import type { IterationRecord } from './records.ts';
import type { DocumentSource, Lineage } from './schemas.ts';

/** The pipeline steps that call a model; the offline model and the raw-reply log key on these. */
export type ModelStage = 'generate-instructions' | 'classify' | 'generate-instances' | 'judge' | 'teach';

/** The step that calls the judge model (inside "Generate instances", see `generate-instances/judge.ts`). */
export const JUDGE_STAGE = 'judge' satisfies ModelStage;

/**
 * The step that calls the teacher model (inside "Generate instances", for `responseStyle` `explained`; see
 * `generate-instances/explain.ts`).
 */
export const TEACH_STAGE = 'teach' satisfies ModelStage;

/** The step that calls the embedding model ("Filter and deduplicate"'s near-duplicate gate). */
export const EMBEDDING_STAGE = 'embed-instructions';

/**
 * The step that calls a billed safety screen (Amazon Bedrock Guardrails' `ApplyGuardrail`, in "Filter
 * and deduplicate" and "Generate instances"); its calls' input tokens are the guardrail's billed text
 * units (see `safety.ts`).
 */
export const SAFETY_STAGE = 'screen-safety';

/**
 * Which prompt format a request is: the task (`instructions`, `classify`, `instances`) and the prompt a
 * profile renders for it (the paper's completion prompts are shared by `self-instruct` and `alpaca` where
 * Alpaca keeps them). The offline model writes its reply by this tag, as a real model would by reading the
 * prompt; real providers ignore it, and it is not part of the prompt hash (`promptHash`).
 */
export type ModelFormat =
  | 'instructions/self-instruct'
  | 'instructions/alpaca'
  | 'instructions/default'
  | 'classify/self-instruct'
  | 'classify/default'
  | 'instances/self-instruct-classification'
  | 'instances/self-instruct-generation'
  | 'instances/default-classification'
  | 'instances/default-generation'
  | 'judge/default'
  | 'teach/explained'
  | 'backtranslate/default'
  | 'evol/evolve'
  | 'evol/equal';

/** One request to a text model. */
export interface ModelRequest {
  stage: ModelStage;
  /** The prompt format of this request (see `ModelFormat`). */
  format: ModelFormat;
  /**
   * `completion`: `prompt` is raw text the model continues (the paper's GPT-3 style);
   * `chat`: `prompt` is the user message, `system` the system message.
   */
  kind: 'chat' | 'completion';
  system?: string;
  prompt: string;
  temperature: number;
  topP: number;
  maxTokens: number;
  stop?: string[];
  /** Ask for a JSON object as the reply (chat models that support it). */
  json?: boolean;
}

/** The prompt of a request, as a profile's task renders it; the caller adds the stage and the sampling parameters. */
export type ModelPrompt = Pick<ModelRequest, 'format' | 'kind' | 'system' | 'prompt' | 'json'>;

/** Token counts of one call; `estimated` when the provider did not report them. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  estimated: boolean;
}

/** A model's reply. `finish: 'length'` means the reply was cut by `maxTokens`. */
export interface ModelReply {
  text: string;
  finish: 'stop' | 'length';
  usage: TokenUsage;
  latencyMs: number;
  model: string;
}

/** What a stage's parser reads of a reply. */
export type ReplyText = Pick<ModelReply, 'text' | 'finish'>;

/** A text generation model. */
/** What a stage knows about a call besides its request: the logical call it is (see `ModelCalls`). */
export interface CallContext {
  /** `<iteration>#<scope>#<key>`, when the stage named the call. */
  callKey?: string;
}

export interface TextModel {
  /** The model id as the user selected it, e.g. `offline` or `bedrock:amazon.nova-micro-v1:0`. */
  readonly id: string;
  generate(request: ModelRequest, context?: CallContext): Promise<ModelReply>;
  /**
   * A replay without a fallback: how many instruction-generation calls its recording holds for an
   * iteration, so that the re-run makes exactly those (see `models/replay.ts`).
   */
  recordedInstructionCalls?(iteration: number): Promise<number | undefined>;
}

/** Object storage (S3): seeds, pool snapshots and index, raw model replies, exports. */
export interface ObjectStore {
  /** The object's text, or `undefined` when there is no such key. */
  getText(key: string): Promise<string | undefined>;
  getBytes(key: string): Promise<Uint8Array | undefined>;
  put(key: string, body: string | Uint8Array, contentType?: string): Promise<void>;
  copy(fromKey: string, toKey: string): Promise<void>;
  /** Every key under `prefix`, in key order. */
  list(prefix: string): Promise<string[]>;
}

/** Objects written and read as streams, for files too large to hold in memory (the export's). */
export interface ObjectStreams {
  /**
   * Writes `body`'s chunks, in order, as the object. It appears whole or not at all, and a failed write
   * leaves nothing behind (on S3 a multipart upload, aborted on error).
   */
  upload(key: string, body: AsyncIterable<string | Uint8Array>, contentType?: string): Promise<void>;
  /** The object's bytes as they arrive, or `undefined` when there is no such key. */
  download(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
}

/** A task of the pool, one DynamoDB item. */
export interface PoolTask {
  /** Stable id derived from the normalized instruction: the same instruction can't be stored twice. */
  id: string;
  pool: string;
  instruction: string;
  source: 'seed' | 'machine';
  /** `pending` until its instances are generated; `rejected` when none survived the instance filters. */
  status: 'pending' | 'complete' | 'rejected';
  rejectReason?: string;
  isClassification?: boolean;
  instances: { input: string; output: string }[];
  /** Fields a profile generated together with the instruction (Alpaca's batched generation). */
  proposed?: { input?: string; output?: string; isClassification?: boolean };
  name?: string;
  runId?: string;
  iteration?: number;
  maxSimilarity?: number;
  mostSimilar?: { instruction: string; score: number };
  avgSimilarity?: number;
  /** Cosine to its nearest instruction by embedding when it was accepted (the near-duplicate gate's). */
  nearestCosine?: number;
  /** The passage of the user's documents it was made from (method `backtranslate`). */
  document?: DocumentSource;
  /**
   * `<run>#<iteration>` of the iteration that wrote the task, until that iteration commits (see
   * `PoolMeta.commit`): a staged task is not part of the pool yet, and no reader sees it.
   */
  staged?: string;
  /** What generating the task's instances dropped or lost, by reason (summed into the run's counts). */
  outcome?: Record<string, number>;
  /**
   * The instruction's root verb and direct noun object (the paper's diversity analysis), found when the
   * task completes; `null` when it has none (a question, a statement), absent when not computed.
   */
  verbNoun?: { verb: string; noun: string } | null;
  /**
   * The judge's verdict on the task with its instances (see `generate-instances/judge.ts`); absent when
   * it was not judged: the judge off, its verdict unparseable, or its call lost.
   */
  quality?: TaskQuality;
  /**
   * How its instances' outputs were written: `explained` by the teacher model under `systemMessage` (see
   * `generate-instances/explain.ts`); absent for direct responses.
   */
  responseStyle?: 'direct' | 'explained';
  /** The system message the teacher wrote the outputs under (explained responses only). */
  systemMessage?: string;
  /** An evolved task's parent, operation and depth (`method: evol`); absent for other tasks. */
  lineage?: Lineage;
  createdAt: string;
}

/**
 * A judge's verdict on one task: the Self-Instruct paper's three audit questions (section 4.2: does the
 * instruction describe a valid task, is the input appropriate for it, is the output a correct and
 * acceptable response) and an overall score from 1 to 5 with a one-sentence reason.
 */
export interface TaskQuality {
  score: number;
  instructionValid: boolean;
  inputAppropriate: boolean;
  outputCorrect: boolean;
  reason: string;
}

/** The run record's counter maps, each a flat map of name → number. */
export type CounterMap = 'counts' | 'usage' | 'stageUsage' | 'cost';

/** What "Save iteration" adds to a run record. */
export interface IterationUpdate {
  /** Stored in an item of the iteration's own, so the run item stays small however many iterations run. */
  stats: IterationRecord;
  /** Added to the run's counter maps. */
  increments: Partial<Record<CounterMap, Record<string, number>>>;
}

/** The outcome of asking for a pool's lease: the fencing token of a lease taken. */
export type PoolLease =
  | { taken: true; fence: number; previous?: { runId: string; until: string } }
  | { taken: false; holder: string; until: string };

/**
 * A pool's `META` item: the single commit point of the pool. A task counts once the iteration that
 * staged it has committed; the counters and the pointers to the committed seeds and ROUGE-L index
 * change in one conditional write.
 */
export interface PoolMeta {
  /** Complete tasks of the pool, seeds included: those of every committed iteration. */
  taskCount: number;
  /** Seed tasks of the pool. */
  seedCount: number;
  /** Fencing token: incremented whenever a run takes the lease from another (or from nobody). */
  fence: number;
  /** The run growing the pool, until when. */
  lease?: { runId: string; until: string };
  /** The last committed iteration (`iteration` 0: a run's seeds). A pool exists once it has one. */
  commit?: { runId: string; iteration: number };
  /** The committed seed list and ROUGE-L index (S3 keys written under a new name by each commit). */
  seedsKey?: string;
  indexKey?: string;
  /** The committed vectors of the near-duplicate gate (`VectorIndex`), once a run embedded the pool. */
  vectorsKey?: string;
}

/** One iteration's commit: what it adds to the pool, under the lease of `runId` with token `fence`. */
export interface PoolCommit {
  runId: string;
  iteration: number;
  fence: number;
  /** Complete tasks the iteration adds (counted from the task items). */
  complete: number;
  /** Of which seed tasks. */
  seeds?: number;
  seedsKey?: string;
  indexKey?: string;
  vectorsKey?: string;
}

/** A billed model call as stored: usage at once, the reply so that a retried attempt need not pay again. */
export interface StoredCall {
  /** `<iteration>#<scope>#<key>`: the same logical call of a retried or duplicated stage has the same one. */
  callKey: string;
  /** Unique per billed call. */
  callId: string;
  stage: ModelStage | typeof EMBEDDING_STAGE | typeof SAFETY_STAGE;
  iteration: number;
  promptHash: string;
  model: string;
  /** The reply text; absent when too large to keep (the call is then made again by a retry). */
  reply?: string;
  finish: 'stop' | 'length';
  inputTokens: number;
  outputTokens: number;
  estimated: boolean;
  latencyMs: number;
  at: string;
  /** Answered by a batch job (batch mode): billed at the provider's batch price. */
  batch?: boolean;
}

/**
 * Batch mode's note of one job's submit (`PoolStore.noteBatchSubmit`): when its first attempt began to
 * start the job, and the job's id once started.
 */
export interface BatchSubmitNote {
  startedAt: string;
  jobId?: string;
}

/** A run's record: status, configuration and counters. */
export interface RunRecord {
  runId: string;
  pool: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  config?: Record<string, unknown>;
  startedAt: string;
  endedAt?: string;
  iteration?: number;
  stopReason?: string;
  error?: string;
  cause?: string;
  counts?: Record<string, number>;
  /** Calls and tokens of the whole run. */
  usage?: Record<string, number>;
  /** The same per pipeline step, keyed `<stage>:<calls|inputTokens|outputTokens>`. */
  stageUsage?: Record<string, number>;
  /** Estimated USD: `model`, `aws`, and `model:<stage>`. */
  cost?: Record<string, number>;
  /**
   * Per iteration: counts, usage, cost, as runs saved before iterations had items of their own kept
   * them. Read them with `PoolStore.getIterations`, which includes these.
   */
  iterations?: Record<string, IterationRecord>;
  exportPrefix?: string;
  /** What "Prepare run" repaired in the pool before the run started (see `recoverPool`). */
  repaired?: string[];
}

/** Step Functions' word on an execution (`DescribeExecution`): the ground truth of whether it runs. */
export interface Executions {
  /** The status of the execution `executionArn`: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED … */
  status(executionArn: string): Promise<string>;
}

/** The result of a conditional commit. */
export type CommitResult = 'committed' | 'already-committed' | 'lease-lost';

/**
 * The pool and run records (DynamoDB). Every write that changes the pool is conditional: tasks are
 * staged under their iteration's marker, move `pending → complete | rejected` once, and join the pool
 * with their iteration's commit on `META`.
 */
export interface PoolStore {
  /** The pool's `META` item (strongly consistent), or `undefined` for a pool never leased. */
  getMeta(pool: string): Promise<PoolMeta | undefined>;
  /**
   * Takes the pool's lease for `runId` until `until` (a new fencing token), or renews it when `runId`
   * holds it (same token), unless another run holds one that has not expired at `now` and is not
   * `abandoned` (the holder the caller knows has ended).
   */
  takeLease(pool: string, runId: string, until: Date, now: Date, abandoned?: string): Promise<PoolLease>;
  /** Extends the lease while `runId` holds it with token `fence`; false when it lost it. */
  renewLease(pool: string, runId: string, fence: number, until: Date): Promise<boolean>;
  /** Gives the lease up if `runId` holds it; with `runId` undefined, whoever holds it. */
  releasePool(pool: string, runId: string | undefined): Promise<void>;
  /**
   * Takes back for `runId` a lease it gave up, while the pool is free and its token is still `fence`
   * (no run has taken the pool since); false otherwise. Only for a redriven execution (see `holdPool`).
   */
  resumeLease(pool: string, runId: string, fence: number, until: Date): Promise<boolean>;
  /** Marks an ended run RUNNING again (its execution was redriven), unless it has succeeded. */
  reopenRun(runId: string): Promise<void>;
  /**
   * Commits an iteration: adds its complete tasks to the pool's count and points at its seeds and
   * index, in one conditional write that holds only while `runId` holds the lease with `fence` and has
   * not committed this iteration (or a later one) yet.
   */
  commit(pool: string, commit: PoolCommit): Promise<CommitResult>;
  /** Stores the task unless a task with the same id exists; returns whether it was stored. */
  putTaskIfAbsent(task: PoolTask): Promise<boolean>;
  /** Replaces a task still staged under `staged` (left by a dead run); false when it is not. */
  replaceStaged(task: PoolTask, staged: string): Promise<boolean>;
  /** Moves a task `pending → complete | rejected` while it is staged under `task.staged`; false otherwise. */
  finishTask(task: PoolTask): Promise<boolean>;
  /** Removes the staged marker `staged` from these tasks (after their iteration committed). */
  clearStaged(pool: string, ids: readonly string[], staged: string): Promise<void>;
  /** Deletes a task still staged under `staged`; false when it is not. */
  deleteStaged(pool: string, id: string, staged: string): Promise<boolean>;
  /** Tasks by id (strongly consistent), staged or not, in the order of `ids`. */
  getTasks(pool: string, ids: readonly string[]): Promise<PoolTask[]>;
  /** Every committed task of a pool (staged ones left out), in id order, page by page. */
  listTasks(pool: string): AsyncIterable<PoolTask>;
  /** Every staged task of a pool: id, marker and status. */
  listStaged(pool: string): AsyncIterable<Pick<PoolTask, 'id' | 'staged' | 'status'>>;
  /** Number of complete tasks of the pool (seeds included), as committed. */
  countComplete(pool: string): Promise<number>;
  /**
   * Batch mode, for a provider without an idempotency token (OpenAI's Batch API): notes that a submit of
   * job `job` (named per run and iteration) begins at `at`, unless an earlier attempt did: then it
   * returns that attempt's note (its time, and the job id once `recordBatchJob` stored it) and changes
   * nothing. Undefined for the first attempt.
   */
  noteBatchSubmit(runId: string, job: string, at: string): Promise<BatchSubmitNote | undefined>;
  /** Stores the id of the job `job`'s submit started (see `noteBatchSubmit`). */
  recordBatchJob(runId: string, job: string, jobId: string): Promise<void>;
  /** Records a billed call once (a repeated write of the same `callId` changes nothing). */
  putCall(runId: string, call: StoredCall): Promise<void>;
  /** The run's recorded calls whose `callKey` starts with `prefix` (all of them for `''`). */
  listCalls(runId: string, prefix: string): Promise<StoredCall[]>;
  putRun(run: RunRecord): Promise<void>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  /**
   * Adds an iteration to the run record, once: its stats in an item of its own and its `increments` to
   * the run's counter maps. A retried call for the same iteration changes nothing and returns false;
   * one that finds the iteration's item written but the counters not (a crash between the two) adds the
   * increments stored with the item, so counters and iteration items always agree.
   */
  addIteration(runId: string, iteration: number, update: IterationUpdate): Promise<boolean>;
  /** The run's iterations by number (as strings): their stats. */
  getIterations(runId: string): Promise<Record<string, IterationRecord>>;
  finishRun(
    runId: string,
    patch: Pick<
      RunRecord,
      'status' | 'stopReason' | 'error' | 'cause' | 'exportPrefix' | 'iteration' | 'usage' | 'stageUsage'
    >,
  ): Promise<void>;
}
