import { promptsForIteration } from '../../../functions/generate-instructions/core.ts';
import { GAIN_BATCH } from '../../../functions/generate-instructions/evol.ts';
import { parseRunInput } from '../../../functions/prepare/core.ts';
import { BEDROCK_MIN_RECORDS } from '../../../functions/shared/batch/jobs.ts';
import { SelfInstructError } from '../../../functions/shared/errors.ts';
import { iterationsPerExecution, MAX_HISTORY_EVENTS } from '../../../functions/shared/execution-limits.ts';
import { judgeModelOf, teacherModelOf } from '../../../functions/shared/models/judge-ids.ts';
import { parseModelId } from '../../../functions/shared/models/model-ids.ts';
import type { ModelStage } from '../../../functions/shared/ports.ts';
import {
  CHILD_EXECUTION_TRANSITIONS,
  DEFAULT_USAGE_ASSUMPTIONS,
  gateShardsFor,
  type IterationShape,
  type QuotaTokens,
  runAwsUsage,
  SHARD_ITEM_STATES,
  SHARDED_GATE_PATH_STATES,
  type UsageAssumptions,
} from '../../../functions/shared/pricing/aws-usage.ts';
import {
  type AwsCost,
  type AwsUsage,
  awsCost,
  BATCH_PRICE_FACTOR,
  type CostSummary,
  type ModelCost,
  modelCost,
  type PriceTable,
  summarizeCost,
} from '../../../functions/shared/pricing/pricing.ts';
import { PROFILES } from '../../../functions/shared/profiles.ts';
import type { TemplateOverrides } from '../../../functions/shared/prompt-templates.ts';
import {
  type Method,
  type ProfileName,
  Progress,
  type ResponseStyle,
  type RunState,
  type SeedTask,
} from '../../../functions/shared/schemas.ts';
import { acceptanceAt, batchAcceptance } from './acceptance.ts';
import { type Calibration, EVOL_DEFAULTS, PROFILE_DEFAULTS } from './calibrate.ts';
import { MODEL_STEPS, measurePrompts, type PromptTokens } from './prompts.ts';
import {
  batchLooks,
  bottleneckLabel,
  DEFAULT_TIME_ASSUMPTIONS,
  defaultLatency,
  formatDuration,
  itemsAtOnce,
  MINUTES_PER_DAY,
  MODEL_QUOTAS,
  type ModelLatency,
  projectWallTime,
  type TimeAssumptions,
  type WallTime,
} from './timing.ts';

/** The input of `estimateRun`. */
export interface EstimateInput {
  model: string;
  /** The judge (run input `judgeModel`): `none` for no judge; by default the run's model. */
  judgeModel?: string;
  /** `explained`: a teacher call per instance kept (run input `responseStyle`). @default 'direct' */
  responseStyle?: ResponseStyle;
  /** The teacher of explained responses; by default the run's model. */
  teacherModel?: string;
  /** Tasks the run should add. */
  target: number;
  profile: ProfileName;
  /** How candidates are made (run input `method`). @default 'self-instruct' */
  method?: Method;
  prices: PriceTable;
  /** The seed file the run starts a new pool from (its prompts are rendered). */
  seeds: readonly SeedTask[];
  /** The run's own prompt templates (`--templates`); the shipped ones when absent. */
  templates?: TemplateOverrides;
  /** Yields and output tokens; the profile's defaults when absent. */
  calibration?: Calibration;
  /** Iteration cap; when absent, the run input's default or the smallest cap that reaches the target. */
  maxIterations?: number;
  chunkSize?: number;
  /** Instruction calls per item of the "Generate instructions" Map (run input `instructionBatchSize`). */
  instructionBatchSize?: number;
  callConcurrency?: number;
  /** Map items at once (run input `mapConcurrency`). */
  mapConcurrency?: number;
  maxPromptsPerIteration?: number;
  /** Pool size from which the gate runs in shards (run input `shardGateAbove`). */
  shardGateAbove?: number;
  /** Shards of the sharded gate (run input `gateShards`). */
  gateShards?: number;
  /** Overrides of the AWS usage assumptions (a given latency wins over the model's). */
  assumptions?: Partial<UsageAssumptions>;
  /** Overrides of the workflow's time assumptions. */
  timeAssumptions?: Partial<Omit<TimeAssumptions, 'mapConcurrency'>>;
  /** Batch mode (run input `batch`): the instance calls at the batch price, and a job's wait per iteration. */
  batch?: boolean;
  /** Batch mode: seconds between two looks at a job (run input `batchPollSeconds`). @default 60 */
  batchPollSeconds?: number;
  /** Batch mode: the job's assumed turnaround, submit to done, in seconds. @default BATCH_WAIT_SECONDS */
  batchTurnaroundSeconds?: number;
}

/**
 * The turnaround of an iteration's batch job that an estimate assumes by default (batch mode): an
 * assumption, not a measurement; providers promise only their 24 h window; Bedrock's and OpenAI's jobs
 * of a few hundred records mostly finish within an hour.
 */
export const BATCH_WAIT_SECONDS = 3600;

/** A tokens-per-minute quota below what one call of the run's model reserves: Bedrock throttles every such call. */
export class TokenQuotaTooLow extends SelfInstructError {}

/** One model step's share of the estimate. */
export interface StageEstimate {
  stage: ModelStage;
  calls: number;
  inputTokensPerCall: number;
  outputTokensPerCall: number;
  inputTokens: number;
  outputTokens: number;
  cost: ModelCost;
}

/** What `estimateRun` returns (and `estimate --json` prints). */
export interface Estimate {
  model: string;
  profile: ProfileName;
  method: Method;
  target: number;
  prices: { version: string; date: string; region: string; modelNotes?: string };
  run: {
    iterations: number;
    maxIterations: number;
    /** Executions of the state machine the run takes: each holds `iterationsPerExecution` at most. */
    executions: number;
    iterationsPerExecution: number;
    reachesTarget: boolean;
    instructionCalls: number;
    candidates: number;
    acceptedInstructions: number;
    mapItems: number;
    /** Iterations whose pool was past `shardGateAbove`: their gate runs in shards. */
    shardedIterations: number;
    /** Tasks the run adds (at or above the target: the last iteration overshoots). */
    addedTasks: number;
    /** The acceptance the simulation assumed in its first and its last iteration, at those pools. */
    acceptance: { start: number; end: number; poolAtStart: number; poolAtEnd: number };
  };
  /** The projected wall time of the run, deployed (see `timing.ts`). */
  time: WallTime & { latency: ModelLatency; assumptions: TimeAssumptions };
  stages: StageEstimate[];
  tokens: { input: number; output: number };
  modelCost: ModelCost;
  aws: AwsCost & { usage: AwsUsage };
  summary: CostSummary;
  calibration: Calibration;
  promptTokens: PromptTokens;
  assumptions: string[];
}

/** The run configuration the stages would use (the run input's defaults, then these). */
function runConfig(input: EstimateInput, maxIterations: number) {
  return parseRunInput(
    {
      profile: input.profile,
      method: input.method,
      model: input.model,
      target: input.target,
      maxIterations,
      ...(input.chunkSize ? { chunkSize: input.chunkSize } : {}),
      ...(input.instructionBatchSize ? { instructionBatchSize: input.instructionBatchSize } : {}),
      ...(input.callConcurrency ? { callConcurrency: input.callConcurrency } : {}),
      ...(input.mapConcurrency ? { mapConcurrency: input.mapConcurrency } : {}),
      ...(input.maxPromptsPerIteration ? { maxPromptsPerIteration: input.maxPromptsPerIteration } : {}),
      ...(input.shardGateAbove !== undefined ? { shardGateAbove: input.shardGateAbove } : {}),
      ...(input.gateShards ? { gateShards: input.gateShards } : {}),
      ...(input.batch ? { batch: true } : {}),
      ...(input.batchPollSeconds !== undefined ? { batchPollSeconds: input.batchPollSeconds } : {}),
    },
    'estimate',
  );
}

// Fields the loop carries that the sizing does not read, with their defaults (the simulation's counts
// are expected values, not integers, so the rest is filled in by hand).
const PROGRESS_DEFAULTS = Progress.parse({ iteration: 0, added: 0, poolSize: 0 });

interface SimulatedIteration {
  prompts: number;
  candidates: number;
  /** The acceptance assumed for this iteration's candidates (the curve at its pool). */
  acceptance: number;
  accepted: number;
  complete: number;
  mapItems: number;
  poolInstructions: number;
  /** Shards "Gate in shards?" sends its gate to (0: "Filter and deduplicate"). */
  gateShards: number;
}

/**
 * Runs the loop on expected values: each iteration sizes its calls with the stage's own
 * `promptsForIteration` (remaining target, iterations left, last yield), then candidates, accepted and
 * complete tasks follow from the calibration's rates.
 */
function simulate(input: EstimateInput, calibration: Calibration, maxIterations: number) {
  const config = runConfig(input, maxIterations);
  let state: RunState = {
    runId: 'estimate',
    config,
    progress: { ...PROGRESS_DEFAULTS, iteration: 0, added: 0, poolSize: input.seeds.length },
  };
  let poolInstructions = input.seeds.length;
  const iterations: SimulatedIteration[] = [];
  while (state.progress.added < config.target && state.progress.iteration < config.maxIterations) {
    const prompts = promptsForIteration(state);
    const candidates = prompts * calibration.candidatesPerCall;
    const acceptance = batchAcceptance(calibration.acceptanceCurve, poolInstructions, candidates);
    const accepted = candidates * acceptance;
    const complete = accepted * calibration.completeShare;
    iterations.push({
      prompts,
      candidates,
      acceptance,
      accepted,
      complete,
      mapItems: Math.ceil(accepted / config.chunkSize),
      poolInstructions,
      gateShards: gateShardsFor(config, state.progress.poolSize),
    });
    poolInstructions += accepted;
    state = {
      ...state,
      progress: {
        ...state.progress,
        iteration: state.progress.iteration + 1,
        added: state.progress.added + complete,
        poolSize: state.progress.poolSize + complete,
        yieldPerPrompt: complete / prompts,
      },
    };
    // A calibration that yields nothing would loop to the cap: that is the answer, stop early.
    if (complete <= 0) break;
  }
  return { config, iterations, added: state.progress.added };
}

/**
 * The iteration cap a user would run with: the run input's default when the simulated run reaches the
 * target with it, else the smallest cap that does (bounded by the schema's 10,000), found by doubling
 * then bisection (a higher cap reaches at least as far: acceptance falls with the pool, not with time).
 */
function defaultCap(input: EstimateInput, calibration: Calibration): number {
  const { maxIterations } = parseRunInput({}, 'estimate');
  const reaches = (cap: number) => simulate(input, calibration, cap).added >= input.target;
  if (reaches(maxIterations)) return maxIterations;
  let low = maxIterations;
  let high = Math.min(10_000, maxIterations * 2);
  while (high < 10_000 && !reaches(high)) {
    low = high;
    high = Math.min(10_000, high * 2);
  }
  if (!reaches(high)) return high;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (reaches(middle)) high = middle;
    else low = middle;
  }
  return high;
}

/** The model cost of a run whose steps call several models: the unpriced one if any, else the sum. */
function combineModelCosts(costs: readonly ModelCost[]): ModelCost {
  const [first, ...rest] = costs;
  if (!first) throw new Error('no model cost to combine');
  const unpriced = costs.find((cost) => !cost.priced);
  if (unpriced || rest.length === 0) return unpriced ?? first;
  const priced = costs.filter((cost) => cost.priced);
  const total = (pick: (cost: (typeof priced)[number]) => number) => priced.reduce((s, c) => s + pick(c), 0);
  return {
    // One model at two prices (batch mode) is named once.
    modelId: [...new Set(costs.map((cost) => cost.modelId))].join(' + '),
    priced: true,
    priceId: [...new Set(priced.map((cost) => cost.priceId))].join(' + '),
    usd: total((c) => c.usd),
    inputUsd: total((c) => c.inputUsd),
    outputUsd: total((c) => c.outputUsd),
  };
}

/** The estimate's line on the token quotas: the model chosen for them, the run's tokens, what binds. */
function tokenQuotaLine(
  model: string,
  time: TimeAssumptions,
  wall: WallTime,
  maxTokens: Record<ModelStage, number>,
  stages: readonly ModelStage[],
  { tokensPerDayGiven }: { tokensPerDayGiven: boolean },
): string {
  const tokens = wall.tokens;
  if (!tokens) return 'Token quotas: not modeled (no model calls).';
  const free = tokens.tokensPerMinuteNotBinding;
  const counted = `${fmtInt(tokens.used)} tokens of ${model}'s on-demand calls (input + output; ${fmtInt(tokens.reserved)} reserved at their starts, input + maxTokens; a judge or teacher on another model counts against that model's quota, a batch job's calls against none)`;
  const threshold = `the token quota would lengthen no iteration at ${fmtInt(Math.ceil(free.withRequests))} tokens/min or more${time.requestsPerMinute ? ` (${fmtInt(Math.ceil(free.atConcurrency))} without the request quota)` : ''}`;
  if (!time.tokensPerMinute && !tokens.tokensPerDay) {
    return `Token quotas: none given (--tokens-per-minute, --tokens-per-day; no documented default is known: see Service Quotas, "On-demand InvokeModel tokens per minute for" the model): the run's ${counted} are not throttled by them; ${threshold}.`;
  }
  const steps = wall.iterations.flatMap((it) => [it.limits.generate, it.limits.map]);
  const bound = (limit: string) => fmtInt(steps.filter((l) => l === limit).length);
  const perMinute = time.tokensPerMinute
    ? `${fmtInt(time.tokensPerMinute)} tokens/min (given) for ${counted}. Bedrock reserves a call's input + maxTokens at its start and settles it to input + output at its end, so (1) no more calls are in flight than the quota over a call's input + maxTokens (maxTokens per call: ${stages.map((stage) => `${stage} ${fmtInt(maxTokens[stage])}`).join(', ')}, as the stages send them): a step takes at least its calls × their length over those calls; (2) tokens are used no faster than the quota a minute: an iteration lasts at least its tokens (input + output) over the quota, the steady state of a quota refilled all minute long (a step of a few seconds draws on the minute's tokens: only the sustained rate binds), and when it would not, its two steps of model calls stretch by the difference, in proportion to their tokens; Lambda bills the stretch. The tighter of the two, the request quota and the Map's items at once sets each step's pace: tokens used for ${bound('tokens')} and reservations for ${bound('reservations')} of the run's ${fmtInt(steps.length)} steps of model calls; ${threshold}.`
    : `no tokens per minute given; the run's ${counted}; ${threshold}.`;
  const day = tokens.tokensPerDay
    ? ` Tokens per day: ${fmtInt(tokens.tokensPerDay)} (${tokensPerDayGiven ? 'given' : `tokens/min × ${fmtInt(MINUTES_PER_DAY)}, AWS's default; new accounts may get less: --tokens-per-day`}), spread over the day: the run's tokens need ${formatDuration((tokens.used / tokens.tokensPerDay) * 86_400)} of it, ${tokens.dailyWaitSeconds > 0 ? `longer than its projected ${formatDuration(wall.totalSeconds - tokens.dailyWaitSeconds)}: it waits ${formatDuration(tokens.dailyWaitSeconds)} more` : 'within its projected time: it does not bind'}.`
    : '';
  return `Token quotas: ${perMinute}${day}`;
}

/** The estimate's line on the sharded gate: from which pool, how many iterations, at what rates. */
function shardedGateLine(
  config: { shardGateAbove?: number; gateShards: number },
  sharded: readonly SimulatedIteration[],
  iterations: readonly SimulatedIteration[],
  a: UsageAssumptions,
): string {
  const from = `Gate in shards: from a pool of ${fmtInt(config.shardGateAbove ?? Infinity)} tasks (shardGateAbove)`;
  const first = sharded[0];
  if (!first) {
    return `${from}; no iteration starts at such a pool, so every gate runs in "Filter and deduplicate".`;
  }
  return `${from}: ${plural(sharded.length, 'iteration')} of ${fmtInt(iterations.length)} (from iteration ${iterations.indexOf(first) + 1}) gate in ${first.gateShards} shard Lambdas, each billed for its two scans of its range (${a.gateShardCpuRatio}× the gate's CPU per pair, at ${(a.gatePairsPerSecond / 1e6).toFixed(0)} M pairs/s) plus ${a.invocationOverheadSeconds} s per invocation, and the Filter for its three steps (the decisions twice, ${(a.gateDecisionCpuSecondsPerPair * 2000 ** 2).toFixed(2)} s each at 2,000 candidates, growing with their square); ${SHARDED_GATE_PATH_STATES.length - 1} more state transitions and ${(CHILD_EXECUTION_TRANSITIONS + 1) * SHARD_ITEM_STATES.length} per shard (an item of each Map, each a child execution: its start and its state).`;
}

const plural = (n: number, noun: string) => `${fmtInt(n)} ${noun}${Math.round(n) === 1 ? '' : 's'}`;

/** A count as the estimate shows it: rounded, with thousands separators. */
export const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * Estimates what a run that adds `target` tasks costs: model calls and tokens per step, model cost,
 * AWS usage and cost, and the per-task figures, with every assumption spelled out. Pure.
 */
export function estimateRun(input: EstimateInput): Estimate {
  const method = input.method ?? 'self-instruct';
  const calibration =
    input.calibration ?? (method === 'evol' ? EVOL_DEFAULTS : PROFILE_DEFAULTS[input.profile]);
  const latency = calibration.latency ?? defaultLatency(input.model);
  // Evol's information-gain questions are instruction-step calls too.
  const instructionCallsPerPrompt = 1 + (calibration.gainCallsPerCall ?? 0);
  const assumptions: UsageAssumptions = {
    ...DEFAULT_USAGE_ASSUMPTIONS,
    firstTokenSeconds: latency.firstTokenSeconds,
    outputTokensPerSecond: latency.outputTokensPerSecond,
    // The run input's `callConcurrency` (its default unless given), as "Save iteration" accounts a run.
    callConcurrency: runConfig(input, 1).callConcurrency,
    ...input.assumptions,
  };
  const maxIterations = input.maxIterations ?? defaultCap(input, calibration);
  const { config, iterations, added } = simulate(input, calibration, maxIterations);
  const teacher = teacherModelOf({ ...input, responseStyle: input.responseStyle ?? 'direct' });
  const promptTokens = measurePrompts(input.profile, input.seeds, {
    templates: input.templates,
    method,
    gainCallsPerCall: calibration.gainCallsPerCall,
    // The judge of an explained run reads the teacher's replies, not the direct outputs.
    explained:
      teacher === undefined
        ? undefined
        : {
            outputTokens: calibration.outputTokensPerCall.teach,
            instancesPerTask: calibration.instancesPerTask,
          },
  });

  const sum = (pick: (it: SimulatedIteration) => number) => iterations.reduce((s, it) => s + pick(it), 0);
  const accepted = sum((it) => it.accepted);
  const judge = judgeModelOf({ judgeModel: input.judgeModel ?? input.model });
  const judgeCallsPerAccepted = judge === undefined ? 0 : calibration.judgeCallsPerAccepted;
  // A direct run has no teacher step: its estimate shows none.
  const steps = MODEL_STEPS.filter((stage) => stage !== 'teach' || teacher !== undefined);
  const callsPerAccepted: Record<Exclude<ModelStage, 'generate-instructions'>, number> = {
    classify: calibration.classifyCallsPerAccepted,
    'generate-instances': calibration.instanceCallsPerAccepted,
    judge: judgeCallsPerAccepted,
    // The teacher writes each instance the filters kept again: about the instances of a complete task.
    teach: teacher === undefined ? 0 : calibration.completeShare * calibration.instancesPerTask,
  };
  const calls: Record<ModelStage, number> = {
    'generate-instructions': sum((it) => it.prompts) * instructionCallsPerPrompt,
    classify: accepted * callsPerAccepted.classify,
    'generate-instances': accepted * callsPerAccepted['generate-instances'],
    judge: accepted * callsPerAccepted.judge,
    teach: accepted * callsPerAccepted.teach,
  };
  // Batch mode: an iteration's instance calls go to a job when they make at least Bedrock's minimum of
  // records (else they are made on demand, "Submit the instance batch" says so); only those get the
  // batch price.
  const minRecords = parseModelId(input.model).provider === 'bedrock' ? BEDROCK_MIN_RECORDS : 1;
  const jobOf = (it: SimulatedIteration) =>
    input.batch === true && it.accepted * callsPerAccepted['generate-instances'] >= minRecords;
  const jobShare = accepted > 0 ? sum((it) => (jobOf(it) ? it.accepted : 0)) / accepted : 0;
  const batchShare = (stage: ModelStage) => (stage === 'generate-instances' ? jobShare : 0);
  // A step's tokens, the part at the batch price or the rest.
  const part = (tokens: number, stage: ModelStage, batch: boolean) =>
    tokens * (batch ? batchShare(stage) : 1 - batchShare(stage));
  const modelOf = (stage: ModelStage) =>
    stage === 'judge' && judge !== undefined
      ? judge
      : stage === 'teach' && teacher !== undefined
        ? teacher
        : input.model;
  const stages: StageEstimate[] = steps.map((stage) => {
    const inputTokens = calls[stage] * promptTokens[stage];
    const outputTokens = calls[stage] * calibration.outputTokensPerCall[stage];
    return {
      stage,
      calls: calls[stage],
      inputTokensPerCall: promptTokens[stage],
      outputTokensPerCall: calibration.outputTokensPerCall[stage],
      inputTokens,
      outputTokens,
      cost: combineModelCosts(
        [false, true]
          .filter((batch) => part(1, stage, batch) > 0 || (!batch && batchShare(stage) === 0))
          .map((batch) =>
            modelCost(
              input.prices,
              modelOf(stage),
              {
                inputTokens: part(inputTokens, stage, batch),
                outputTokens: part(outputTokens, stage, batch),
              },
              { batch },
            ),
          ),
      ),
    };
  });
  const tokens = {
    input: stages.reduce((s, st) => s + st.inputTokens, 0),
    output: stages.reduce((s, st) => s + st.outputTokens, 0),
  };
  // Each model's tokens priced at its own price (the judge may be another model than the run's).
  const modelCosts = [...new Set(steps.map(modelOf))].flatMap((model) =>
    [false, true].flatMap((batch) => {
      const own = stages.filter((st) => modelOf(st.stage) === model && part(1, st.stage, batch) > 0);
      if (own.length === 0) return [];
      return [
        modelCost(
          input.prices,
          model,
          {
            inputTokens: own.reduce((s, st) => s + part(st.inputTokens, st.stage, batch), 0),
            outputTokens: own.reduce((s, st) => s + part(st.outputTokens, st.stage, batch), 0),
          },
          { batch },
        ),
      ];
    }),
  );
  const totalModelCost = combineModelCosts(modelCosts);

  // The Map's functions wait on the classification, instance and judge calls.
  const mapCallsPerAccepted = Object.values(callsPerAccepted).reduce((s, n) => s + n, 0);
  const mapOutputPerAccepted = (Object.keys(callsPerAccepted) as (keyof typeof callsPerAccepted)[]).reduce(
    (s, stage) => s + callsPerAccepted[stage] * calibration.outputTokensPerCall[stage],
    0,
  );
  // Batch mode: an iteration's instance calls go to a job (at least Bedrock's minimum of records, else
  // on demand), the Map finds their replies recorded and waits only on its other calls.
  const turnaround = input.batchTurnaroundSeconds ?? BATCH_WAIT_SECONDS;
  const looks = batchLooks(turnaround, config.batchPollSeconds);
  const instanceOutputPerAccepted =
    callsPerAccepted['generate-instances'] * calibration.outputTokensPerCall['generate-instances'];
  // The calls of the run's model, as its token quotas count them: input, output and reserved output
  // (`maxTokens`) per call of each step; a batch job's calls are not on-demand calls.
  const onQuota = (stage: ModelStage) => modelOf(stage) === input.model && steps.includes(stage);
  const quotaTokens = (callsOf: Partial<Record<ModelStage, number>>): QuotaTokens => {
    const own = (Object.keys(callsOf) as ModelStage[]).filter(onQuota);
    const total = (per: (stage: ModelStage) => number) =>
      own.reduce((sum, stage) => sum + (callsOf[stage] ?? 0) * per(stage), 0);
    return {
      calls: total(() => 1),
      input: total((stage) => promptTokens[stage]),
      output: total((stage) => calibration.outputTokensPerCall[stage]),
      reservedOutput: total((stage) => promptTokens.maxTokens[stage]),
    };
  };
  const shapes: IterationShape[] = iterations.map((it) => ({
    instructionCalls: it.prompts * instructionCallsPerPrompt,
    instructionBatches: Math.ceil(it.prompts / config.instructionBatchSize),
    instructionOutputTokens:
      it.prompts * instructionCallsPerPrompt * calibration.outputTokensPerCall['generate-instructions'],
    candidates: it.candidates,
    acceptedInstructions: it.accepted,
    mapItems: it.mapItems,
    mapCalls: it.accepted * (mapCallsPerAccepted - (jobOf(it) ? callsPerAccepted['generate-instances'] : 0)),
    mapOutputTokens: it.accepted * (mapOutputPerAccepted - (jobOf(it) ? instanceOutputPerAccepted : 0)),
    poolInstructions: it.poolInstructions,
    gateShards: it.gateShards,
    batchLooks: jobOf(it) ? looks : 0,
    instructionQuotaTokens: quotaTokens({ 'generate-instructions': it.prompts * instructionCallsPerPrompt }),
    mapQuotaTokens: quotaTokens({
      classify: it.accepted * callsPerAccepted.classify,
      'generate-instances': jobOf(it) ? 0 : it.accepted * callsPerAccepted['generate-instances'],
      judge: it.accepted * callsPerAccepted.judge,
      teach: it.accepted * callsPerAccepted.teach,
    }),
  }));
  const jobs = shapes.filter((shape) => (shape.batchLooks ?? 0) > 0).length;
  const quota = MODEL_QUOTAS[input.model];
  const timeAssumptions: TimeAssumptions = {
    ...DEFAULT_TIME_ASSUMPTIONS,
    mapConcurrency: config.mapConcurrency,
    ...(quota ? { requestsPerMinute: quota.requestsPerMinute } : {}),
    ...(input.batch ? { batchPollSeconds: config.batchPollSeconds, batchTurnaroundSeconds: turnaround } : {}),
    ...input.timeAssumptions,
  };
  const tokensPerMinute = timeAssumptions.tokensPerMinute;
  // A call reserves its input and maxTokens at its start: a quota below that throttles it every time.
  const over = steps.find(
    (stage) =>
      tokensPerMinute !== undefined &&
      onQuota(stage) &&
      calls[stage] > 0 &&
      promptTokens[stage] + promptTokens.maxTokens[stage] > tokensPerMinute,
  );
  if (over && tokensPerMinute !== undefined) {
    throw new TokenQuotaTooLow(
      `a quota of ${fmtInt(tokensPerMinute)} tokens per minute is below what one ${over} call reserves at its start (about ${fmtInt(promptTokens[over])} input tokens + maxTokens ${fmtInt(promptTokens.maxTokens[over])}): Bedrock would throttle every such call`,
    );
  }
  // Lambda bills the functions for as long as the model's quotas hold their calls back.
  const billed: UsageAssumptions = {
    ...assumptions,
    ...(timeAssumptions.requestsPerMinute ? { requestsPerMinute: timeAssumptions.requestsPerMinute } : {}),
    ...(tokensPerMinute ? { tokensPerMinute } : {}),
    itemsAtOnce: itemsAtOnce(timeAssumptions, assumptions.callConcurrency),
  };
  const usage = runAwsUsage(
    shapes,
    { seedTasksAdded: input.seeds.length, poolItemsAtExport: input.seeds.length + accepted },
    billed,
  );
  const aws = { ...awsCost(input.prices, usage), usage };
  const exportSeconds = (input.seeds.length + accepted) * assumptions.exportSecondsPerItem;
  const time = projectWallTime(shapes, assumptions, timeAssumptions, exportSeconds);
  const [firstIteration, lastIteration] = [iterations[0], iterations.at(-1)];
  const acceptance = {
    start: firstIteration?.acceptance ?? acceptanceAt(calibration.acceptanceCurve, input.seeds.length),
    end: lastIteration?.acceptance ?? acceptanceAt(calibration.acceptanceCurve, input.seeds.length),
    poolAtStart: firstIteration?.poolInstructions ?? input.seeds.length,
    poolAtEnd: lastIteration?.poolInstructions ?? input.seeds.length,
  };
  const sharded = iterations.filter((it) => it.gateShards > 0);
  const curve = calibration.acceptanceCurve;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const summary = summarizeCost({ models: modelCosts, aws, acceptedTasks: added, estimated: true });

  const price = input.prices.models[input.model];
  const profile = PROFILES[input.profile];
  const lines = [
    `Prices: table ${input.prices.version} (checked ${input.prices.date}), ${input.prices.aws.region} on-demand list prices; free tiers, batch and caching discounts not applied.`,
    // One line per model called (the run's, and the judge when it is another).
    ...modelCosts.map((cost) => {
      const own = input.prices.models[cost.modelId];
      if (own) {
        return `Model price: ${cost.modelId} at $${own.inputPer1M} / $${own.outputPer1M} per million input / output tokens.${own.notes ? ` Source: ${own.notes}` : ''}`;
      }
      return cost.priced
        ? `Model price: ${cost.modelId} has no per-token bill (no provider called, or a server on this machine): its share is $0.`
        : `Model price: NONE for ${cost.modelId}: the model cost, total and per-task figures are unknown.`;
    }),
    'Input tokens: ceil(characters / 4) of the rendered system and user messages (no tokenizer package is installed; chat framing tokens not counted).',
    method === 'evol'
      ? `Instruction step (method evol): one evolving call per candidate sought, its prompt rendered for each of the ${input.seeds.length} seed instructions by each operation, and ${(calibration.gainCallsPerCall ?? 0).toFixed(3)} information-gain calls per evolving call (${GAIN_BATCH} pairs each): ${promptTokens['generate-instructions'].toFixed(0)} tokens per call on average.`
      : `Instruction prompts: ${promptTokens.samples} prompts of the ${input.profile} profile rendered with demonstrations sampled from the ${input.seeds.length} seed tasks (${profile.seedDemonstrations} seed + ${profile.machineDemonstrations} machine, machine ones stood in for by seed instructions): ${promptTokens['generate-instructions'].toFixed(0)} tokens each on average.`,
    `Classification and instance prompts: rendered for each seed instruction (${(promptTokens.classificationShare * 100).toFixed(0)}% classification): ${promptTokens.classify.toFixed(0)} and ${promptTokens['generate-instances'].toFixed(0)} tokens on average.`,
    judge === undefined
      ? 'Judge: none (judgeModel none).'
      : `Judge: ${judge}${judge === input.model ? " (the run's model)" : ''}, one call per task left with valid instances (${judgeCallsPerAccepted.toFixed(2)} per accepted instruction), its prompt rendered for each seed task with its instances${promptTokens.judgeExplainedPerInstance === undefined ? '' : `, each explained output adding ${promptTokens.judgeExplainedPerInstance.toFixed(0)} tokens over the direct one (the teacher's ${calibration.outputTokensPerCall.teach.toFixed(0)} output tokens) on ${calibration.instancesPerTask.toFixed(2)} instances per task`}: ${promptTokens.judge.toFixed(0)} tokens on average.`,
    ...(teacher === undefined
      ? []
      : [
          `Teacher (explained responses): ${teacher}${teacher === input.model ? " (the run's model)" : ''}, one call per instance the filters kept (${callsPerAccepted.teach.toFixed(2)} per accepted instruction: the share with valid instances × instances per task), its request (system message of the task's type, then the user's turn) rendered for each seed instance: ${promptTokens.teach.toFixed(0)} tokens on average.`,
        ]),
    `Yields and output tokens (${calibration.source}): ${calibration.candidatesPerCall.toFixed(2)} candidates per call, ${(calibration.acceptanceRate * 100).toFixed(1)}% accepted, ${(calibration.completeShare * 100).toFixed(1)}% of those with valid instances, ${calibration.classifyCallsPerAccepted.toFixed(2)} classification + ${calibration.instanceCallsPerAccepted.toFixed(2)} instance calls per accepted instruction, ${calibration.instancesPerTask.toFixed(2)} instances per task; output tokens per call ${steps.map((s) => `${s} ${calibration.outputTokensPerCall[s].toFixed(0)}`).join(', ')}.`,
    `Acceptance falls as the pool grows: ${pct(curve.rate)} × (pool / ${fmtInt(curve.atPool)})^-${curve.exponent.toFixed(3)}, at most ${pct(curve.maxRate)} (${calibration.acceptanceSource}; fitted over pools of ${fmtInt(curve.fittedPools[0])}–${fmtInt(curve.fittedPools[1])}, beyond that an extrapolation): ${pct(acceptance.start)} in the first iteration (pool ${fmtInt(acceptance.poolAtStart)}), ${pct(acceptance.end)} in the last (pool ${fmtInt(acceptance.poolAtEnd)}). The other yields are held constant.`,
    `Sizing: the stage's adaptive sizing (at most ${config.maxPromptsPerIteration} calls per iteration), iteration cap ${maxIterations}${input.maxIterations ? ' (given)' : ' (the run input default, or the smallest cap that reaches the target)'}; chunks of ${config.chunkSize} ids; ${assumptions.callConcurrency} model calls at once per function.`,
    `The run adds ${fmtInt(added)} tasks for a target of ${fmtInt(input.target)} (the last iteration aims 1.5× high); per-task figures divide by the tasks added.`,
    `A new pool seeded with the ${input.seeds.length} seed tasks; no retries (each retry adds a state transition and a Lambda invocation).`,
    `Model reply time: ${assumptions.firstTokenSeconds.toFixed(2)} s to the first token and ${fmtInt(assumptions.outputTokensPerSecond)} output tokens/s per call (${input.assumptions?.firstTokenSeconds || input.assumptions?.outputTokensPerSecond ? 'given' : latency.source}), the judge's too.`,
    `Lambda durations: ${assumptions.invocationOverheadSeconds} s overhead per invocation besides the model calls, gate at ${(assumptions.gatePairsPerSecond / 1e6).toFixed(0)} M pairs/s; functions are billed while they wait on the model, and for as long as the model's quotas hold their calls back (a Map whose calls at the quotas' pace take longer than its waves: its items stretched to that pace); memory from functions/stages.ts.`,
    `Wall time: per iteration "Generate instructions" (Plan instructions, a Map of batches of ${config.instructionBatchSize} calls, ${time.itemsAtOnce} at once, ${assumptions.callConcurrency} calls at a time in each, then Collect instructions), the gate, the instances Map's chunks ${time.itemsAtOnce} at a time, "Save iteration", one after the other; Map items at once: mapConcurrency ${timeAssumptions.mapConcurrency} within the operator's caps (${fmtInt(timeAssumptions.maxModelCallsInFlight)} model calls in flight, ${timeAssumptions.modelFunctionConcurrency === undefined ? 'no reserved concurrency' : `reserved concurrency ${timeAssumptions.modelFunctionConcurrency}`}); ${timeAssumptions.requestsPerMinute ? `no step's calls faster than the model's quota of ${fmtInt(timeAssumptions.requestsPerMinute)} requests/min (${input.timeAssumptions?.requestsPerMinute ? 'given' : (quota?.source ?? 'given')})` : 'no request quota known or given for this model'}, nor than its token quotas allow (next line); ${timeAssumptions.stateTransitionSeconds} s per state transition, ${timeAssumptions.coldStartSeconds} s per cold start (the first iteration's functions, Prepare, Export); no retries. Projected ${formatDuration(time.totalSeconds)} in all; the bottleneck is ${bottleneckLabel(time.bottleneck.step)} (${pct(time.bottleneck.share)} of it)${time.bottleneck.limitedBy ? `, limited by ${time.bottleneck.limitedBy}` : ''}.`,
    tokenQuotaLine(
      input.model,
      timeAssumptions,
      time,
      promptTokens.maxTokens,
      steps.filter((stage) => onQuota(stage) && calls[stage] > 0),
      {
        tokensPerDayGiven: input.timeAssumptions?.tokensPerDay !== undefined,
      },
    ),
    shardedGateLine(config, sharded, iterations, assumptions),
    `DynamoDB: ${assumptions.pendingTaskWriteUnits} WRU per pending task item, ${assumptions.finishedTaskWriteUnits} WRU per finished one, ${assumptions.runItemWriteUnits} WRU per run-item write, eventually consistent reads (0.5 RRU per item up to 4 KB), task items of ${assumptions.taskItemKb} KB for the export's Query.`,
    ...(input.batch
      ? [
          `Batch mode: an iteration's instance calls go to one batch job, priced at the batch rate (${((input.prices.models[input.model]?.batchFactor ?? BATCH_PRICE_FACTOR) * 100).toFixed(0)}% of on-demand); ${plural(jobs, 'iteration')} of ${fmtInt(iterations.length)} ${jobs === 1 ? 'submits' : 'submit'} one${jobs < iterations.length ? ` (the others have fewer than Bedrock's ${minRecords} records a job: their calls are made on demand, at the on-demand price)` : ''} and wait for it: a turnaround of ${formatDuration(turnaround)} assumed${input.batchTurnaroundSeconds === undefined ? ' (the default; the provider promises only its 24 h window: --batch-turnaround-minutes)' : ' (given)'}, seen at the look every ${config.batchPollSeconds} s that follows it: ${looks} looks (a Wait, "Check the instance batch", "Batch done?" each) after "Submit the instance batch", ${formatDuration(time.iterations.reduce((s, it) => s + it.batch, 0))} over the run, in the projected wall time above.`,
        ]
      : []),
    'Not counted: S3 storage, CloudWatch Logs (the state machine logs at level ALL), X-Ray traces, data transfer.',
  ];
  // Each execution's history holds this many iterations at worst; the run goes on in the next.
  const perExecution = Math.max(
    1,
    iterationsPerExecution(
      { batch: input.batch, batchPollSeconds: input.batchPollSeconds },
      MAX_HISTORY_EVENTS,
    ),
  );
  return {
    model: input.model,
    profile: input.profile,
    method,
    target: input.target,
    prices: {
      version: input.prices.version,
      date: input.prices.date,
      region: input.prices.aws.region,
      ...(price?.notes ? { modelNotes: price.notes } : {}),
    },
    run: {
      iterations: iterations.length,
      maxIterations,
      executions: Math.ceil(iterations.length / perExecution),
      iterationsPerExecution: perExecution,
      reachesTarget: added >= input.target,
      instructionCalls: calls['generate-instructions'],
      candidates: sum((it) => it.candidates),
      acceptedInstructions: accepted,
      mapItems: sum((it) => it.mapItems),
      shardedIterations: sharded.length,
      addedTasks: added,
      acceptance,
    },
    time: { ...time, latency, assumptions: timeAssumptions },
    stages,
    tokens,
    modelCost: totalModelCost,
    aws,
    summary,
    calibration,
    promptTokens,
    assumptions: lines,
  };
}
