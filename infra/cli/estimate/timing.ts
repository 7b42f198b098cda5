/**
 * How long a deployed run takes: per iteration, the steps the loop waits on one after the other
 * ("Generate instructions": its plan, the Map's waves of batches and the collection; "Filter and
 * deduplicate"; the instances Map's waves of chunks; "Save iteration"), each as long as
 * `iterationSeconds` (the same durations Lambda bills, `aws-usage.ts`), plus the workflow's own
 * overhead (state transitions, cold starts). Per-call latency is the model's: measured from recorded
 * calls when a run of that model is on record, else the defaults below.
 *
 * A Map's items run `mapConcurrency` at once, fewer when the operator's caps say so (the model-calling
 * functions' reserved concurrency, `maxModelCallsInFlight / callConcurrency`: `functions/shared/limits.ts`),
 * and no step's calls go faster than the model's account quotas allow (requests per minute; tokens per
 * minute, reserved by the calls in flight and used by the iteration: `pacedSteps`): a step takes the
 * longest of these. A quota of tokens per day (by default Bedrock's, tokens per minute × 1,440) bounds
 * the run as a whole: a run that needs more tokens than its projected days allow takes the days it needs.
 *
 * An iteration gated in shards (pool past `shardGateAbove`) waits on the Filter's three steps and one
 * shard's two scans (the shards run at once: the shard Maps' concurrency is `gateShards`), plus the
 * sharded path's extra states and one wave of each shard Map; the first sharded iteration pays the shard
 * function's cold start. In batch mode an iteration whose instance calls go to a job waits for it: the
 * submit, then looks `batchPollSeconds` apart until the job is done, its turnaround an assumption
 * (`batchTurnaroundSeconds`: providers promise only a 24 h window).
 */
import { z } from 'zod';
import { maxPolls } from '../../../functions/shared/batch/jobs.ts';
import { DEFAULT_OPERATOR_LIMITS } from '../../../functions/shared/limits.ts';
import { parseModelId } from '../../../functions/shared/models/model-ids.ts';
import {
  CHILD_EXECUTION_TRANSITIONS,
  callLength,
  type IterationSeconds,
  type IterationShape,
  iterationSeconds,
  type ModelQuotas,
  type PacedStep,
  pacedSteps,
  type QuotaBound,
  type QuotaTokens,
  SHARD_ITEM_STATES,
  SHARDED_GATE_PATH_STATES,
  tokenWork,
  type UsageAssumptions,
} from '../../../functions/shared/pricing/aws-usage.ts';

/** A model's reply time: to the first token, then output tokens a second. */
export const ModelLatency = z.object({
  firstTokenSeconds: z.number().nonnegative(),
  outputTokensPerSecond: z.number().positive(),
  /** Where the figures come from (shown with the estimate). */
  source: z.string(),
});
export type ModelLatency = z.infer<typeof ModelLatency>;

/**
 * For a model with no recorded calls and no entry below: the figures the cost model has always used,
 * slower than the small models' measured ones, so a projection errs long.
 */
export const GENERIC_LATENCY: ModelLatency = {
  firstTokenSeconds: 0.6,
  outputTokensPerSecond: 80,
  source: 'generic default (no published figure used for this model)',
};

/**
 * Published reply times of the models a run is most often estimated for. Nova Micro (2026-12-01):
 * Vercel AI Gateway shows a P50 time to first token of 0.3 s on Bedrock, and AWS's Bedrock benchmark
 * report (aiperf.ghast.people.aws.dev) 0.21–0.33 s by region (0.25 s us-east-1) and 299–575 output
 * tokens/s by task; the lower ends are taken, rounded towards slower.
 */
export const MODEL_LATENCY: Readonly<Record<string, ModelLatency>> = {
  'bedrock:amazon.nova-micro-v1:0': {
    firstTokenSeconds: 0.3,
    outputTokensPerSecond: 250,
    source:
      'published figures for Nova Micro on Bedrock (Vercel AI Gateway P50, AWS Bedrock benchmark report)',
  },
};

/** A model's default on-demand quota of requests per minute in an account (per model, per region). */
export interface ModelQuota {
  requestsPerMinute: number;
  source: string;
}

/**
 * Default quotas of the models a run is most often estimated for. Nova Micro: 2,000 on-demand requests
 * per minute (issue 14's figure for Bedrock's default "On-demand InvokeModel requests per minute for
 * Amazon Nova Micro"; not in AWS's documentation, whose quota page for `bedrock-runtime` lists only
 * per-model token quotas; quotas vary by region and account, check yours in Service Quotas). No
 * documented default of tokens per minute is known for it: the estimate models one only when given
 * (`--tokens-per-minute`).
 */
export const MODEL_QUOTAS: Readonly<Record<string, ModelQuota>> = {
  'bedrock:amazon.nova-micro-v1:0': {
    requestsPerMinute: 2_000,
    source: 'assumed for Nova Micro, not in AWS’s documentation: give yours with --requests-per-minute',
  },
};

/** The latency an estimate assumes for a model that has no recorded calls. */
export const defaultLatency = (model: string): ModelLatency => MODEL_LATENCY[model] ?? GENERIC_LATENCY;

/** One recorded call: its reply time and output tokens. */
export interface LatencySample {
  seconds: number;
  outputTokens: number;
}

/**
 * Fits `seconds = first + outputTokens / tokensPerSecond` to recorded calls (least squares); undefined
 * under 10 calls. When the fit is not physical (a negative intercept or slope, as noise on calls of
 * similar lengths gives), the slope is dropped and the mean reply time kept as a per-call constant.
 */
export function fitLatency(samples: readonly LatencySample[], source: string): ModelLatency | undefined {
  if (samples.length < 10) return undefined;
  const n = samples.length;
  const mx = samples.reduce((s, c) => s + c.outputTokens, 0) / n;
  const my = samples.reduce((s, c) => s + c.seconds, 0) / n;
  const sxx = samples.reduce((s, c) => s + (c.outputTokens - mx) ** 2, 0);
  const sxy = samples.reduce((s, c) => s + (c.outputTokens - mx) * (c.seconds - my), 0);
  const slope = sxx > 0 ? sxy / sxx : 0;
  const intercept = my - slope * mx;
  if (slope > 0 && intercept >= 0) {
    return ModelLatency.parse({ firstTokenSeconds: intercept, outputTokensPerSecond: 1 / slope, source });
  }
  // Not separable: the whole mean reply time as the per-call constant, tokens streaming "instantly".
  return ModelLatency.parse({
    firstTokenSeconds: my,
    outputTokensPerSecond: Number.MAX_VALUE,
    source: `${source} (mean reply time; length did not explain it)`,
  });
}

/** The workflow's own time, besides the functions' durations. */
export interface TimeAssumptions {
  /** Map items at once (run input `mapConcurrency`). */
  mapConcurrency: number;
  /** The operator's cap on model calls at once per run (`maxModelCallsInFlight`). */
  maxModelCallsInFlight: number;
  /** The model-calling functions' reserved concurrency (`modelFunctionConcurrency`); none: unbounded. */
  modelFunctionConcurrency?: number;
  /** The model's quota of requests per minute in the account; none: unbounded. */
  requestsPerMinute?: number;
  /**
   * The model's quota of tokens per minute in the account (input + output; Bedrock's "On-demand
   * InvokeModel tokens per minute for <model>"); none: unbounded.
   */
  tokensPerMinute?: number;
  /**
   * The model's quota of tokens per day ("Model invocation max tokens per day for <model>"); by
   * default `tokensPerMinute × 1,440`, as AWS sets it (new accounts may get less); none: unbounded.
   */
  tokensPerDay?: number;
  /** Seconds Step Functions takes to move from one state to the next and invoke its function. */
  stateTransitionSeconds: number;
  /** Extra seconds of a function's first (cold) invocation: once per serial step of the first iteration. */
  coldStartSeconds: number;
  /** Batch mode: seconds between two looks at a job (run input `batchPollSeconds`). */
  batchPollSeconds?: number;
  /**
   * Batch mode: seconds from a job's submit until it is done, an assumption (providers promise only
   * their 24 h window): it sets the looks (`batchLooks`).
   */
  batchTurnaroundSeconds?: number;
}

/**
 * The looks the poll loop makes at a job that is done `turnaroundSeconds` after its submit, a look
 * every `pollSeconds` (at least 1 s, as `maxPolls` counts them): the first look after one Wait, the
 * last the first at or past the turnaround; at most the loop's cap for the provider's 24 h window.
 */
export function batchLooks(turnaroundSeconds: number, pollSeconds: number): number {
  const poll = Math.max(1, pollSeconds);
  return Math.min(maxPolls(pollSeconds), Math.max(1, Math.ceil(turnaroundSeconds / poll)));
}

/**
 * Defaults of the workflow's overhead: assumptions, not measurements. AWS publishes no latency per
 * state transition and a local run's history (`aws-local-stepfunctions`, milliseconds) says nothing
 * about the service, so 0.1 s per transition is a round guess on the slow side; a cold start of a
 * bundled Node.js function is taken as a second. Both are small next to the model calls (the
 * estimate prints their share as "transitions, cold starts").
 */
export const DEFAULT_TIME_ASSUMPTIONS: TimeAssumptions = {
  mapConcurrency: 10,
  maxModelCallsInFlight: DEFAULT_OPERATOR_LIMITS.maxModelCallsInFlight,
  stateTransitionSeconds: 0.1,
  coldStartSeconds: 1,
};

/** The parts of one iteration's wall time, in seconds. */
export interface IterationTime {
  /** Plan, the Map's waves of batches (or the quota's pace), Collect. */
  generate: number;
  filter: number;
  /** Batch mode: the submit, the Waits and the looks until the job is done; else 0. */
  batch: number;
  /** The Map: `ceil(items / mapConcurrency)` waves of one chunk's duration. */
  map: number;
  save: number;
  /** State transitions of the iteration (its items' included) and, in the first, the cold starts. */
  workflow: number;
  total: number;
  /** What set the pace of the two steps of model calls: Map items at once, or one of the model's quotas. */
  limits: { generate: TimeLimit; map: TimeLimit };
  /**
   * The least tokens per minute at which the token quota does not lengthen the iteration (each step's
   * reservations fit its seconds, the iteration's tokens used fit its seconds), against its pace with
   * and without the request quota (`RunTokens`).
   */
  tokensPerMinuteNotBinding: { withRequests: number; atConcurrency: number };
}

/**
 * What bounds a step of model calls: the items (and calls) at once, or one of the model's quotas (its
 * requests per minute, its iteration's tokens used per minute, its tokens reserved at once: `pacedSteps`).
 */
export type TimeLimit = 'concurrency' | QuotaBound;

/** The steps a projection names as the bottleneck. */
export type TimeStep = Exclude<keyof IterationTime, 'total' | 'limits' | 'tokensPerMinuteNotBinding'>;

/** The steps of an iteration's wall time, as the estimate names them. */
export const TIME_STEP_LABELS: Readonly<Record<TimeStep, string>> = {
  generate: 'Generate instructions',
  filter: 'Filter and deduplicate',
  batch: 'the instance batch job (submit, waits, looks)',
  map: 'Generate instances (Map)',
  save: 'Save iteration',
  workflow: 'transitions, cold starts',
};

/** A run's projected wall time. */
export interface WallTime {
  iterations: IterationTime[];
  /** Prepare run and Export dataset (and their transitions). */
  onceSeconds: number;
  totalSeconds: number;
  /**
   * The step with the largest share of the total, that share, and for a step of model calls what bounds
   * it (in most of its time): `limitedBy` in words.
   */
  bottleneck: { step: TimeStep | 'daily-tokens'; share: number; limit?: TimeLimit; limitedBy?: string };
  /** Map items (batches or chunks) that run at once: `mapConcurrency` within the operator's caps. */
  itemsAtOnce: number;
  /** The run's tokens as the model's token quotas count them (absent when its shapes carry none). */
  tokens?: RunTokens;
}

/** A run's tokens against the model's token quotas (`projectWallTime`). */
export interface RunTokens {
  /** Input + output tokens of the run's model's calls, in all. */
  used: number;
  /** Input + `maxTokens` of those calls, in all (each call's reservation at its start). */
  reserved: number;
  /**
   * The least tokens per minute at which the token quota would lengthen no iteration (the largest of
   * the iterations'): `withRequests` against their pace under the Map items at once and the request
   * quota, `atConcurrency` under the Map items at once alone.
   */
  tokensPerMinuteNotBinding: { withRequests: number; atConcurrency: number };
  /** The quota of tokens per day applied (`tokensPerDay`, else `tokensPerMinute × 1,440`). */
  tokensPerDay?: number;
  /** Seconds the run waits past its projected time for the daily quota (0: it does not bind). */
  dailyWaitSeconds: number;
}

/** Bedrock's default of a model's tokens per day: its tokens per minute, all day long. */
export const MINUTES_PER_DAY = 1_440;

/** The bottleneck as the estimate names it: a step, or the wait for the daily token quota. */
export const bottleneckLabel = (step: WallTime['bottleneck']['step']) =>
  step === 'daily-tokens' ? "waiting on the model's daily token quota" : TIME_STEP_LABELS[step];

/** Map items at once: the run's `mapConcurrency`, within the operator's caps on model calls. */
export function itemsAtOnce(time: TimeAssumptions, callConcurrency: number): number {
  return Math.max(
    1,
    Math.min(
      time.mapConcurrency,
      time.modelFunctionConcurrency ?? Number.POSITIVE_INFINITY,
      Math.floor(time.maxModelCallsInFlight / callConcurrency),
    ),
  );
}

/**
 * One iteration's wall time: its functions one after the other, the Map's chunks in waves. `first`: the
 * run's first iteration (its functions start cold); `firstSharded`: the first gated in shards (the shard
 * function starts cold).
 */
export function iterationTime(
  shape: IterationShape,
  usage: UsageAssumptions,
  time: TimeAssumptions,
  first: boolean,
  firstSharded = false,
): IterationTime {
  const s: IterationSeconds = iterationSeconds(shape, usage);
  const atOnce = itemsAtOnce(time, usage.callConcurrency);
  const batchWaves = Math.ceil(shape.instructionBatches / atOnce);
  const waves = Math.ceil(shape.mapItems / atOnce);
  const sharded = (shape.gateShards ?? 0) > 0;
  const looks = shape.batchLooks ?? 0;
  // The states each iteration enters (7) and one per wave of each Map's items; in shards the path's
  // extra states and, for each of the two shard Maps, its one wave (a child's start and its state);
  // in batch mode the submit and its Choice, then each look's Wait, check and Choice.
  const transitions =
    7 +
    batchWaves +
    waves +
    (sharded
      ? SHARDED_GATE_PATH_STATES.length - 1 + SHARD_ITEM_STATES.length * (CHILD_EXECUTION_TRANSITIONS + 1)
      : 0) +
    (looks > 0 ? 2 + 3 * looks : 0);
  // Everything but the two Maps' items.
  const rest = {
    planAndCollect: s.planAndCollect,
    filter: s.filter,
    batch: looks > 0 ? s.batchSteps + looks * Math.max(0, time.batchPollSeconds ?? 60) : 0,
    save: s.save,
    // Cold starts in the first: plan, the batches (at once), filter, the chunks (at once), save; the
    // shard function's in the first iteration gated in shards.
    workflow:
      transitions * time.stateTransitionSeconds +
      (first ? 5 * time.coldStartSeconds : 0) +
      (sharded && firstSharded ? time.coldStartSeconds : 0),
  };
  const restSeconds = Object.values(rest).reduce((a, b) => a + b, 0);
  const pace = (quotas: ModelQuotas) => pacedSteps(shape, s, usage, atOnce, quotas, restSeconds);
  const { generate, map } = pace(time);
  const parts = {
    generate: rest.planAndCollect + generate.seconds,
    filter: rest.filter,
    batch: rest.batch,
    map: map.seconds,
    save: rest.save,
    workflow: rest.workflow,
  };
  return {
    ...parts,
    total: Object.values(parts).reduce((a, b) => a + b, 0),
    limits: { generate: generate.limit, map: map.limit },
    tokensPerMinuteNotBinding: {
      withRequests: notBinding(
        shape,
        usage,
        pace({ requestsPerMinute: time.requestsPerMinute }),
        restSeconds,
      ),
      atConcurrency: notBinding(shape, usage, pace({}), restSeconds),
    },
  };
}

/**
 * The least tokens per minute at which the token quota sets the pace of neither step of an iteration
 * whose steps take `paced` without it: each step's reservations within its seconds, the iteration's
 * tokens used within its seconds (`pacedSteps`).
 */
function notBinding(
  shape: IterationShape,
  usage: UsageAssumptions,
  paced: { generate: PacedStep; map: PacedStep },
  restSeconds: number,
): number {
  const generate = tokenWork(
    shape.instructionQuotaTokens,
    callLength(shape.instructionCalls, shape.instructionOutputTokens, usage),
  );
  const map = tokenWork(shape.mapQuotaTokens, callLength(shape.mapCalls, shape.mapOutputTokens, usage));
  const over = (work: number, seconds: number) => (work > 0 && seconds > 0 ? work / seconds : 0);
  return Math.max(
    over(generate.reserved, paced.generate.seconds),
    over(map.reserved, paced.map.seconds),
    over(generate.used + map.used, paced.generate.seconds + paced.map.seconds + restSeconds),
  );
}

const fmt = (n: number | undefined) => Math.round(n ?? 0).toLocaleString('en-US');

/** What bounds a step, in words; `reservation`: a call's mean input + `maxTokens` in that step. */
function limitedBy(
  limit: TimeLimit,
  time: TimeAssumptions,
  atOnce: number,
  callConcurrency: number,
  reservation: number,
): string {
  if (limit === 'requests') return `the model's quota of ${fmt(time.requestsPerMinute)} requests/min`;
  if (limit === 'tokens')
    return `the model's quota of ${fmt(time.tokensPerMinute)} tokens/min (input + output used)`;
  if (limit === 'reservations') {
    const calls = Math.floor((time.tokensPerMinute ?? 0) / Math.max(1, reservation));
    return `the model's quota of ${fmt(time.tokensPerMinute)} tokens/min (reserved at once: input + maxTokens, ${fmt(reservation)} a call, ${fmt(calls)} calls in flight)`;
  }
  const capped = atOnce < time.mapConcurrency ? " (the operator's caps)" : '';
  return `${atOnce} Map items at once${capped} × ${callConcurrency} calls each`;
}

/** The quota tokens of a step of an iteration (`generate`: the instruction calls, `map`: the Map's). */
const stepTokens = (shape: IterationShape, step: 'generate' | 'map') =>
  step === 'generate' ? shape.instructionQuotaTokens : shape.mapQuotaTokens;

/**
 * The run's tokens against the token quotas (undefined when its shapes carry none), and the seconds
 * the daily quota adds to `totalSeconds`: a run whose tokens take more days than it lasts, at the
 * quota's tokens per day (spread evenly over the day, as a bucket refilling all day long), lasts those
 * days.
 */
function runTokens(
  shapes: readonly IterationShape[],
  iterations: readonly IterationTime[],
  time: TimeAssumptions,
  totalSeconds: number,
): RunTokens | undefined {
  const all = shapes.flatMap((shape) => [shape.instructionQuotaTokens, shape.mapQuotaTokens]);
  if (all.every((q) => q === undefined)) return undefined;
  const sum = (pick: (q: QuotaTokens) => number) => all.reduce((s, q) => s + (q ? pick(q) : 0), 0);
  const used = sum((q) => q.input + q.output);
  const tokensPerDay =
    time.tokensPerDay ?? (time.tokensPerMinute ? time.tokensPerMinute * MINUTES_PER_DAY : undefined);
  const daySeconds = tokensPerDay ? (used / tokensPerDay) * 86_400 : 0;
  const most = (pick: (it: IterationTime) => number) =>
    iterations.reduce((m, it) => Math.max(m, pick(it)), 0);
  return {
    used,
    reserved: sum((q) => q.input + q.reservedOutput),
    tokensPerMinuteNotBinding: {
      withRequests: most((it) => it.tokensPerMinuteNotBinding.withRequests),
      atConcurrency: most((it) => it.tokensPerMinuteNotBinding.atConcurrency),
    },
    ...(tokensPerDay ? { tokensPerDay } : {}),
    dailyWaitSeconds: Math.max(0, daySeconds - totalSeconds),
  };
}

/** Projects a run's wall time from its iterations' shapes (see the module comment). */
export function projectWallTime(
  shapes: readonly IterationShape[],
  usage: UsageAssumptions,
  time: TimeAssumptions,
  exportSeconds: number,
): WallTime {
  const firstSharded = shapes.findIndex((shape) => (shape.gateShards ?? 0) > 0);
  const iterations = shapes.map((shape, i) => iterationTime(shape, usage, time, i === 0, i === firstSharded));
  // Start run, Prepare run (cold), Export dataset (cold), Done.
  const onceSeconds =
    4 * time.stateTransitionSeconds +
    2 * (time.coldStartSeconds + usage.invocationOverheadSeconds) +
    exportSeconds;
  const projected = onceSeconds + iterations.reduce((s, it) => s + it.total, 0);
  const tokens = runTokens(shapes, iterations, time, projected);
  const dailyWait = tokens?.dailyWaitSeconds ?? 0;
  const totalSeconds = projected + dailyWait;
  const steps = Object.keys(TIME_STEP_LABELS) as TimeStep[];
  const [step, seconds] = steps
    .map((step) => [step, iterations.reduce((s, it) => s + it[step], 0)] as const)
    .reduce((a, b) => (b[1] > a[1] ? b : a));
  const atOnce = itemsAtOnce(time, usage.callConcurrency);
  const share = (s: number) => (totalSeconds > 0 ? s / totalSeconds : 0);
  const bottleneck: WallTime['bottleneck'] =
    dailyWait > seconds
      ? {
          step: 'daily-tokens',
          share: share(dailyWait),
          limitedBy: `its quota of ${fmt(tokens?.tokensPerDay)} tokens/day for the run's ${fmt(tokens?.used)} tokens`,
        }
      : { step, share: share(seconds) };
  if (bottleneck.step === 'generate' || bottleneck.step === 'map') {
    const own = bottleneck.step;
    // The bound that set most of the step's seconds over the run.
    const byLimit = new Map<TimeLimit, number>();
    for (const it of iterations) byLimit.set(it.limits[own], (byLimit.get(it.limits[own]) ?? 0) + it[own]);
    const [limit] = [...byLimit].reduce((a, b) => (b[1] > a[1] ? b : a));
    const quota = shapes.map((shape) => stepTokens(shape, own));
    const reservation =
      quota.reduce((s, q) => s + (q ? q.input + q.reservedOutput : 0), 0) /
      Math.max(
        1,
        quota.reduce((s, q) => s + (q?.calls ?? 0), 0),
      );
    bottleneck.limit = limit;
    bottleneck.limitedBy = limitedBy(limit, time, atOnce, usage.callConcurrency, reservation);
  }
  return {
    iterations,
    onceSeconds,
    totalSeconds,
    bottleneck,
    itemsAtOnce: atOnce,
    ...(tokens ? { tokens } : {}),
  };
}

/** Whether a model's recorded calls say anything about a deployed model's reply time. */
export function hasRealLatency(model: string): boolean {
  const { provider } = parseModelId(model);
  return provider !== 'offline' && provider !== 'replay';
}

/** Seconds as the estimate prints them: `1 h 02 min`, `3 min 20 s`, `12.3 s`. */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.round(seconds - minutes * 60)).padStart(2, '0')} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes - hours * 60).padStart(2, '0')} min`;
}
