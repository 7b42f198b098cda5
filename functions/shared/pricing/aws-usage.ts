/**
 * The AWS usage of a run as a function of its shape, read off the state machine (`infra/workflow.ts`)
 * and the stage cores, so it can estimate a run before it starts and account for one after it ended
 * (from the run's counts). Pure: no AWS, no clock.
 *
 * What one iteration does (README "How it works"; state names, memory sizes from `functions/stages.ts`):
 *
 * | state                           | Lambda | DynamoDB                                   | S3 GET                | S3 PUT/COPY                   |
 * | ------------------------------- | ------ | ------------------------------------------ | --------------------- | ----------------------------- |
 * | Plan instructions               | 1      | –                                          | –                     | –                             |
 * | Generate instructions (Map)     | –      | –                                          | –                     | –                             |
 * | … a batch (per batch)           | 1      | –                                          | pool seeds, index     | candidates, raw replies, result |
 * | Collect instructions            | 1      | –                                          | 3 per batch           | candidates, raw replies       |
 * | Filter and deduplicate          | 1      | 1 conditional put per accepted instruction | candidates, index     | gate log, iteration index     |
 * | Generate instances (Map)        | –      | –                                          | –                     | –                             |
 * | … for a chunk (per Map item)    | 1      | 1 BatchGet (≤ 100 ids) + 1 put per task    | –                     | chunk tasks, raw replies¹     |
 * | Save iteration                  | 1      | run item update, pool META update, 1 get   | 1 per Map item        | snapshot, index copy          |
 * | Enough instructions?            | –      | –                                          | –                     | –                             |
 *
 * From a pool of `shardGateAbove` tasks on, "Gate in shards?" sends the iteration's gate to the sharded
 * path instead of "Filter and deduplicate" (`infra/sharded-gate.ts`), with S = `gateShards` shards:
 *
 * | state                                   | Lambda        | S3 GET                          | S3 PUT             |
 * | --------------------------------------- | ------------- | ------------------------------- | ------------------ |
 * | Plan the gate shards                    | 1 (Filter)    | candidates, index               | survivors          |
 * | Score gate shards (Map, S items)        | S (shard)     | survivors, each                 | highest, each      |
 * | Decide on the shard scores              | 1 (Filter)    | candidates, index, S highest    | sizes              |
 * | Score gate shards again (Map, S items)  | S (shard)     | survivors and sizes, each       | scores, each       |
 * | Filter and merge the shard scores       | 1 (Filter)    | candidates, index, S highest, sizes, S scores | gate log, iteration index |
 *
 * (a shard's segments are cached in its `/tmp`, as the Filter's index is: not counted).
 *
 * In batch mode (run input `batch`), an iteration whose instance calls go to a job also enters "Submit
 * the instance batch" (Lambda; 1 PUT, the job's input) and "Instance batch submitted?", then for each
 * look "Wait for the instance batch", "Check the instance batch" (Lambda; on the last look 1 GET, the
 * job's output) and "Batch done?" (`IterationShape.batchLooks`).
 *
 * Once per run: Start run (Pass), Prepare run (run item put, pool count get; on a new pool one put per
 * seed, the META update, the index and seed list), Export dataset (Query over the whole pool, run get,
 * run update, 4 objects), Done (Succeed).
 *
 * ¹ only when the chunk made model calls (Alpaca's tasks arrive with their instance and make none).
 *
 * Billing rules used: Step Functions Standard counts one state transition per state entered, a
 * Distributed Map state once plus, for each item, one for starting its Standard child execution and each
 * state the child enters, and each retry once more (no retries assumed). DynamoDB on
 * demand: a write costs 1 WRU per KB of the item (rounded up, the larger of the old and new item for an
 * update), an eventually consistent read 0.5 RRU per 4 KB (BatchGet, Get and Query use eventual
 * consistency here), a Query sums the sizes of the items it returns before rounding. S3 COPY is billed
 * as a PUT. Storage, CloudWatch Logs, X-Ray and data transfer are not counted.
 */

import { LAMBDA_FREE_EPHEMERAL_MB } from '../../export/spill-size.ts';
import {
  BATCH_JOB_STATES,
  CONTROL_STATES,
  INSTRUCTION_BATCH_STATES,
  SHARDED_GATE_STATES,
  STAGES,
  type StageKey,
  type StageSpec,
} from '../../stages.ts';
import type { AwsUsage } from './pricing.ts';

/** The states an iteration enters, in order (each one state transition). */
export const ITERATION_STATES = [
  INSTRUCTION_BATCH_STATES.plan,
  STAGES.generateInstructions.mapState,
  INSTRUCTION_BATCH_STATES.collect,
  CONTROL_STATES.shardGate,
  STAGES.filter.state,
  BATCH_JOB_STATES.choice,
  STAGES.generateInstances.mapState,
  STAGES.saveIteration.state,
  CONTROL_STATES.enough,
] as const;

/** The states each Map item enters. */
export const MAP_ITEM_STATES = [STAGES.generateInstances.state] as const;

/** The states each item of the "Generate instructions" Map (a batch of calls) enters. */
export const BATCH_ITEM_STATES = [STAGES.generateInstructions.state] as const;

/**
 * The state transition billed for starting each item of a Distributed Map (every per-item Map is one,
 * `infra/per-item-map.ts`): a Standard child execution, whose own states are billed as well.
 */
export const CHILD_EXECUTION_TRANSITIONS = 1;

/** The states an iteration gated in shards enters instead of "Filter and deduplicate", in order. */
export const SHARDED_GATE_PATH_STATES = [
  SHARDED_GATE_STATES.plan,
  STAGES.gateShard.mapState,
  SHARDED_GATE_STATES.decide,
  SHARDED_GATE_STATES.rescoreMap,
  SHARDED_GATE_STATES.merge,
] as const;

/** The states each shard enters: one item of each of the two Maps. */
export const SHARD_ITEM_STATES = [STAGES.gateShard.state, SHARDED_GATE_STATES.rescore] as const;

/**
 * The shards an iteration's gate runs in, as "Gate in shards?" (`infra/sharded-gate.ts`) decides from the
 * pool's size when the iteration starts: `gateShards` from `shardGateAbove` tasks on (at most one per
 * instruction, as `splitRange` plans them), else 0, the gate in "Filter and deduplicate" (also for a run
 * from before the sharded gate, whose configuration has no `shardGateAbove`).
 */
export function gateShardsFor(
  config: { readonly shardGateAbove?: number; readonly gateShards: number },
  poolSize: number,
): number {
  if (config.shardGateAbove === undefined || poolSize < config.shardGateAbove) return 0;
  return Math.max(1, Math.min(config.gateShards, poolSize));
}

/** The states a successful run enters once. */
export const RUN_ONCE_STATES = [
  CONTROL_STATES.start,
  STAGES.prepare.state,
  STAGES.exportDataset.state,
  CONTROL_STATES.done,
] as const;

/** What one iteration did (after a run) or is expected to do (before one). Counts may be fractional means. */
export interface IterationShape {
  /** Model calls of "Generate instructions". */
  instructionCalls: number;
  /** Items of its Map: batches of `instructionBatchSize` calls. */
  instructionBatches: number;
  /** Output tokens of those calls, in total (they set the calls' duration). */
  instructionOutputTokens: number;
  /** Candidates the calls yielded (the gate compares each with the pool). */
  candidates: number;
  /** Instructions the gate accepted: one conditional put each, then one task in the Map. */
  acceptedInstructions: number;
  /** Map items (chunks of `chunkSize` ids). */
  mapItems: number;
  /** Model calls made inside the Map (classification and instances), in total. */
  mapCalls: number;
  /** Output tokens of those calls, in total. */
  mapOutputTokens: number;
  /** Instructions in the pool's ROUGE-L index when the iteration starts (seeds included). */
  poolInstructions: number;
  /**
   * Shards the gate ran in, past `shardGateAbove` (`gateShardsFor`); 0 or absent: in "Filter and
   * deduplicate".
   */
  gateShards?: number;
  /**
   * Batch mode: looks of the poll loop at the iteration's instance job (each a Wait, a check and a
   * Choice); 0 or absent: no job (on demand).
   */
  batchLooks?: number;
  /**
   * An estimate's: the tokens the instruction calls count against the model's tokens-per-minute quota
   * (`pacedSteps`); absent: no token quota modeled.
   */
  instructionQuotaTokens?: QuotaTokens;
  /** The same for the calls inside the Map (on demand: a batch job's calls are not counted). */
  mapQuotaTokens?: QuotaTokens;
}

/**
 * A step's calls of the run's model as its tokens-per-minute quota counts them (Bedrock's
 * `bedrock-runtime` quotas are per model, input and output combined): what they use, and what they
 * reserve at their start (input plus the request's `maxTokens`, settled to what was used at the end).
 */
export interface QuotaTokens {
  /** Calls of the run's model (a judge or teacher on another model counts against that model's quota). */
  calls: number;
  /** Their input tokens, in total. */
  input: number;
  /** Their output tokens, in total. */
  output: number;
  /** Output tokens they reserve at their start: each call's `maxTokens`, in total. */
  reservedOutput: number;
}

/** What a run does once, outside its iterations. */
export interface RunOnceShape {
  /** Seed tasks Prepare run adds to the pool (all of them on a new pool, 0 on a pool that has them). */
  seedTasksAdded: number;
  /** Task items the export reads: every task of the pool (seeds, complete and rejected machine tasks). */
  poolItemsAtExport: number;
}

/** The assumptions that turn a shape into durations and request units. */
export interface UsageAssumptions {
  /** Model calls at once inside one function (run input `callConcurrency`). */
  callConcurrency: number;
  /** Seconds from sending a model call to its first output token. */
  firstTokenSeconds: number;
  /** Output tokens a second once a reply streams. */
  outputTokensPerSecond: number;
  /** Seconds a warm invocation spends besides model calls and the gate: start-up share, S3 and DynamoDB I/O. */
  invocationOverheadSeconds: number;
  /** ROUGE-L pairs the gate scores a second in the filter function. */
  gatePairsPerSecond: number;
  /**
   * CPU a gate shard spends per pair of its range over its two scans (highest, then top 10 and mean),
   * relative to the gate in one process (`gatePairsPerSecond`).
   */
  gateShardCpuRatio: number;
  /**
   * CPU seconds of the sharded gate's decisions per pair of survivors (each compared with those accepted
   * before it), made twice: by "Decide on the shard scores" and again by "Filter and merge".
   */
  gateDecisionCpuSecondsPerPair: number;
  /** CPU seconds "Generate instructions" spends per call (rendering, parsing, recording), on a full vCPU. */
  instructionCpuSecondsPerCall: number;
  /** CPU seconds it spends per instruction of the pool (loading the pool's index for demonstrations). */
  instructionCpuSecondsPerPoolInstruction: number;
  /** CPU seconds a Map item spends per model call (parsing, filtering, screening, recording). */
  chunkCpuSecondsPerCall: number;
  /** Lambda memory that buys one full vCPU; below it, CPU work stretches by `fullCpuMemoryMb / memory`. */
  fullCpuMemoryMb: number;
  /** Seconds of one DynamoDB write; the filter makes 16 at once. */
  dynamodbWriteSeconds: number;
  /** Seconds the export spends per pool item (Query pages, formatting, the four uploads). */
  exportSecondsPerItem: number;
  /** WRUs of the pending task item the filter stores. */
  pendingTaskWriteUnits: number;
  /** WRUs of the finished task item (with its instances) the Map writes back. */
  finishedTaskWriteUnits: number;
  /** WRUs of a write of the run item (it holds the configuration, counters and per-iteration stats). */
  runItemWriteUnits: number;
  /** Average size of a task item in KB (for the export's Query). */
  taskItemKb: number;
  /**
   * The model's quotas (requests per minute; tokens per minute, with the shape's `QuotaTokens`), and the
   * Map items that run at once: when a Map's calls at the quotas' pace take longer than its waves, its
   * functions wait that much longer (`pacedSteps`) and Lambda bills the wait. Absent (an account of a
   * finished run, a model without a known quota): no stretch.
   */
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  itemsAtOnce?: number;
}

/** Defaults of the assumptions (see each field); an estimate prints the ones it used. */
export const DEFAULT_USAGE_ASSUMPTIONS: UsageAssumptions = {
  // The run input's default `callConcurrency` (`functions/shared/schemas.ts`); estimates and "Save
  // iteration" take the run's own.
  callConcurrency: 20,
  firstTokenSeconds: 0.6,
  outputTokensPerSecond: 80,
  invocationOverheadSeconds: 0.3,
  // README (`npm run bench:dedup -- --bootstrap`): 106 M pairs per CPU-second growing a pool to 52K on
  // this project's test machine, 12 M on a pool of 2K where per-batch costs dominate; one thread of a
  // 3,008 MB function has a full vCPU. Taken between, erring slow.
  gatePairsPerSecond: 50_000_000,
  // `npm run bench:shards -- --pool 200000 --candidates 2000` (2026-12-01, this 2-core machine at load
  // 2–3, CPU time): a shard's two scans 1.29 + 1.82 CPU-s for 400 M pairs, 1.17× the gate's 2.65 (1.15×
  // at a pool of 100,000; 1.50× in the README's run at load 3–5, taken: erring slow); the decisions
  // 0.11 CPU-s (0.13 at 100,000) for 2,000 survivors. A shard has one vCPU (1,769 MB).
  gateShardCpuRatio: 1.5,
  gateDecisionCpuSecondsPerPair: 0.13 / 2000 ** 2,
  // `npm run bench:memory` (2026-12-01, x86 test machine at load 14, CPU time): 200 instruction calls
  // took 135 ms of CPU at a 192-instruction pool and 1,038 ms at 52,000 (the index load); a chunk of 40
  // tasks, 79 calls (instances and verdicts), 265 ms.
  instructionCpuSecondsPerCall: 0.00067,
  instructionCpuSecondsPerPoolInstruction: 0.0000174,
  chunkCpuSecondsPerCall: 0.0034,
  // AWS Lambda: "at 1,769 MB, a function has the equivalent of one vCPU".
  fullCpuMemoryMb: 1769,
  dynamodbWriteSeconds: 0.01,
  exportSecondsPerItem: 0.0002,
  pendingTaskWriteUnits: 1,
  finishedTaskWriteUnits: 2,
  runItemWriteUnits: 2,
  taskItemKb: 1.5,
};

/** A stage function's memory in GB, as deployed (`functions/stages.ts`). */
const GB = (stage: StageKey) => STAGES[stage].memoryMb / 1024;

/** A stage function's billed ephemeral storage in GB: what it has above Lambda's free 512 MB. */
const extraEphemeralGB = (stage: StageKey) => {
  const spec: StageSpec = STAGES[stage];
  return Math.max(0, (spec.ephemeralStorageMb ?? LAMBDA_FREE_EPHEMERAL_MB) - LAMBDA_FREE_EPHEMERAL_MB) / 1024;
};

/** Seconds `cpuSeconds` of work (on a full vCPU) take in a stage's function, whose CPU scales with memory. */
const cpuSeconds = (stage: StageKey, cpu: number, a: UsageAssumptions) =>
  cpu * Math.max(1, a.fullCpuMemoryMb / STAGES[stage].memoryMb);

/** Seconds one of `calls` calls of `outputTokens` in total takes: to its first token, then its share. */
export function callLength(
  calls: number,
  outputTokens: number,
  a: Pick<UsageAssumptions, 'firstTokenSeconds' | 'outputTokensPerSecond'>,
): number {
  return calls > 0 ? a.firstTokenSeconds + outputTokens / calls / a.outputTokensPerSecond : 0;
}

/** Seconds a function spends on `calls` calls of `outputTokens` in total, `callConcurrency` at a time. */
function callSeconds(calls: number, outputTokens: number, a: UsageAssumptions): number {
  if (calls <= 0) return 0;
  return Math.ceil(calls / a.callConcurrency) * callLength(calls, outputTokens, a);
}

/** The model's quotas in an account (per model, per region); absent: not bounded by it. */
export interface ModelQuotas {
  requestsPerMinute?: number;
  /** Input and output tokens combined, as Bedrock's `bedrock-runtime` quotas count them. */
  tokensPerMinute?: number;
}

/**
 * Which quota sets a step's pace: its requests per minute (`requests`), the tokens its iteration uses
 * per minute (`tokens`), or its tokens reserved at once (`reservations`).
 */
export type QuotaBound = 'requests' | 'tokens' | 'reservations';

/** A step of model calls at its pace: its waves' seconds, the seconds it takes, and what sets them. */
export interface PacedStep {
  /** Its waves of Map items, at the items at once (no quota). */
  waves: number;
  seconds: number;
  limit: 'concurrency' | QuotaBound;
}

/** Input + output tokens of a step's calls (0 without quota tokens). */
const usedTokens = (q: QuotaTokens | undefined) => (q ? q.input + q.output : 0);

/**
 * Tokens-per-minute quota "work" of a step's calls: its seconds at a quota of one token a minute.
 * `reserved`: each call holds its input + `maxTokens` from its start to its end (`callSeconds` long),
 * and the reservations of the calls in flight fit in the quota, so at most `quota / (input + maxTokens)`
 * calls run at once: `calls × callSeconds / thoseCalls = (input + reserved output) × callSeconds`.
 * `used`: each call settles at its input + output, so the sustained rate is at most
 * `quota / (input + output)` calls a minute: `(input + output) × 60`.
 */
export function tokenWork(
  tokens: QuotaTokens | undefined,
  callSeconds: number,
): { reserved: number; used: number } {
  if (!tokens) return { reserved: 0, used: 0 };
  return { reserved: (tokens.input + tokens.reservedOutput) * callSeconds, used: usedTokens(tokens) * 60 };
}

/**
 * An iteration's two steps of model calls ("Generate instructions"' batches, the instances Map's
 * chunks) at the pace the model's quotas allow, `atOnce` items of a Map at a time:
 *
 * - each step takes at least its waves, and its calls at the request quota's pace
 *   (`calls × 60 / requestsPerMinute`) and with no more calls in flight than the tokens-per-minute
 *   quota holds reservations for (`tokenWork(...).reserved / tokensPerMinute`): the longest;
 * - the iteration as a whole (the two steps and `restSeconds`, its other steps) uses tokens no faster
 *   than the quota a minute, the steady state of a quota that refills all minute long (a step of a few
 *   seconds draws on the minute's tokens: only the sustained rate binds): when its tokens
 *   (`tokenWork(...).used / tokensPerMinute`) need longer, the two steps stretch by the difference, in
 *   proportion to their tokens (throttled calls back off inside their functions).
 *
 * Wall time (`timing.ts`) and the Lambda bill (`iterationAwsUsage`) take the same paces.
 */
export function pacedSteps(
  shape: IterationShape,
  seconds: IterationSeconds,
  a: Pick<UsageAssumptions, 'firstTokenSeconds' | 'outputTokensPerSecond'>,
  atOnce: number,
  quotas: ModelQuotas,
  restSeconds: number,
): { generate: PacedStep; map: PacedStep } {
  const step = (
    calls: number,
    outputTokens: number,
    tokens: QuotaTokens | undefined,
    items: number,
    itemSeconds: number,
  ): PacedStep => {
    const waves = Math.ceil(items / Math.max(1, atOnce)) * itemSeconds;
    const bounds: [PacedStep['limit'], number][] = [['concurrency', waves]];
    if (quotas.requestsPerMinute) bounds.push(['requests', (calls * 60) / quotas.requestsPerMinute]);
    if (quotas.tokensPerMinute) {
      bounds.push([
        'reservations',
        tokenWork(tokens, callLength(calls, outputTokens, a)).reserved / quotas.tokensPerMinute,
      ]);
    }
    const [limit, paced] = bounds.reduce((x, y) => (y[1] > x[1] ? y : x));
    return { waves, seconds: paced, limit };
  };
  const generate = step(
    shape.instructionCalls,
    shape.instructionOutputTokens,
    shape.instructionQuotaTokens,
    shape.instructionBatches,
    seconds.batch,
  );
  const map = step(
    shape.mapCalls,
    shape.mapOutputTokens,
    shape.mapQuotaTokens,
    shape.mapItems,
    seconds.mapItem,
  );
  const [genTokens, mapTokens] = [usedTokens(shape.instructionQuotaTokens), usedTokens(shape.mapQuotaTokens)];
  if (!quotas.tokensPerMinute || genTokens + mapTokens <= 0) return { generate, map };
  const short =
    ((genTokens + mapTokens) * 60) / quotas.tokensPerMinute - (generate.seconds + map.seconds + restSeconds);
  if (short <= 0) return { generate, map };
  const stretch = (own: PacedStep, tokens: number): PacedStep =>
    tokens > 0
      ? { ...own, seconds: own.seconds + (short * tokens) / (genTokens + mapTokens), limit: 'tokens' }
      : own;
  return { generate: stretch(generate, genTokens), map: stretch(map, mapTokens) };
}

/** Adds usages field by field. */
export function addAwsUsage(...usages: AwsUsage[]): AwsUsage {
  const sum: AwsUsage = {
    stateTransitions: 0,
    lambdaGbSeconds: 0,
    lambdaRequests: 0,
    lambdaEphemeralGbSeconds: 0,
    dynamodbWriteUnits: 0,
    dynamodbReadUnits: 0,
    s3Puts: 0,
    s3Gets: 0,
  };
  for (const usage of usages) {
    for (const key of Object.keys(sum) as (keyof AwsUsage)[]) sum[key] += usage[key];
  }
  return sum;
}

/** How long each function of one iteration runs: what Lambda bills, and what the loop waits on. */
export interface IterationSeconds {
  /** "Plan instructions" and "Collect instructions", together. */
  planAndCollect: number;
  /** One batch ("Generate a batch of instructions"): its share of the calls, `callConcurrency` at a time. */
  batch: number;
  /**
   * The gate, as the loop waits on it: "Filter and deduplicate" (the gate's pairs and its conditional
   * puts), or in shards the Filter's three steps and one shard's two (the shards run at once).
   */
  filter: number;
  /** In shards: the Filter function's three steps (its part of `filter`); else 0. */
  filterSteps: number;
  /** In shards: one shard's two invocations (its part of `filter`, as long for each shard); else 0. */
  gateShard: number;
  /** One Map item ("Generate instances for a chunk"): its share of the classification, instance and judge calls. */
  mapItem: number;
  /** "Save iteration". */
  save: number;
  /** Batch mode: the submit and each look's check, together (the Wait between looks is not billed); else 0. */
  batchSteps: number;
}

/** Seconds each function of an iteration runs, from its shape and the assumptions (durations only). */
export function iterationSeconds(shape: IterationShape, assumptions: UsageAssumptions): IterationSeconds {
  const a = assumptions;
  const { mapItems } = shape;
  const callsPerItem = mapItems > 0 ? shape.mapCalls / mapItems : 0;
  const outputPerItem = mapItems > 0 ? shape.mapOutputTokens / mapItems : 0;
  const batches = Math.max(1, shape.instructionBatches);
  const callsPerBatch = shape.instructionCalls / batches;
  // CPU work is counted after the calls, not overlapped with them: erring long. Each batch draws the
  // iteration's demonstrations from the pool's sample again.
  const batchCpu =
    callsPerBatch * a.instructionCpuSecondsPerCall +
    shape.poolInstructions * a.instructionCpuSecondsPerPoolInstruction;
  const writes = Math.ceil(shape.acceptedInstructions / 16) * a.dynamodbWriteSeconds;
  const shards = shape.gateShards ?? 0;
  // In shards: plan, decide and merge (both deciding), and each shard's two scans of its range.
  const filterSteps =
    shards > 0
      ? 3 * a.invocationOverheadSeconds +
        cpuSeconds('filter', 2 * shape.candidates ** 2 * a.gateDecisionCpuSecondsPerPair, a) +
        writes
      : 0;
  const gateShard =
    shards > 0
      ? 2 * a.invocationOverheadSeconds +
        cpuSeconds('gateShard', ((gatePairs(shape) / shards) * a.gateShardCpuRatio) / a.gatePairsPerSecond, a)
      : 0;
  return {
    planAndCollect: 2 * a.invocationOverheadSeconds,
    batch:
      a.invocationOverheadSeconds +
      callSeconds(callsPerBatch, shape.instructionOutputTokens / batches, a) +
      cpuSeconds('generateInstructions', batchCpu, a),
    filter:
      shards > 0
        ? filterSteps + gateShard
        : a.invocationOverheadSeconds + gatePairs(shape) / a.gatePairsPerSecond + writes,
    filterSteps,
    gateShard,
    mapItem:
      a.invocationOverheadSeconds +
      callSeconds(callsPerItem, outputPerItem, a) +
      cpuSeconds('generateInstances', callsPerItem * a.chunkCpuSecondsPerCall, a),
    save: a.invocationOverheadSeconds,
    batchSteps: (shape.batchLooks ?? 0) > 0 ? (1 + (shape.batchLooks ?? 0)) * a.invocationOverheadSeconds : 0,
  };
}

/** ROUGE-L pairs the gate scores in an iteration: every candidate against the pool it started from. */
export const gatePairs = (shape: IterationShape) => shape.candidates * shape.poolInstructions;

/**
 * The AWS usage of one iteration (see the module comment for where each count comes from).
 * Lambda GB-seconds are memory × duration, durations from `assumptions`.
 */
export function iterationAwsUsage(shape: IterationShape, assumptions: UsageAssumptions): AwsUsage {
  const a = assumptions;
  const { acceptedInstructions: accepted, mapItems, instructionBatches: batches } = shape;
  const seconds = iterationSeconds(shape, a);
  const shards = shape.gateShards ?? 0;
  const sharded = shards > 0 ? 1 : 0;
  const looks = shape.batchLooks ?? 0;
  const batched = looks > 0 ? 1 : 0;
  // Lambda bills the functions for as long as the model's quotas hold their calls back: each Map item
  // stretched to its step's pace (the iteration's other functions as the rest; its transitions and batch
  // mode's Waits, which this module does not time, left out: the token quota's stretch errs long here by
  // those seconds).
  const paced = a.itemsAtOnce
    ? pacedSteps(
        shape,
        seconds,
        a,
        a.itemsAtOnce,
        a,
        seconds.planAndCollect + seconds.filter + seconds.save + seconds.batchSteps,
      )
    : undefined;
  const stretch = (step: PacedStep | undefined) => (step && step.waves > 0 ? step.seconds / step.waves : 1);
  const batchStretch = stretch(paced?.generate);
  const mapStretch = stretch(paced?.map);
  return {
    stateTransitions:
      ITERATION_STATES.length +
      // Each item of a Map is a child execution: its start, then its own states.
      (CHILD_EXECUTION_TRANSITIONS + BATCH_ITEM_STATES.length) * batches +
      (CHILD_EXECUTION_TRANSITIONS + MAP_ITEM_STATES.length) * mapItems +
      // The sharded path's states instead of "Filter and deduplicate", and each shard's two items.
      sharded *
        (SHARDED_GATE_PATH_STATES.length -
          1 +
          (CHILD_EXECUTION_TRANSITIONS + 1) * SHARD_ITEM_STATES.length * shards) +
      // Batch mode: submit and its Choice, then each look's Wait, check and Choice.
      batched * (2 + 3 * looks),
    // Plan, Collect, Filter, Save + 1 per batch and per Map item; in shards 2 more Filter steps and 2 per shard.
    lambdaRequests:
      4 + batches + mapItems + sharded * (2 + SHARD_ITEM_STATES.length * shards) + batched * (1 + looks),
    lambdaEphemeralGbSeconds: 0,
    lambdaGbSeconds:
      GB('generateInstructions') * (seconds.planAndCollect + batches * seconds.batch * batchStretch) +
      GB('filter') * (sharded ? seconds.filterSteps : seconds.filter) +
      GB('gateShard') * seconds.gateShard * shards +
      GB('generateInstances') * (seconds.mapItem * mapItems * mapStretch + seconds.batchSteps) +
      GB('saveIteration') * seconds.save,
    dynamodbWriteUnits:
      accepted * a.pendingTaskWriteUnits + // the filter's conditional puts
      accepted * a.finishedTaskWriteUnits + // the Map's put of each finished task
      a.runItemWriteUnits + // Save iteration: counters and usage on the run item
      1, // Save iteration: ADD to the pool's META count
    dynamodbReadUnits:
      // One BatchGet per Map item (ids ≤ 100), 0.5 RRU per item read eventually consistently.
      accepted * 0.5 +
      // Save iteration: the pool's count.
      0.5,
    s3Gets:
      2 * batches + // each batch: pool seeds, pool index
      3 * batches + // Collect: each batch's result, candidates and raw replies
      2 + // Filter: candidates, pool index
      sharded * (5 + 6 * shards) + // in shards: the steps' hand-offs (see the module comment)
      mapItems + // Save iteration: each chunk's tasks
      batched, // batch mode: the job's output
    s3Puts:
      3 * batches + // each batch's candidates, raw replies and result
      2 + // Collect: candidates, raw replies
      2 + // gate log, iteration index
      sharded * (2 + 2 * shards) + // in shards: survivors, sizes, each shard's highest and scores
      mapItems + // chunk tasks
      (shape.mapCalls > 0 ? mapItems : 0) + // raw replies of each chunk that called the model
      2 + // snapshot, index copy
      batched, // batch mode: the job's input
  };
}

/** The AWS usage a run has once: Start run, Prepare run, Export dataset, Done. */
export function runOnceAwsUsage(shape: RunOnceShape, assumptions: UsageAssumptions): AwsUsage {
  const a = assumptions;
  const newPool = shape.seedTasksAdded > 0;
  const exportSeconds = a.invocationOverheadSeconds + shape.poolItemsAtExport * a.exportSecondsPerItem;
  return {
    stateTransitions: RUN_ONCE_STATES.length,
    lambdaRequests: 2,
    lambdaGbSeconds: GB('prepare') * a.invocationOverheadSeconds + GB('exportDataset') * exportSeconds,
    // Billed for as long as the function runs, whatever it spills.
    lambdaEphemeralGbSeconds: extraEphemeralGB('exportDataset') * exportSeconds,
    dynamodbWriteUnits:
      a.runItemWriteUnits + // Prepare: the run item
      a.runItemWriteUnits + // Export: the run's end
      (newPool ? shape.seedTasksAdded * a.finishedTaskWriteUnits + 1 : 0), // seeds and the META count
    dynamodbReadUnits:
      0.5 + // Prepare: the pool's count
      0.5 + // Export: the run item
      Math.ceil((shape.poolItemsAtExport * a.taskItemKb) / 4) * 0.5, // Export: Query over the pool
    s3Gets: 2 + (newPool ? 1 : 0), // seed file, pool seeds (and the index, when adding seeds)
    s3Puts: 4 + (newPool ? 2 : 0), // dataset, alpaca, tasks, summary (and the index, seed list)
  };
}

/** The AWS usage of a whole run: its iterations plus what it does once. */
export function runAwsUsage(
  iterations: readonly IterationShape[],
  once: RunOnceShape,
  assumptions: UsageAssumptions,
): AwsUsage {
  return addAwsUsage(
    runOnceAwsUsage(once, assumptions),
    ...iterations.map((shape) => iterationAwsUsage(shape, assumptions)),
  );
}

/** Calls and output tokens of one model step, as a run records them (`UsageByStage`). */
interface StageUsage {
  calls: number;
  outputTokens: number;
}

/**
 * The shape of an iteration that has run, from what "Save iteration" knows: its counts (`prompts`,
 * `generated`, `accepted`) and its usage per model step, so a finished iteration is accounted with the
 * same model an estimate uses.
 */
export function iterationShapeFromCounts(
  counts: Readonly<Record<string, number>>,
  usageByStage: Readonly<Record<string, StageUsage>>,
  {
    chunkSize,
    instructionBatchSize,
    poolInstructions,
  }: { chunkSize: number; instructionBatchSize: number; poolInstructions: number },
): IterationShape {
  const stage = (name: string): StageUsage => usageByStage[name] ?? { calls: 0, outputTokens: 0 };
  const accepted = counts.accepted ?? 0;
  const map = [stage('classify'), stage('generate-instances')];
  return {
    instructionCalls: stage('generate-instructions').calls || (counts.prompts ?? 0),
    instructionBatches: Math.ceil((counts.prompts ?? 0) / instructionBatchSize),
    instructionOutputTokens: stage('generate-instructions').outputTokens,
    candidates: counts.generated ?? 0,
    acceptedInstructions: accepted,
    mapItems: Math.ceil(accepted / chunkSize),
    mapCalls: map.reduce((sum, s) => sum + s.calls, 0),
    mapOutputTokens: map.reduce((sum, s) => sum + s.outputTokens, 0),
    poolInstructions,
  };
}
