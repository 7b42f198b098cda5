/**
 * How long a deployed run takes: per iteration, the functions the loop waits on one after the other
 * ("Generate instructions", "Filter and deduplicate", the Map's waves of chunks, "Save iteration"),
 * each as long as `iterationSeconds` (the same durations Lambda bills, `aws-usage.ts`), plus the
 * workflow's own overhead (state transitions, cold starts). Per-call latency is the model's: measured
 * from recorded calls when a run of that model is on record, else the defaults below.
 */
import { z } from 'zod';
import { parseModelId } from '../../../functions/shared/models/model-ids.ts';
import {
  type IterationSeconds,
  type IterationShape,
  iterationSeconds,
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
  /** Seconds Step Functions takes to move from one state to the next and invoke its function. */
  stateTransitionSeconds: number;
  /** Extra seconds of a function's first (cold) invocation: once per serial step of the first iteration. */
  coldStartSeconds: number;
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
  stateTransitionSeconds: 0.1,
  coldStartSeconds: 1,
};

/** The parts of one iteration's wall time, in seconds. */
export interface IterationTime {
  generate: number;
  filter: number;
  /** The Map: `ceil(items / mapConcurrency)` waves of one chunk's duration. */
  map: number;
  save: number;
  /** State transitions of the iteration (its items' included) and, in the first, the cold starts. */
  workflow: number;
  total: number;
}

/** The steps a projection names as the bottleneck. */
export type TimeStep = Exclude<keyof IterationTime, 'total'>;

/** The steps of an iteration's wall time, as the estimate names them. */
export const TIME_STEP_LABELS: Readonly<Record<TimeStep, string>> = {
  generate: 'Generate instructions',
  filter: 'Filter and deduplicate',
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
  /** The step with the largest share of the total, and that share. */
  bottleneck: { step: TimeStep; share: number };
}

/** One iteration's wall time: its functions one after the other, the Map's chunks in waves. */
export function iterationTime(
  shape: IterationShape,
  usage: UsageAssumptions,
  time: TimeAssumptions,
  first: boolean,
): IterationTime {
  const s: IterationSeconds = iterationSeconds(shape, usage);
  const waves = Math.ceil(shape.mapItems / time.mapConcurrency);
  // The states each iteration enters (5) and one per Map item; the Map's items overlap by waves.
  const transitions = 5 + waves;
  const parts = {
    generate: s.generate,
    filter: s.filter,
    map: waves * s.mapItem,
    save: s.save,
    workflow: transitions * time.stateTransitionSeconds + (first ? 4 * time.coldStartSeconds : 0),
  };
  return { ...parts, total: Object.values(parts).reduce((a, b) => a + b, 0) };
}

/** Projects a run's wall time from its iterations' shapes (see the module comment). */
export function projectWallTime(
  shapes: readonly IterationShape[],
  usage: UsageAssumptions,
  time: TimeAssumptions,
  exportSeconds: number,
): WallTime {
  const iterations = shapes.map((shape, i) => iterationTime(shape, usage, time, i === 0));
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
  return {
    iterations,
    onceSeconds,
    totalSeconds,
    bottleneck: { step, share: totalSeconds > 0 ? seconds / totalSeconds : 0 },
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
