/**
 * Ports: the interfaces the stage cores depend on. Adapters (Bedrock, OpenAI-compatible,
 * the offline stand-in, S3, DynamoDB) implement them; unit tests use in-memory fakes.
 */

/** The pipeline steps that call a model; the offline model and the raw-reply log key on these. */
export type ModelStage = 'generate-instructions' | 'classify' | 'generate-instances';

/** One request to a text model. */
export interface ModelRequest {
  stage: ModelStage;
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

/** A text generation model. */
export interface TextModel {
  /** The model id as the user selected it, e.g. `offline` or `bedrock:amazon.nova-micro-v1:0`. */
  readonly id: string;
  generate(request: ModelRequest): Promise<ModelReply>;
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
  createdAt: string;
}

/** The run record's counter maps, each a flat map of name → number. */
export type CounterMap = 'counts' | 'usage' | 'stageUsage' | 'cost';

/** What "Save iteration" adds to a run record. */
export interface IterationUpdate {
  /** Stored as `iterations.<n>`. */
  stats: Record<string, unknown>;
  /** Added to the run's counter maps. */
  increments: Partial<Record<CounterMap, Record<string, number>>>;
}

/** The outcome of asking for a pool's lease. */
export type PoolLease = { taken: true } | { taken: false; holder: string; until: string };

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
  /** Per iteration: counts, usage, cost. */
  iterations?: Record<string, Record<string, unknown>>;
  exportPrefix?: string;
}

/** The pool and run records (DynamoDB). */
export interface PoolStore {
  /** Stores the task unless a task with the same id exists; returns whether it was stored. */
  putTaskIfAbsent(task: PoolTask): Promise<boolean>;
  getTasks(pool: string, ids: readonly string[]): Promise<PoolTask[]>;
  updateTask(task: PoolTask): Promise<void>;
  /** Every task of a pool, in id order, page by page. */
  listTasks(pool: string): AsyncIterable<PoolTask>;
  /** Number of complete tasks of the pool (seeds included). */
  countComplete(pool: string): Promise<number>;
  addToPoolCount(pool: string, complete: number): Promise<void>;
  /**
   * Takes or renews the pool's lease for `runId` until `until`, unless another run holds one that has
   * not expired at `now`: one run grows a pool at a time (its ROUGE-L index is read, extended and written
   * back each iteration).
   */
  leasePool(pool: string, runId: string, until: Date, now: Date): Promise<PoolLease>;
  /** Gives the lease up if `runId` holds it; with `runId` undefined, whoever holds it. */
  releasePool(pool: string, runId: string | undefined): Promise<void>;
  putRun(run: RunRecord): Promise<void>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  /**
   * Adds an iteration to the run record, once: its stats under `iterations.<n>` and its `increments`
   * to the run's counter maps. A retried call for the same iteration changes nothing and returns false.
   */
  addIteration(runId: string, iteration: number, update: IterationUpdate): Promise<boolean>;
  finishRun(
    runId: string,
    patch: Pick<RunRecord, 'status' | 'stopReason' | 'error' | 'cause' | 'exportPrefix' | 'iteration'>,
  ): Promise<void>;
}
