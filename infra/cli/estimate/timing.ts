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
 * and no step's calls go faster than the model's account quota allows (requests per minute): a step
 * takes the longer of the two.
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
  type IterationSeconds,
  type IterationShape,
  iterationSeconds,
  SHARD_ITEM_STATES,
  SHARDED_GATE_PATH_STATES,
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
 * Amazon Nova Micro"; quotas vary by region and account, check yours in Service Quotas). Bedrock also
 * caps tokens per minute: not modeled.
 */
export const MODEL_QUOTAS: Readonly<Record<string, ModelQuota>> = {
  'bedrock:amazon.nova-micro-v1:0': {
    requestsPerMinute: 2_000,
    source: "Bedrock's default on-demand quota for Nova Micro",
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
  /** What set the pace of the two steps of model calls: Map items at once, or the model's quota. */
  limits: { generate: TimeLimit; map: TimeLimit };
}

/** What bounds a step of model calls: the items (and calls) at once, or the model's requests per minute. */
export type TimeLimit = 'concurrency' | 'quota';

/** The steps a projection names as the bottleneck. */
export type TimeStep = Exclude<keyof IterationTime, 'total' | 'limits'>;

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
  bottleneck: { step: TimeStep; share: number; limit?: TimeLimit; limitedBy?: string };
  /** Map items (batches or chunks) that run at once: `mapConcurrency` within the operator's caps. */
  itemsAtOnce: number;
}

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
  // Seconds the model's quota needs for `calls` requests, at its pace.
  const quota = (calls: number) => (time.requestsPerMinute ? (calls * 60) / time.requestsPerMinute : 0);
  const batches = { concurrency: batchWaves * s.batch, quota: quota(shape.instructionCalls) };
  const chunks = { concurrency: waves * s.mapItem, quota: quota(shape.mapCalls) };
  const limit = (step: typeof batches): TimeLimit =>
    step.quota > step.concurrency ? 'quota' : 'concurrency';
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
  const parts = {
    generate: s.planAndCollect + Math.max(batches.concurrency, batches.quota),
    filter: s.filter,
    batch: looks > 0 ? s.batchSteps + looks * Math.max(0, time.batchPollSeconds ?? 60) : 0,
    map: Math.max(chunks.concurrency, chunks.quota),
    save: s.save,
    // Cold starts in the first: plan, the batches (at once), filter, the chunks (at once), save; the
    // shard function's in the first iteration gated in shards.
    workflow:
      transitions * time.stateTransitionSeconds +
      (first ? 5 * time.coldStartSeconds : 0) +
      (sharded && firstSharded ? time.coldStartSeconds : 0),
  };
  return {
    ...parts,
    total: Object.values(parts).reduce((a, b) => a + b, 0),
    limits: { generate: limit(batches), map: limit(chunks) },
  };
}

/** What bounds a step, in words. */
function limitedBy(limit: TimeLimit, time: TimeAssumptions, atOnce: number, callConcurrency: number): string {
  if (limit === 'quota')
    return `the model's quota of ${time.requestsPerMinute?.toLocaleString('en-US')} requests/min`;
  const capped = atOnce < time.mapConcurrency ? " (the operator's caps)" : '';
  return `${atOnce} Map items at once${capped} × ${callConcurrency} calls each`;
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
  const totalSeconds = onceSeconds + iterations.reduce((s, it) => s + it.total, 0);
  const steps = Object.keys(TIME_STEP_LABELS) as TimeStep[];
  const [step, seconds] = steps
    .map((step) => [step, iterations.reduce((s, it) => s + it[step], 0)] as const)
    .reduce((a, b) => (b[1] > a[1] ? b : a));
  const atOnce = itemsAtOnce(time, usage.callConcurrency);
  const bottleneck: WallTime['bottleneck'] = { step, share: totalSeconds > 0 ? seconds / totalSeconds : 0 };
  if (step === 'generate' || step === 'map') {
    const quotaSeconds = iterations.reduce((s, it) => s + (it.limits[step] === 'quota' ? it[step] : 0), 0);
    bottleneck.limit = quotaSeconds > seconds / 2 ? 'quota' : 'concurrency';
    bottleneck.limitedBy = limitedBy(bottleneck.limit, time, atOnce, usage.callConcurrency);
  }
  return { iterations, onceSeconds, totalSeconds, bottleneck, itemsAtOnce: atOnce };
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
