/**
 * `selfinstruct estimate`: what a run that adds `--target` tasks will cost, before any model call.
 *
 * Input tokens come from the profile's own prompts, rendered here: instruction-generation prompts with
 * demonstrations sampled from the seed file, classification and instance prompts for its instructions.
 * Output tokens per call and the yields (candidates per call, acceptance, tasks with valid instances,
 * calls per accepted instruction) come from past runs when given (`--data-dir`: the raw call records
 * and summaries of a local data folder; `--from-run`: an exported `summary.json`), else from defaults
 * per profile measured on the offline model. The run is then simulated iteration by iteration with the
 * pipeline's own adaptive sizing, and priced with the price table and the AWS usage model.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { renderClassifyRequest, renderInstancesRequest } from '../../functions/generate-instances/prompt.ts';
import { promptsForIteration } from '../../functions/generate-instructions/core.ts';
import {
  renderInstructionRequest,
  selectDemonstrations,
} from '../../functions/generate-instructions/prompt.ts';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { SelfInstructError } from '../../functions/shared/errors.ts';
import { parseJsonFile, parseSeedFile } from '../../functions/shared/input-files.ts';
import type { CallRecord } from '../../functions/shared/model-calls.ts';
import { parseModelId } from '../../functions/shared/models/model-ids.ts';
import { estimateTokens } from '../../functions/shared/models/usage.ts';
import type { ModelRequest, ModelStage } from '../../functions/shared/ports.ts';
import {
  DEFAULT_USAGE_ASSUMPTIONS,
  type IterationShape,
  runAwsUsage,
  type UsageAssumptions,
} from '../../functions/shared/pricing/aws-usage.ts';
import { formatUsd } from '../../functions/shared/pricing/money.ts';
import {
  type AwsCost,
  type AwsUsage,
  awsCost,
  type CostSummary,
  type ModelCost,
  modelCost,
  type PriceTable,
  shippedPrices,
  summarizeCost,
  withOverride,
} from '../../functions/shared/pricing/pricing.ts';
import { PROFILES } from '../../functions/shared/profiles.ts';
import { createRng } from '../../functions/shared/random.ts';
import { RunSummary } from '../../functions/shared/records.ts';
import { ProfileName, Progress, type RunState, type SeedTask } from '../../functions/shared/schemas.ts';

/** The seed file the project ships (the one `npm start` seeds its pools with). */
const BUNDLED_SEEDS = fileURLToPath(new URL('../../seeds/seed_tasks.jsonl', import.meta.url));

/** The model steps, in pipeline order. */
export const MODEL_STEPS: readonly ModelStage[] = ['generate-instructions', 'classify', 'generate-instances'];

/** Tokens of a rendered request: system and user message (chat framing tokens not counted). */
const requestTokens = (request: ModelRequest) => estimateTokens((request.system ?? '') + request.prompt);

/** What a profile's calls look like and yield, per call and per accepted instruction. */
export const Calibration = z.object({
  /** Where the figures come from (shown with the estimate). */
  source: z.string(),
  /** Candidates parsed from one instruction-generation reply. */
  candidatesPerCall: z.number().nonnegative(),
  /** Share of candidates that pass the filters and the ROUGE-L gate. */
  acceptanceRate: z.number().min(0).max(1),
  /** Share of accepted instructions left with at least one valid instance (the tasks a run adds). */
  completeShare: z.number().min(0).max(1),
  /** Classification calls per accepted instruction. */
  classifyCallsPerAccepted: z.number().nonnegative(),
  /** Instance-generation calls per accepted instruction. */
  instanceCallsPerAccepted: z.number().nonnegative(),
  /** Output tokens per call of each model step. */
  outputTokensPerCall: z.object({
    'generate-instructions': z.number().nonnegative(),
    classify: z.number().nonnegative(),
    'generate-instances': z.number().nonnegative(),
  }),
  /** Instances kept per task (records per exported task); informational. */
  instancesPerTask: z.number().nonnegative(),
});
export type Calibration = z.infer<typeof Calibration>;

/**
 * Defaults per profile, measured on the offline model (2026-11-24) with
 * `npm start -- --fresh --data-dir .local/est-<profile> --profile <profile> --seed est --out .local/est-out`
 * (target 300, at most 3 iterations) and read back with `estimate --data-dir .local/est-<profile>`. The offline
 * model's reply lengths are arbitrary, so calibrate with a real model's run (`--data-dir`, `--from-run`).
 */
export const PROFILE_DEFAULTS: Record<ProfileName, Calibration> = {
  'self-instruct': {
    source: 'defaults for self-instruct, measured on the offline model (run-20261124-223319-q83t)',
    candidatesPerCall: 6.506,
    acceptanceRate: 0.7218,
    completeShare: 0.8841,
    classifyCallsPerAccepted: 1,
    instanceCallsPerAccepted: 1,
    outputTokensPerCall: { 'generate-instructions': 169.4, classify: 1.005, 'generate-instances': 96.72 },
    instancesPerTask: 1.881,
  },
  alpaca: {
    source: 'defaults for alpaca, measured on the offline model (run-20261124-223330-d7os)',
    candidatesPerCall: 15.19,
    acceptanceRate: 0.7771,
    completeShare: 0.8415,
    classifyCallsPerAccepted: 0,
    instanceCallsPerAccepted: 0,
    outputTokensPerCall: { 'generate-instructions': 1158, classify: 0, 'generate-instances': 0 },
    instancesPerTask: 1,
  },
  default: {
    source: 'defaults for default, measured on the offline model (run-20261124-223339-w7eg)',
    candidatesPerCall: 9.523,
    acceptanceRate: 0.7733,
    completeShare: 0.9352,
    classifyCallsPerAccepted: 0,
    instanceCallsPerAccepted: 1,
    outputTokensPerCall: { 'generate-instructions': 368.6, classify: 0, 'generate-instances': 126.0 },
    instancesPerTask: 2.35,
  },
};

/** Mean input tokens per call of each model step, from the rendered prompts. */
export interface PromptTokens {
  'generate-instructions': number;
  classify: number;
  'generate-instances': number;
  /** Instruction prompts rendered (each with its own sampled demonstrations). */
  samples: number;
  /** Share of the sample instructions that are classification tasks. */
  classificationShare: number;
}

/**
 * Renders the profile's prompts and measures them: `samples` instruction-generation prompts with
 * demonstrations sampled as the stage samples them (machine demonstrations stood in for by seed
 * instructions), and the classification and instance prompts of every seed instruction (output-first
 * for the classification ones, input-first for the others).
 */
export function measurePrompts(
  profile: ProfileName,
  seeds: readonly SeedTask[],
  { samples = 200, seed = 'estimate' }: { samples?: number; seed?: string } = {},
): PromptTokens {
  const rng = createRng(`${seed}:${profile}`);
  const demos = seeds.map((task) => ({
    instruction: task.instruction,
    input: task.instances[0]?.input,
    output: task.instances[0]?.output,
  }));
  const machine = seeds.map((task) => ({ instruction: task.instruction }));
  let instructionTokens = 0;
  for (let i = 0; i < samples; i++) {
    const chosen = selectDemonstrations(profile, demos, machine, rng);
    instructionTokens += requestTokens(renderInstructionRequest(profile, chosen));
  }
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
  return {
    'generate-instructions': instructionTokens / samples,
    classify: mean(seeds.map((task) => requestTokens(renderClassifyRequest(profile, task.instruction)))),
    'generate-instances': mean(
      seeds.map((task) =>
        requestTokens(renderInstancesRequest(profile, task.instruction, task.is_classification)),
      ),
    ),
    samples,
    classificationShare: seeds.filter((task) => task.is_classification).length / Math.max(1, seeds.length),
  };
}

/** The input of `estimateRun`. */
export interface EstimateInput {
  model: string;
  /** Tasks the run should add. */
  target: number;
  profile: ProfileName;
  prices: PriceTable;
  /** The seed file the run starts a new pool from (its prompts are rendered). */
  seeds: readonly SeedTask[];
  /** Yields and output tokens; the profile's defaults when absent. */
  calibration?: Calibration;
  /** Iteration cap; when absent, the run input's default or the smallest cap that reaches the target. */
  maxIterations?: number;
  chunkSize?: number;
  callConcurrency?: number;
  maxPromptsPerIteration?: number;
  /** Overrides of the AWS usage assumptions. */
  assumptions?: Partial<UsageAssumptions>;
}

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
  target: number;
  prices: { version: string; date: string; region: string; modelNotes?: string };
  run: {
    iterations: number;
    maxIterations: number;
    reachesTarget: boolean;
    instructionCalls: number;
    candidates: number;
    acceptedInstructions: number;
    mapItems: number;
    /** Tasks the run adds (at or above the target: the last iteration overshoots). */
    addedTasks: number;
  };
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
      model: input.model,
      target: input.target,
      maxIterations,
      ...(input.chunkSize ? { chunkSize: input.chunkSize } : {}),
      ...(input.callConcurrency ? { callConcurrency: input.callConcurrency } : {}),
      ...(input.maxPromptsPerIteration ? { maxPromptsPerIteration: input.maxPromptsPerIteration } : {}),
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
  accepted: number;
  complete: number;
  mapItems: number;
  poolInstructions: number;
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
    const accepted = candidates * calibration.acceptanceRate;
    const complete = accepted * calibration.completeShare;
    iterations.push({
      prompts,
      candidates,
      accepted,
      complete,
      mapItems: Math.ceil(accepted / config.chunkSize),
      poolInstructions,
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
 * target with it, else the smallest cap that does (bounded by the schema's 10,000).
 */
function defaultCap(input: EstimateInput, calibration: Calibration): number {
  const perCall = calibration.candidatesPerCall * calibration.acceptanceRate * calibration.completeShare;
  const { maxPromptsPerIteration, maxIterations } = parseRunInput({}, 'estimate');
  if (perCall <= 0) return maxIterations;
  let cap = Math.max(maxIterations, Math.ceil(input.target / (maxPromptsPerIteration * perCall)));
  while (cap < 10_000 && simulate(input, calibration, cap).added < input.target) cap++;
  return cap;
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const plural = (n: number, noun: string) => `${fmtInt(n)} ${noun}${Math.round(n) === 1 ? '' : 's'}`;

/**
 * Estimates what a run that adds `target` tasks costs: model calls and tokens per step, model cost,
 * AWS usage and cost, and the per-task figures, with every assumption spelled out. Pure.
 */
export function estimateRun(input: EstimateInput): Estimate {
  const calibration = input.calibration ?? PROFILE_DEFAULTS[input.profile];
  const assumptions: UsageAssumptions = {
    ...DEFAULT_USAGE_ASSUMPTIONS,
    ...(input.callConcurrency ? { callConcurrency: input.callConcurrency } : {}),
    ...input.assumptions,
  };
  const maxIterations = input.maxIterations ?? defaultCap(input, calibration);
  const { config, iterations, added } = simulate(input, calibration, maxIterations);
  const promptTokens = measurePrompts(input.profile, input.seeds);

  const sum = (pick: (it: SimulatedIteration) => number) => iterations.reduce((s, it) => s + pick(it), 0);
  const accepted = sum((it) => it.accepted);
  const calls: Record<ModelStage, number> = {
    'generate-instructions': sum((it) => it.prompts),
    classify: accepted * calibration.classifyCallsPerAccepted,
    'generate-instances': accepted * calibration.instanceCallsPerAccepted,
  };
  const stages: StageEstimate[] = MODEL_STEPS.map((stage) => {
    const inputTokens = calls[stage] * promptTokens[stage];
    const outputTokens = calls[stage] * calibration.outputTokensPerCall[stage];
    return {
      stage,
      calls: calls[stage],
      inputTokensPerCall: promptTokens[stage],
      outputTokensPerCall: calibration.outputTokensPerCall[stage],
      inputTokens,
      outputTokens,
      cost: modelCost(input.prices, input.model, { inputTokens, outputTokens }),
    };
  });
  const tokens = {
    input: stages.reduce((s, st) => s + st.inputTokens, 0),
    output: stages.reduce((s, st) => s + st.outputTokens, 0),
  };
  const totalModelCost = modelCost(input.prices, input.model, {
    inputTokens: tokens.input,
    outputTokens: tokens.output,
  });

  const mapCallsPerAccepted = calibration.classifyCallsPerAccepted + calibration.instanceCallsPerAccepted;
  const mapOutputPerAccepted =
    calibration.classifyCallsPerAccepted * calibration.outputTokensPerCall.classify +
    calibration.instanceCallsPerAccepted * calibration.outputTokensPerCall['generate-instances'];
  const shapes: IterationShape[] = iterations.map((it) => ({
    instructionCalls: it.prompts,
    instructionOutputTokens: it.prompts * calibration.outputTokensPerCall['generate-instructions'],
    candidates: it.candidates,
    acceptedInstructions: it.accepted,
    mapItems: it.mapItems,
    mapCalls: it.accepted * mapCallsPerAccepted,
    mapOutputTokens: it.accepted * mapOutputPerAccepted,
    poolInstructions: it.poolInstructions,
  }));
  const usage = runAwsUsage(
    shapes,
    { seedTasksAdded: input.seeds.length, poolItemsAtExport: input.seeds.length + accepted },
    assumptions,
  );
  const aws = { ...awsCost(input.prices, usage), usage };
  const summary = summarizeCost({ models: [totalModelCost], aws, acceptedTasks: added, estimated: true });

  const price = input.prices.models[input.model];
  const profile = PROFILES[input.profile];
  const lines = [
    `Prices: table ${input.prices.version} (checked ${input.prices.date}), ${input.prices.aws.region} on-demand list prices; free tiers, batch and caching discounts not applied.`,
    price
      ? `Model price: ${input.model} at $${price.inputPer1M} / $${price.outputPer1M} per million input / output tokens.${price.notes ? ` Source: ${price.notes}` : ''}`
      : totalModelCost.priced
        ? `Model price: ${input.model} has no per-token bill (no provider called, or a server on this machine): the model share is $0.`
        : `Model price: NONE for ${input.model}: the model cost, total and per-task figures are unknown.`,
    'Input tokens: ceil(characters / 4) of the rendered system and user messages (no tokenizer package is installed; chat framing tokens not counted).',
    `Instruction prompts: ${promptTokens.samples} prompts of the ${input.profile} profile rendered with demonstrations sampled from the ${input.seeds.length} seed tasks (${profile.seedDemonstrations} seed + ${profile.machineDemonstrations} machine, machine ones stood in for by seed instructions): ${promptTokens['generate-instructions'].toFixed(0)} tokens each on average.`,
    `Classification and instance prompts: rendered for each seed instruction (${(promptTokens.classificationShare * 100).toFixed(0)}% classification): ${promptTokens.classify.toFixed(0)} and ${promptTokens['generate-instances'].toFixed(0)} tokens on average.`,
    `Yields and output tokens (${calibration.source}): ${calibration.candidatesPerCall.toFixed(2)} candidates per call, ${(calibration.acceptanceRate * 100).toFixed(1)}% accepted, ${(calibration.completeShare * 100).toFixed(1)}% of those with valid instances, ${calibration.classifyCallsPerAccepted.toFixed(2)} classification + ${calibration.instanceCallsPerAccepted.toFixed(2)} instance calls per accepted instruction, ${calibration.instancesPerTask.toFixed(2)} instances per task; output tokens per call ${MODEL_STEPS.map((s) => `${s} ${calibration.outputTokensPerCall[s].toFixed(0)}`).join(', ')}.`,
    'Yields are held constant over the run; with a real model the acceptance rate falls as the pool grows, so a large run costs more per task than this.',
    `Sizing: the stage's adaptive sizing (at most ${config.maxPromptsPerIteration} calls per iteration), iteration cap ${maxIterations}${input.maxIterations ? ' (given)' : ' (the run input default, or the smallest cap that reaches the target)'}; chunks of ${config.chunkSize} ids; ${assumptions.callConcurrency} model calls at once per function.`,
    `The run adds ${fmtInt(added)} tasks for a target of ${fmtInt(input.target)} (the last iteration aims 1.5× high); per-task figures divide by the tasks added.`,
    `A new pool seeded with the ${input.seeds.length} seed tasks; no retries (each retry adds a state transition and a Lambda invocation).`,
    `Lambda durations: ${assumptions.firstTokenSeconds} s to the first token and ${assumptions.outputTokensPerSecond} output tokens/s per model call, ${assumptions.invocationOverheadSeconds} s overhead per invocation, gate at ${(assumptions.gatePairsPerSecond / 1e6).toFixed(0)} M pairs/s; functions are billed while they wait on the model; memory from infra/workflow.ts.`,
    `DynamoDB: ${assumptions.pendingTaskWriteUnits} WRU per pending task item, ${assumptions.finishedTaskWriteUnits} WRU per finished one, ${assumptions.runItemWriteUnits} WRU per run-item write, eventually consistent reads (0.5 RRU per item up to 4 KB), task items of ${assumptions.taskItemKb} KB for the export's Query.`,
    'Not counted: S3 storage, CloudWatch Logs (the state machine logs at level ALL), X-Ray traces, data transfer.',
  ];
  return {
    model: input.model,
    profile: input.profile,
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
      reachesTarget: added >= input.target,
      instructionCalls: calls['generate-instructions'],
      candidates: sum((it) => it.candidates),
      acceptedInstructions: accepted,
      mapItems: sum((it) => it.mapItems),
      addedTasks: added,
    },
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

/** A run summary or call record that can't calibrate an estimate. */
export class CalibrationInvalid extends SelfInstructError {}

/** Calls and output tokens of one model step over some runs. */
export type StageTotals = Record<ModelStage, { calls: number; outputTokens: number }>;

const ratio = (a: number, b: number, fallback: number) => (b > 0 ? a / b : fallback);

/**
 * Calibrates from run summaries (their counts) and, when given, per-step totals from the runs' raw call
 * records. Without per-step totals the profile's default output tokens are scaled so their total
 * matches the summaries', and the instance stage's calls are split as the defaults split them.
 */
export function calibrate(
  profile: ProfileName,
  summaries: readonly Pick<RunSummary, 'counts' | 'usage' | 'exportedTasks' | 'exportedRecords'>[],
  stageTotals: StageTotals | undefined,
  source: string,
): Calibration {
  const defaults = PROFILE_DEFAULTS[profile];
  const total = (key: string) => summaries.reduce((sum, s) => sum + (s.counts[key] ?? 0), 0);
  const prompts = total('prompts');
  const generated = total('generated');
  const accepted = total('accepted');
  const complete = total('complete');
  if (prompts <= 0 || accepted <= 0) {
    throw new CalibrationInvalid(
      `${source}: no instruction calls or no accepted instruction to calibrate from (prompts ${prompts}, accepted ${accepted})`,
    );
  }
  const exportedTasks = summaries.reduce((sum, s) => sum + s.exportedTasks, 0);
  const exportedRecords = summaries.reduce((sum, s) => sum + s.exportedRecords, 0);
  const base = {
    source,
    candidatesPerCall: generated / prompts,
    acceptanceRate: ratio(accepted, generated, 0),
    completeShare: complete / accepted,
    instancesPerTask: ratio(exportedRecords, exportedTasks, defaults.instancesPerTask),
  };
  if (stageTotals) {
    const per = (stage: ModelStage) =>
      ratio(stageTotals[stage].outputTokens, stageTotals[stage].calls, defaults.outputTokensPerCall[stage]);
    return Calibration.parse({
      ...base,
      classifyCallsPerAccepted: stageTotals.classify.calls / accepted,
      instanceCallsPerAccepted: stageTotals['generate-instances'].calls / accepted,
      outputTokensPerCall: {
        'generate-instructions': per('generate-instructions'),
        classify: per('classify'),
        'generate-instances': per('generate-instances'),
      },
    });
  }
  const calls = summaries.reduce((sum, s) => sum + s.usage.calls, 0);
  const outputTokens = summaries.reduce((sum, s) => sum + s.usage.outputTokens, 0);
  const mapCalls = Math.max(0, calls - prompts);
  const defaultMap = defaults.classifyCallsPerAccepted + defaults.instanceCallsPerAccepted;
  const classifyShare = ratio(defaults.classifyCallsPerAccepted, defaultMap, 0);
  const classifyCalls = mapCalls * classifyShare;
  const instanceCalls = mapCalls - classifyCalls;
  const expected =
    prompts * defaults.outputTokensPerCall['generate-instructions'] +
    classifyCalls * defaults.outputTokensPerCall.classify +
    instanceCalls * defaults.outputTokensPerCall['generate-instances'];
  const scale = ratio(outputTokens, expected, 1);
  return Calibration.parse({
    ...base,
    source: `${source} (output tokens per step: the defaults scaled by ${scale.toFixed(2)} to the summary's total)`,
    classifyCallsPerAccepted: classifyCalls / accepted,
    instanceCallsPerAccepted: instanceCalls / accepted,
    outputTokensPerCall: {
      'generate-instructions': defaults.outputTokensPerCall['generate-instructions'] * scale,
      classify: defaults.outputTokensPerCall.classify * scale,
      'generate-instances': defaults.outputTokensPerCall['generate-instances'] * scale,
    },
  });
}

/** A JSON file's content; a missing file is left to the CLI's error handling, bad JSON says where. */
const readJsonFile = (file: string): unknown => parseJsonFile(readFileSync(file, 'utf8'), file);

/** Reads and validates an exported `summary.json`. */
export function readSummaryFile(file: string): RunSummary {
  const json = readJsonFile(file);
  const parsed = RunSummary.safeParse(json);
  if (!parsed.success) {
    throw new CalibrationInvalid(
      `${file} is not a run summary: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

/**
 * Calibration from a local data folder: the summaries under `exports/` of the runs with this profile
 * (preferring those of `model`), and the raw call records of those runs under `runs/<run>/`.
 */
export async function calibrateFromDataDir(
  dataDir: string,
  profile: ProfileName,
  model: string,
): Promise<Calibration | undefined> {
  const { hasLocalData, openLocalData } = await import('../local/data.ts');
  if (!hasLocalData(dataDir)) throw new CalibrationInvalid(`${dataDir} holds no local run data`);
  const stack = await openLocalData(dataDir, 'estimate', 'run `npm start` first');
  try {
    const summaries: RunSummary[] = [];
    for (const key of await stack.objects.list('exports/')) {
      if (!key.endsWith('/summary.json')) continue;
      const parsed = RunSummary.safeParse(JSON.parse((await stack.objects.getText(key)) ?? 'null'));
      if (parsed.success && parsed.data.profile === profile) summaries.push(parsed.data);
    }
    const sameModel = summaries.filter((s) => s.model === model);
    const chosen = sameModel.length > 0 ? sameModel : summaries;
    if (chosen.length === 0) return undefined;
    const totals: StageTotals = {
      'generate-instructions': { calls: 0, outputTokens: 0 },
      classify: { calls: 0, outputTokens: 0 },
      'generate-instances': { calls: 0, outputTokens: 0 },
    };
    let records = 0;
    for (const summary of chosen) {
      if (!summary.runId) continue;
      for (const key of await stack.objects.list(`runs/${summary.runId}/`)) {
        if (!/\/raw\/[^/]+\.jsonl$/.test(key)) continue;
        const text = (await stack.objects.getText(key)) ?? '';
        for (const line of text.split('\n')) {
          if (line.trim() === '') continue;
          const record = JSON.parse(line) as Pick<CallRecord, 'stage' | 'usage'>;
          const stage = totals[record.stage as ModelStage];
          if (!stage) continue;
          stage.calls++;
          stage.outputTokens += record.usage.outputTokens;
          records++;
        }
      }
    }
    const models = [...new Set(chosen.map((s) => s.model))].join(', ');
    return calibrate(
      profile,
      chosen,
      records > 0 ? totals : undefined,
      `${chosen.length} ${profile} run${chosen.length === 1 ? '' : 's'} of ${models} in ${dataDir}, ${records} call records`,
    );
  } finally {
    await stack.close();
  }
}

/** Where the command writes. */
export interface EstimateIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** The command's options, as commander parses them. */
export interface EstimateOptions {
  model: string;
  target: number;
  profile: ProfileName;
  prices?: string;
  dataDir?: string;
  fromRun?: string;
  iterations?: number;
  chunkSize?: number;
  callConcurrency?: number;
  tokensPerSecond?: number;
  firstTokenSeconds?: number;
  seeds: string;
  json?: boolean;
}

const positiveInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};
const positiveNumber = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};

const usd = (n: number | undefined) => (n === undefined ? 'unknown' : formatUsd(n));

const AWS_LABELS: Record<keyof AwsUsage, string> = {
  stateTransitions: 'Step Functions state transitions',
  lambdaGbSeconds: 'Lambda GB-seconds (arm64)',
  lambdaRequests: 'Lambda requests',
  dynamodbWriteUnits: 'DynamoDB write request units',
  dynamodbReadUnits: 'DynamoDB read request units',
  s3Puts: 'S3 PUT/COPY requests',
  s3Gets: 'S3 GET requests',
};

/** The estimate as the table `estimate` prints. */
export function formatEstimate(e: Estimate): string {
  const rows = (table: string[][], align: ('l' | 'r')[]) => {
    const widths = align.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)));
    return table
      .map((row) =>
        row
          .map((cell, i) => (align[i] === 'r' ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
          .join('   ')
          .trimEnd(),
      )
      .map((line) => `  ${line}`)
      .join('\n');
  };
  const s = e.summary;
  const out = [
    `Estimate: a run adding ${fmtInt(e.target)} tasks, profile ${e.profile}, model ${e.model}`,
    `  ${plural(e.run.iterations, 'iteration')} (cap ${e.run.maxIterations}), ${plural(e.run.candidates, 'candidate')}, ${plural(e.run.acceptedInstructions, 'accepted instruction')}, ${plural(e.run.mapItems, 'Map item')}, ${plural(e.run.addedTasks, 'task')} added${e.run.reachesTarget ? '' : ' (BELOW the target: raise --iterations)'}`,
    '',
    rows(
      [
        ['model step', 'calls', 'tokens in', 'tokens out', 'model USD'],
        ...e.stages.map((st) => [
          st.stage,
          fmtInt(st.calls),
          fmtInt(st.inputTokens),
          fmtInt(st.outputTokens),
          usd(st.cost.usd),
        ]),
        [
          'total',
          fmtInt(e.stages.reduce((n, st) => n + st.calls, 0)),
          fmtInt(e.tokens.input),
          fmtInt(e.tokens.output),
          usd(e.modelCost.usd),
        ],
      ],
      ['l', 'r', 'r', 'r', 'r'],
    ),
    '',
    rows(
      [
        ['AWS', 'quantity', 'unit USD', 'USD'],
        ...(Object.keys(AWS_LABELS) as (keyof AwsUsage)[]).map((key) => {
          const line = e.aws.breakdown[key];
          return [AWS_LABELS[key], fmtInt(line.quantity), line.unitUsd.toExponential(3), usd(line.usd)];
        }),
        ['AWS total', '', '', usd(e.aws.usd)],
      ],
      ['l', 'r', 'r', 'r'],
    ),
    '',
    rows(
      [
        ['model', usd(s.modelUsd)],
        [
          'AWS',
          `${usd(s.awsUsd)}${s.awsShare === undefined ? '' : ` (${(s.awsShare * 100).toFixed(1)}% of the total)`}`,
        ],
        ['total', usd(s.totalUsd)],
        ['per accepted task', usd(s.perAcceptedTaskUsd)],
        ['per 1,000 tasks', usd(s.per1000TasksUsd)],
      ],
      ['l', 'l'],
    ),
    ...s.unpriced.map((message) => `\n  ! ${message}`),
    '',
    'Assumptions',
    ...e.assumptions.map((line) => `  - ${line}`),
  ];
  return `${out.join('\n')}\n`;
}

/** Loads the price table: the shipped one, with the user's override merged over it. */
export function loadPrices(file: string | undefined): PriceTable {
  const table = shippedPrices();
  if (!file) return table;
  const json = readJsonFile(file);
  return withOverride(table, json, file);
}

/** `selfinstruct estimate`. */
export function estimateCommand(io: EstimateIo = process): Command {
  return new Command('estimate')
    .requiredOption('--model <id>', 'model id as a run takes it, e.g. bedrock:amazon.nova-micro-v1:0')
    .requiredOption('--target <n>', 'tasks the run should add', positiveInt('--target'))
    .addOption(
      new Option('--profile <name>', 'prompts, parsers and filters')
        .choices(ProfileName.options)
        .default('default'),
    )
    .option('--prices <file>', 'JSON prices merged over the shipped table (models, aws)')
    .option(
      '--data-dir <dir>',
      'calibrate from the runs in a local data folder (raw call records, summaries)',
    )
    .option('--from-run <summary.json>', 'calibrate from an exported run summary')
    .option(
      '--iterations <n>',
      'iteration cap (default: 3, or the smallest that reaches the target)',
      positiveInt('--iterations'),
    )
    .option('--chunk-size <n>', 'instructions per Map item (default 40)', positiveInt('--chunk-size'))
    .option(
      '--call-concurrency <n>',
      'model calls at once inside one function (default 8)',
      positiveInt('--call-concurrency'),
    )
    .option(
      '--tokens-per-second <x>',
      'output tokens a second of the model (default 80)',
      positiveNumber('--tokens-per-second'),
    )
    .option(
      '--first-token-seconds <x>',
      'seconds to the first token (default 0.6)',
      positiveNumber('--first-token-seconds'),
    )
    .option('--seeds <file>', 'seed file whose tasks the prompts show', BUNDLED_SEEDS)
    .option('--json', 'print the estimate as JSON')
    .action(async (options: EstimateOptions) => {
      parseModelId(options.model); // the check a run makes: an id of no accepted form fails here too
      const prices = loadPrices(options.prices);
      const seeds = parseSeedFile(readFileSync(options.seeds), options.seeds).tasks;
      let calibration: Calibration | undefined;
      if (options.fromRun) {
        const summary = readSummaryFile(options.fromRun);
        if (summary.profile !== options.profile) {
          throw new CalibrationInvalid(
            `${options.fromRun} is a ${summary.profile} run; its yields do not apply to --profile ${options.profile}`,
          );
        }
        calibration = calibrate(
          options.profile,
          [summary],
          undefined,
          `run summary ${options.fromRun} (${summary.model})`,
        );
      } else if (options.dataDir) {
        calibration = await calibrateFromDataDir(options.dataDir, options.profile, options.model);
        if (!calibration) {
          io.stderr.write(
            `note: no ${options.profile} run in ${options.dataDir}; using the profile's defaults\n`,
          );
        }
      }
      const estimate = estimateRun({
        model: options.model,
        target: options.target,
        profile: options.profile,
        prices,
        seeds,
        calibration,
        maxIterations: options.iterations,
        chunkSize: options.chunkSize,
        callConcurrency: options.callConcurrency,
        assumptions: {
          ...(options.tokensPerSecond ? { outputTokensPerSecond: options.tokensPerSecond } : {}),
          ...(options.firstTokenSeconds ? { firstTokenSeconds: options.firstTokenSeconds } : {}),
        },
      });
      // In JSON, an amount that could not be priced is null rather than missing.
      const json = () => JSON.stringify(estimate, (_key, value) => (value === undefined ? null : value), 2);
      io.stdout.write(options.json ? `${json()}\n` : formatEstimate(estimate));
      if (!estimate.modelCost.priced) {
        io.stderr.write(`error: ${estimate.modelCost.message}\n`);
        process.exitCode = 1;
      }
    });
}
