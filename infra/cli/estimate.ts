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
 *
 * This file is the command (flags, tables); its parts are in `estimate/`: `prompts.ts` (input tokens),
 * `calibrate.ts` (yields), `simulate.ts` (the run and its price).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseJsonFile, parseSeedFile } from '../../functions/shared/input-files.ts';
import { type OperatorLimits, operatorLimitsFromEnv } from '../../functions/shared/limits.ts';
import { NO_JUDGE } from '../../functions/shared/models/judge-ids.ts';
import { parseModelId } from '../../functions/shared/models/model-ids.ts';
import { formatUsd } from '../../functions/shared/pricing/money.ts';
import {
  type AwsUsage,
  type PriceTable,
  shippedPrices,
  withOverride,
} from '../../functions/shared/pricing/pricing.ts';
import { Method, ProfileName, ResponseStyle } from '../../functions/shared/schemas.ts';
import { estimateBacktranslation, type StepCount } from './estimate/backtranslate.ts';
import {
  type Calibration,
  CalibrationInvalid,
  calibrate,
  calibrateFromDataDir,
  readSummaryFile,
} from './estimate/calibrate.ts';
import { type Estimate, estimateRun, fmtInt } from './estimate/simulate.ts';
import {
  bottleneckLabel,
  formatDuration,
  type RunTokens,
  TIME_STEP_LABELS,
  type TimeAssumptions,
  type TimeStep,
} from './estimate/timing.ts';
import { readTemplatesFolder } from './run-options.ts';

/** The seed file the project ships (the one `npm start` seeds its pools with). */
const BUNDLED_SEEDS = fileURLToPath(new URL('../../seeds/seed_tasks.jsonl', import.meta.url));

/** Where the command writes. */
export interface EstimateIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** The command's options, as commander parses them. */
export interface EstimateOptions {
  model: string;
  judgeModel?: string;
  /** `explained` counts a teacher call per instance kept (run input `responseStyle`). */
  responseStyle?: ResponseStyle;
  /** The teacher of explained responses; by default `model`. */
  teacherModel?: string;
  target: number;
  profile: ProfileName;
  method: Method;
  prices?: string;
  dataDir?: string;
  fromRun?: string;
  iterations?: number;
  chunkSize?: number;
  instructionBatchSize?: number;
  callConcurrency?: number;
  mapConcurrency?: number;
  maxPromptsPerIteration?: number;
  shardGateAbove?: number;
  gateShards?: number;
  tokensPerSecond?: number;
  firstTokenSeconds?: number;
  /** The model's quota of requests per minute (default: the known one for the model, else none). */
  requestsPerMinute?: number;
  /** The model's quota of tokens per minute, input + output (no default: the account's own). */
  tokensPerMinute?: number;
  /** The model's quota of tokens per day (default: tokens per minute × 1,440, as AWS sets it). */
  tokensPerDay?: number;
  seeds: string;
  /** A folder of prompt templates replacing the shipped ones, as `run --templates` gives it. */
  templates?: string;
  json?: boolean;
  /** Batch mode, as `run --batch`: the instance calls at the batch price, plus a job's wait per iteration. */
  batch?: boolean;
  /** Batch mode: seconds between two looks at a job, as `run --batch-poll-seconds`. */
  batchPollSeconds?: number;
  /** Batch mode: the job's assumed turnaround, in minutes. */
  batchTurnaroundMinutes?: number;
  /** Method backtranslate: the folder of documents, as `run --documents` gives it. */
  documents?: string;
  groundedQuestions?: number;
}

const positiveInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};
const nonNegativeInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer ≥ 0`);
  return n;
};
const positiveNumber = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};

const plural = (n: number, noun: string) => `${fmtInt(n)} ${noun}${Math.round(n) === 1 ? '' : 's'}`;

const usd = (n: number | undefined) => (n === undefined ? 'unknown' : formatUsd(n));

const AWS_LABELS: Record<keyof AwsUsage, string> = {
  stateTransitions: 'Step Functions state transitions',
  lambdaGbSeconds: 'Lambda GB-seconds (arm64)',
  lambdaRequests: 'Lambda requests',
  lambdaEphemeralGbSeconds: 'Lambda ephemeral storage GB-seconds (above 512 MB)',
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
    `Estimate: a run adding ${fmtInt(e.target)} tasks, profile ${e.profile}${e.method === 'self-instruct' ? '' : `, method ${e.method}`}, model ${e.model}`,
    `  ${plural(e.run.iterations, 'iteration')} (cap ${e.run.maxIterations}${e.run.executions > 1 ? `; in ${e.run.executions} executions of at most ${e.run.iterationsPerExecution}` : ''}), ${plural(e.run.candidates, 'candidate')}, ${plural(e.run.acceptedInstructions, 'accepted instruction')}, ${plural(e.run.mapItems, 'Map item')}, ${plural(e.run.addedTasks, 'task')} added${e.run.reachesTarget ? '' : ' (BELOW the target: raise --iterations)'}`,
    `  acceptance ${percent(e.run.acceptance.start)} at the start (pool ${fmtInt(e.run.acceptance.poolAtStart)}), ${percent(e.run.acceptance.end)} in the last iteration (pool ${fmtInt(e.run.acceptance.poolAtEnd)}); ${percent(e.run.acceptedInstructions / Math.max(1, e.run.candidates))} over the run`,
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
    formatTime(e),
    '',
    'Assumptions',
    ...e.assumptions.map((line) => `  - ${line}`),
  ];
  return `${out.join('\n')}\n`;
}

/** The operator's caps on model calls that bound the Maps' items at once (see `timing.ts`). */
const timeLimits = ({ maxModelCallsInFlight, modelFunctionConcurrency }: OperatorLimits) => ({
  maxModelCallsInFlight,
  ...(modelFunctionConcurrency === undefined ? {} : { modelFunctionConcurrency }),
});

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The projected wall time: in all, per iteration (first, middle, last), by step, and the bottleneck. */
function formatTime(e: Estimate): string {
  const t = e.time;
  const its = t.iterations;
  const mean = its.length > 0 ? its.reduce((s, it) => s + it.total, 0) / its.length : 0;
  const picks = [...new Set([0, Math.floor(its.length / 2), its.length - 1])].filter((i) => i >= 0 && its[i]);
  const steps = Object.keys(TIME_STEP_LABELS) as TimeStep[];
  const lines = [
    `Projected wall time (deployed): ${formatDuration(t.totalSeconds)}, ${formatDuration(mean)} per iteration on average; bottleneck: ${bottleneckLabel(t.bottleneck.step)} (${percent(t.bottleneck.share)})${t.bottleneck.limitedBy ? `, limited by ${t.bottleneck.limitedBy}` : ''}`,
    `  model calls: ${t.latency.firstTokenSeconds.toFixed(2)} s + output tokens / ${fmtInt(t.latency.outputTokensPerSecond)} per second${t.assumptions.requestsPerMinute ? `, at most ${fmtInt(t.assumptions.requestsPerMinute)} a minute (the model's quota)` : ''}; Maps ${t.itemsAtOnce} items at once (batches of instruction calls, chunks of instances)`,
    ...(t.tokens ? [tokenLine(t.tokens, t.assumptions)] : []),
    ...picks.map((i) => {
      const it = its[i];
      if (!it) return '';
      const parts = steps
        .filter((step) => step !== 'batch' || it.batch > 0)
        .map((step) => `${step} ${formatDuration(it[step])}`)
        .join(', ');
      return `  iteration ${i + 1}: ${formatDuration(it.total)} (${parts})`;
    }),
  ];
  return lines.join('\n');
}

/** The run's tokens against the model's token quotas: in all, reserved, and where the quota stops binding. */
function tokenLine(tokens: RunTokens, time: TimeAssumptions): string {
  const free = tokens.tokensPerMinuteNotBinding;
  const quota = time.tokensPerMinute
    ? `; quota ${fmtInt(time.tokensPerMinute)} tokens/min (given)`
    : '; no token quota given (--tokens-per-minute)';
  const day = tokens.tokensPerDay
    ? `, ${fmtInt(tokens.tokensPerDay)} tokens/day${tokens.dailyWaitSeconds > 0 ? `: the run waits ${formatDuration(tokens.dailyWaitSeconds)} more for it` : ' (does not bind)'}`
    : '';
  return `  model tokens: ${fmtInt(tokens.used)} (input + output of the run's model's on-demand calls), ${fmtInt(tokens.reserved)} reserved at call starts (input + maxTokens); the token quota binds below ${fmtInt(Math.ceil(free.withRequests))} tokens/min${time.requestsPerMinute ? ` (${fmtInt(Math.ceil(free.atConcurrency))} without the request quota)` : ''}${quota}${day}`;
}

/** Loads the price table: the shipped one, with the user's override merged over it. */
export function loadPrices(file: string | undefined): PriceTable {
  const table = shippedPrices();
  if (!file) return table;
  const json = parseJsonFile(readFileSync(file, 'utf8'), file);
  return withOverride(table, json, file);
}

/** `selfinstruct estimate`. */
export function estimateCommand(io: EstimateIo = process): Command {
  return new Command('estimate')
    .requiredOption('--model <id>', 'model id as a run takes it, e.g. bedrock:amazon.nova-micro-v1:0')
    .requiredOption('--target <n>', 'tasks the run should add', positiveInt('--target'))
    .option('--judge-model <id>', "the judge's model id, or none (default: the run's model)")
    .addOption(
      new Option('--response-style <style>', 'explained counts a teacher call per instance (default direct)')
        .choices(ResponseStyle.options)
        .default('direct'),
    )
    .option(
      '--teacher-model <id>',
      "the teacher's model id for explained responses (default: the run's model)",
    )
    .addOption(
      new Option('--profile <name>', 'prompts, parsers and filters')
        .choices(ProfileName.options)
        .default('default'),
    )
    .addOption(
      new Option(
        '--method <name>',
        'how candidates are made (evol counts its evolving and information-gain calls, backtranslate one call per passage of --documents)',
      )
        .choices(Method.options)
        .default('self-instruct'),
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
      '--instruction-batch-size <n>',
      'instruction-generation calls per item of the "Generate instructions" Map (default 20)',
      positiveInt('--instruction-batch-size'),
    )
    .option(
      '--call-concurrency <n>',
      'model calls at once inside one function (default 8)',
      positiveInt('--call-concurrency'),
    )
    .option('--map-concurrency <n>', 'Map items at once (default 10)', positiveInt('--map-concurrency'))
    .option(
      '--max-prompts-per-iteration <n>',
      'upper bound of the adaptive calls per iteration (default 200)',
      positiveInt('--max-prompts-per-iteration'),
    )
    .option(
      '--shard-gate-above <n>',
      'pool size from which the gate runs in shard Lambdas (default 1,000,000, as a run)',
      nonNegativeInt('--shard-gate-above'),
    )
    .option('--gate-shards <n>', 'shards of the sharded gate (default 16)', positiveInt('--gate-shards'))
    .option(
      '--tokens-per-second <x>',
      "output tokens a second of the model (default: measured from --data-dir, else the model's published figure, else 80)",
      positiveNumber('--tokens-per-second'),
    )
    .option(
      '--first-token-seconds <x>',
      'seconds to the first token (default: as --tokens-per-second, else 0.6)',
      positiveNumber('--first-token-seconds'),
    )
    .option(
      '--requests-per-minute <n>',
      "the model's quota of requests per minute (default: 2,000 for Nova Micro, issue 14's figure, not in AWS's documentation; none for other models)",
      positiveInt('--requests-per-minute'),
    )
    .option(
      '--tokens-per-minute <n>',
      'the account\'s quota of tokens per minute for the model, input + output (Service Quotas: "On-demand InvokeModel tokens per minute for <model>"; default: none, not modeled)',
      positiveInt('--tokens-per-minute'),
    )
    .option(
      '--tokens-per-day <n>',
      'the account\'s quota of tokens per day for the model ("Model invocation max tokens per day"; default: --tokens-per-minute × 1,440, AWS\'s default)',
      positiveInt('--tokens-per-day'),
    )
    .option('--seeds <file>', 'seed file whose tasks the prompts show', BUNDLED_SEEDS)
    .option('--templates <dir>', 'prompt templates replacing the shipped ones, as `run --templates`')
    .option('--json', 'print the estimate as JSON')
    .option(
      '--batch',
      "as `run --batch`: instance calls at the batch price (Bedrock: 50%), plus the jobs' wait",
    )
    .option(
      '--batch-poll-seconds <n>',
      'with --batch: seconds between two looks at the batch job, as `run --batch-poll-seconds` (default 60)',
      nonNegativeInt('--batch-poll-seconds'),
    )
    .option(
      '--batch-turnaround-minutes <x>',
      "with --batch: a job's assumed turnaround, submit to done (default 60: an assumption, the provider promises only its 24 h window)",
      positiveNumber('--batch-turnaround-minutes'),
    )
    .option('--documents <dir>', 'with --method backtranslate: the folder of documents, as `run --documents`')
    .option(
      '--grounded-questions <n>',
      'with --method backtranslate: question–answer pairs asked per passage (default 0)',
      (value: string) => Number(value),
    )
    .action(async (options: EstimateOptions) => {
      // The checks a run makes: an id of no accepted form fails here too.
      parseModelId(options.model);
      if (options.judgeModel !== undefined && options.judgeModel !== NO_JUDGE)
        parseModelId(options.judgeModel);
      if (options.teacherModel !== undefined) parseModelId(options.teacherModel);
      const prices = loadPrices(options.prices);
      if (options.method === 'backtranslate') {
        await printBacktranslation(options, prices, io);
        return;
      }
      const seeds = parseSeedFile(readFileSync(options.seeds), options.seeds).tasks;
      let calibration: Calibration | undefined;
      if (options.fromRun) {
        const summary = readSummaryFile(options.fromRun);
        if (summary.config.method !== options.method) {
          throw new CalibrationInvalid(
            `${options.fromRun} is a ${summary.config.method} run; its yields do not apply to --method ${options.method}`,
          );
        }
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
        calibration = await calibrateFromDataDir(
          options.dataDir,
          options.profile,
          options.model,
          options.method,
        );
        if (!calibration) {
          io.stderr.write(
            `note: no ${options.profile} ${options.method} run in ${options.dataDir}; using the defaults\n`,
          );
        }
      }
      const estimate = estimateRun({
        model: options.model,
        judgeModel: options.judgeModel,
        responseStyle: options.responseStyle,
        teacherModel: options.teacherModel,
        target: options.target,
        profile: options.profile,
        method: options.method,
        prices,
        seeds,
        templates: options.templates ? readTemplatesFolder(options.templates).templates : undefined,
        calibration,
        maxIterations: options.iterations,
        chunkSize: options.chunkSize,
        instructionBatchSize: options.instructionBatchSize,
        callConcurrency: options.callConcurrency,
        mapConcurrency: options.mapConcurrency,
        maxPromptsPerIteration: options.maxPromptsPerIteration,
        batch: options.batch,
        batchPollSeconds: options.batchPollSeconds,
        batchTurnaroundSeconds:
          options.batchTurnaroundMinutes === undefined ? undefined : options.batchTurnaroundMinutes * 60,
        shardGateAbove: options.shardGateAbove,
        gateShards: options.gateShards,
        // The operator's caps as a local run gets them (the environment, else the defaults).
        timeAssumptions: {
          ...timeLimits(operatorLimitsFromEnv()),
          ...(options.requestsPerMinute ? { requestsPerMinute: options.requestsPerMinute } : {}),
          ...(options.tokensPerMinute ? { tokensPerMinute: options.tokensPerMinute } : {}),
          ...(options.tokensPerDay ? { tokensPerDay: options.tokensPerDay } : {}),
        },
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

/** `estimate --method backtranslate`: counted from the documents (see `estimate/backtranslate.ts`). */
async function printBacktranslation(
  options: EstimateOptions,
  prices: PriceTable,
  io: EstimateIo,
): Promise<void> {
  if (!options.documents) {
    throw new InvalidArgumentError(
      '--method backtranslate needs --documents <dir> (the run splits them into passages)',
    );
  }
  const e = await estimateBacktranslation({
    dir: options.documents,
    model: options.model,
    judgeModel: options.judgeModel,
    groundedQuestions: options.groundedQuestions ?? 0,
    prices,
    templates: options.templates ? readTemplatesFolder(options.templates).templates : undefined,
  });
  if (options.json) {
    io.stdout.write(`${JSON.stringify(e, (_key, value) => (value === undefined ? null : value), 2)}\n`);
  } else {
    const line = (name: string, step: StepCount) =>
      `  ${name.padEnd(14)} ${step.model}: ${plural(step.calls, 'call')}, ${fmtInt(step.inputTokens)} tokens in, ${fmtInt(step.outputTokens)} out, ${usd(step.cost.usd)}`;
    io.stdout.write(
      [
        `Estimate: instruction backtranslation of ${plural(e.passages, 'passage')} from ${plural(e.documents, 'document')} (${options.documents})`,
        line('backtranslate', e.backtranslate),
        e.judge ? line('judge', e.judge) : '  judge          none',
        `  model cost     ${usd(e.totalUsd)} (the judge at most: the filters and the ROUGE-L gate drop some candidates first; AWS side not counted)`,
        '',
      ].join('\n'),
    );
  }
  for (const step of [e.backtranslate, e.judge]) {
    if (step && !step.cost.priced) {
      io.stderr.write(`error: ${step.cost.message}\n`);
      process.exitCode = 1;
    }
  }
}
