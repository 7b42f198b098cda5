/**
 * `selfinstruct run` (and `npm start`): runs the pipeline on the local stack, shows progress (a live
 * bar on a terminal, plain lines otherwise), prints a summary, copies the exported dataset from the
 * local bucket to `./out/<run-id>/` and writes the run report (`report.html`, `stats.json`) next to it.
 * Everything heavy is imported when the command runs, so `--help` stays fast.
 */
import { appendFileSync, createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Command, Option } from 'commander';
import { readableCause } from '../../functions/record-failure/core.ts';
import { NotFound } from '../../functions/shared/errors.ts';
import {
  exportKeys,
  PRICE_TABLE_PREFIX,
  runTemplatesPrefix,
  SEED_UPLOAD_PREFIX,
} from '../../functions/shared/keys.ts';
import { teacherModelOf } from '../../functions/shared/models/judge-ids.ts';
import { formatUsd as usd } from '../../functions/shared/pricing/money.ts';
import { RunSummary } from '../../functions/shared/records.ts';
import { Method, ResponseStyle } from '../../functions/shared/schemas.ts';
import { executionLogPath } from '../local/executions.ts';
import type { LocalHistoryEvent } from '../local/history-events.ts';
import type { ExecutionStatus } from '../local/rules.ts';
import type { EventLog, LocalStack } from '../local/stack.ts';
import { formatEntries, formatFields, groupCounts } from './counts.ts';
import { liveView, type ProgressView, plainView } from './progress.ts';
import { shown } from './report.ts';
import {
  bedrockContext,
  newRunId,
  type RunOptions,
  readTemplatesFolder,
  runInputFromOptions,
  uploadDocuments,
  uploadTemplates,
} from './run-options.ts';

export interface LocalRunResult {
  runId: string;
  status: ExecutionStatus;
  summary?: RunSummary;
  error?: string;
  cause?: string;
  outDir?: string;
  /** The run report written next to the dataset. */
  report?: { html: string; stats: string };
  timings: { totalMs: number; synthMs: number; executionMs: number };
  /** Where the template came from: the cache, or a synthesis (after a change to what shapes it). */
  templateFrom?: 'cache' | 'synthesis';
  events: Awaited<ReturnType<LocalStack['execute']>>['events'];
}

/**
 * Runs one execution on the local stack. `view` receives the progress: plain lines (a function
 * `(line) => void` is one), or a live bar on a terminal (`progress.ts`); `signal` aborts the run.
 */
export async function runLocal(
  options: RunOptions,
  view: ProgressView | ((line: string) => void) = console.log,
  signal?: AbortSignal,
): Promise<LocalRunResult> {
  const started = performance.now();
  const startedAt = new Date();
  const progress = typeof view === 'function' ? plainView(view, started) : view;
  const input = runInputFromOptions(options);
  const runId = newRunId(startedAt);
  progress.phase('checking the run input');
  const [{ parseRunInput }, { describeModel, ollamaHint }] = await Promise.all([
    import('../../functions/prepare/core.ts'),
    import('./model-hints.ts'),
  ]);
  // Fail fast on a bad flag or template, before starting anything (the prepare stage validates the same way).
  parseRunInput(
    {
      ...input,
      seedKey:
        input.seedKey ?? (options.seeds ? `${SEED_UPLOAD_PREFIX}${input.pool ?? 'default'}/x` : undefined),
      templates: options.templates ? runTemplatesPrefix(runId) : input.templates,
    },
    runId,
  );
  const templates = options.templates ? readTemplatesFolder(options.templates).files : undefined;

  // The servers start in their own process while this one loads the template and the stack's modules.
  const { startLocalServers } = await import('../local/servers.ts');
  const servers = startLocalServers(options.dataDir, { holder: `run ${runId}`, fresh: options.fresh });
  servers.catch(() => undefined); // awaited by the stack (or closed below), not unhandled meanwhile

  const model = input.model ?? 'offline';
  progress.line(`Model: ${model}: ${describeModel(model)}`);
  // Asked meanwhile too; said before the run starts.
  const hint = model === 'offline' ? ollamaHint() : undefined;
  if (model === 'offline') {
    progress.line(
      '  The offline model is a stand-in for trying the pipeline: use a real model for training data.',
    );
  }

  // The history, as Step Functions would keep it, for the progress view, and for `status` and `watch`
  // from another terminal. It starts now: what the user waits for (start-up included) is the run's
  // elapsed time.
  const historyFile = executionLogPath(options.dataDir, runId);
  // Recorded from the stack's definition (its Distributed Maps) once the stack has started.
  let toHistory: ((event: EventLog) => LocalHistoryEvent[]) | undefined;
  const record = (event: EventLog) => {
    for (const recorded of toHistory?.(event) ?? []) {
      appendFileSync(historyFile, `${JSON.stringify(recorded)}\n`);
      progress.event(recorded);
    }
  };

  progress.phase('loading the stack template');
  const bundleTo = options.bundled ? path.join(options.dataDir, '..', 'cdk.out') : undefined;
  let template: Awaited<ReturnType<typeof import('../local/template.ts').loadTemplate>>;
  let LocalStack: typeof import('../local/stack.ts').LocalStack;
  try {
    const { loadTemplate } = await import('../local/template.ts');
    template = await loadTemplate({
      bundleTo,
      // Synthesized as it would be deployed for this model, judge and teacher (a Bedrock model is one the functions
      // may call).
      context: bedrockContext(model, input.judgeModel, teacherModelOf({ ...input, model })),
      onSynthesis: () =>
        progress.phase(
          bundleTo
            ? 'synthesizing and bundling the stack'
            : 'synthesizing the stack (cached for the next runs)',
        ),
    });
    progress.phase('starting local S3 and DynamoDB');
    ({ LocalStack } = await import('../local/stack.ts'));
  } catch (error) {
    await servers.then(
      (started) => started.close(),
      () => undefined,
    );
    throw error;
  }
  const stack = await LocalStack.start({
    dataDir: options.dataDir,
    servers,
    logLevel: options.verbose ? 'INFO' : 'SILENT',
    bundleTo,
    template,
    iam: options.iam === false ? false : undefined,
  });
  toHistory = stack.historyRecorder();
  try {
    const ollama = await hint;
    if (ollama) progress.line(`  ${ollama}`);
    mkdirSync(path.dirname(historyFile), { recursive: true });
    record({ type: 'ExecutionStarted', timestamp: startedAt.getTime(), input: input as never });
    for (const { executionName, deliveries } of stack.abandoned) {
      const failed = deliveries.filter((delivery) => delivery.error);
      progress.line(
        `Run ${executionName} ended with the process that ran it: marked FAILED${failed.length ? ` (but ${failed.map((d) => `${d.functionName}: ${d.error}`).join('; ')})` : ', its pool given back'}`,
      );
    }
    if (options.seeds) {
      let text: string;
      try {
        text = readFileSync(options.seeds, 'utf8');
      } catch {
        throw new NotFound(`Seed file ${options.seeds} does not exist or can't be read`);
      }
      // As an upload in AWS would: the run reads the seed file from the bucket.
      const key = `${SEED_UPLOAD_PREFIX}${input.pool ?? 'default'}/${path.basename(options.seeds)}`;
      await stack.objects.put(key, text, 'application/jsonl');
      input.seedKey = key;
    }
    if (options.documents) {
      // As an upload in AWS would: "Prepare run" reads and splits the documents in the bucket.
      const keys = await uploadDocuments(stack.objects, options.documents, input.pool ?? 'default');
      progress.line(
        `Documents: ${keys.length} file${keys.length === 1 ? '' : 's'} uploaded to ${input.documents}`,
      );
    }
    if (options.prices) {
      // As in AWS, the run reads its price table from the bucket.
      const key = `${PRICE_TABLE_PREFIX}${path.basename(options.prices)}`;
      await stack.objects.put(key, readFileSync(options.prices), 'application/json');
      input.priceTableKey = key;
    }
    if (templates) {
      // As in AWS, the stages read the run's templates from the bucket.
      input.templates = await uploadTemplates(stack.objects, templates, runId);
    }
    const from = template.from === 'cache' ? 'cached template' : 'stack synthesized';
    progress.line(
      `Run ${runId} on pool "${input.pool ?? 'default'}" (${from} in ${(stack.synthMs / 1000).toFixed(1)} s)`,
    );
    progress.phase('running');
    const executionStarted = performance.now();
    const result = await stack.execute(input, {
      executionName: runId,
      signal,
      // The engine's own start event is the one recorded above, when the command started.
      onEvent: (event) => {
        if (event.type !== 'ExecutionStarted') record(event);
      },
    });
    const executionMs = performance.now() - executionStarted;
    const timings = { totalMs: 0, synthMs: stack.synthMs, executionMs };

    for (const delivery of result.deliveries.filter((d) => d.error)) {
      progress.line(`warning: ${delivery.functionName} (rule ${delivery.rule}) failed: ${delivery.error}`);
    }
    if (result.status !== 'SUCCEEDED') {
      timings.totalMs = performance.now() - started;
      return {
        runId,
        status: result.status,
        error: result.error,
        // The execution's cause is Lambda's JSON, as in AWS: show its message.
        cause: result.cause === undefined ? undefined : readableCause(result.error ?? '', result.cause),
        timings,
        templateFrom: template.from,
        events: result.events,
      };
    }
    progress.phase('writing the dataset and the report');
    const summary = RunSummary.parse(result.output);
    const outDir = path.resolve(options.out, runId);
    mkdirSync(outDir, { recursive: true });
    const keys = exportKeys(runId);
    // Streamed: an export's files are the size of the pool.
    for (const key of [keys.dataset, keys.alpaca, keys.tasks, keys.summary]) {
      const body = await stack.objects.download(key);
      if (body !== undefined) {
        await pipeline(body, createWriteStream(path.join(outDir, path.posix.basename(key))));
      }
    }
    const { writeReport } = await import('./report.ts');
    const { files } = await writeReport(stack.objects, stack.pool, runId, options.out);
    timings.totalMs = performance.now() - started;
    return {
      runId,
      status: 'SUCCEEDED',
      summary,
      outDir,
      report: files,
      timings,
      templateFrom: template.from,
      events: result.events,
    };
  } finally {
    progress.done();
    await stack.close();
  }
}

/** The end-of-run table. */
export function formatSummary(result: LocalRunResult): string {
  const s = result.summary;
  if (!s) return '';
  const groups = groupCounts(s.counts);
  const rows: [string, string | number][] = [
    ['run', s.runId],
    ['pool', `${s.pool} (${s.poolSize} tasks, seeds included)`],
    ['profile / model', `${s.profile} / ${s.model}`],
    ['stopped', s.stopReason],
    ['iterations', s.iterations],
    ['model calls', s.usage.calls],
    [
      'tokens in / out',
      `${s.usage.inputTokens} / ${s.usage.outputTokens}${s.model === 'offline' ? ' (estimated)' : ''}`,
    ],
    ['cost (estimated)', formatCost(s)],
    ['candidates generated', s.counts.generated ?? 0],
    ['  rejected', formatEntries(groups.instructions)],
    ['passed filters and ROUGE-L', s.counts.accepted ?? 0],
    ['  dropped at instances', formatEntries(groups.tasks)],
    ['tasks with valid instances', s.counts.complete ?? 0],
    ['instances dropped', formatEntries(groups.instances)],
    ['unusable replies', formatEntries(groups.replies)],
    ['added by this run', s.added],
    ['exported', `${s.exportedTasks} tasks, ${s.exportedRecords} records`],
    ['elapsed', formatElapsed(result)],
    ['dataset', result.outDir ?? ''],
    ['report', result.report ? shown(result.report.html) : ''],
    ['next', `npm run cli -- export ${s.runId} --format messages  ·  npm run cli -- status ${s.runId}`],
  ];
  return formatFields(rows);
}

/** The run's wall time, and how long getting the template took (a synthesis after a change, or the cache). */
function formatElapsed({ timings, templateFrom }: LocalRunResult): string {
  const template = `${(timings.synthMs / 1000).toFixed(1)} s`;
  const how = templateFrom === 'synthesis' ? `synthesis ${template}` : `template from the cache, ${template}`;
  return `${(timings.totalMs / 1000).toFixed(1)} s (${how}; execution ${(timings.executionMs / 1000).toFixed(1)} s)`;
}

/** Total, per task and per 1,000 tasks, split model / AWS; offline and unpriced models say so. */
export function formatCost({ cost, model }: RunSummary): string {
  const per = cost.per1000TasksUsd === null ? '' : `, ${usd(cost.per1000TasksUsd)} per 1,000 tasks`;
  const note = cost.modelUnpriced
    ? ` (no price for ${model}: model cost left out)`
    : model === 'offline'
      ? ' (the offline model is free; the AWS side is what the same run would cost deployed)'
      : '';
  return `${usd(cost.totalUsd)} = model ${usd(cost.modelUsd)} + AWS ${usd(cost.awsUsd)}${per}${note}`;
}

export function runCommand(): Command {
  return new Command('run')
    .addOption(new Option('--pool <name>', 'pool to grow (persists between runs)').env('SELFINSTRUCT_POOL'))
    .addOption(
      new Option('--profile <name>', 'prompts, parsers and filters')
        .choices(['self-instruct', 'alpaca', 'default'])
        .env('SELFINSTRUCT_PROFILE'),
    )
    .addOption(
      new Option('--method <name>', 'how candidates are made (default self-instruct)')
        .choices(Method.options)
        .env('SELFINSTRUCT_METHOD'),
    )
    .addOption(
      new Option(
        '--model <id>',
        'offline | bedrock:<id> | openai:<model> | openai-compatible:<model>@<url> | openai-completions:<model>[@<url>] | replay:<run id>[+<fallback>]',
      ).env('SELFINSTRUCT_MODEL'),
    )
    .option('--max-cost <usd>', 'budget: stop before an iteration that would cross it')
    .option('--prices <file>', 'a price table JSON merged over the shipped one')
    .option(
      '--batch',
      "generate each iteration's instances through the provider's batch API (bedrock:<id>: ~50% cheaper, minutes to hours per iteration)",
    )
    .option(
      '--batch-poll-seconds <n>',
      'with --batch: seconds between two looks at the batch job (default 60)',
    )
    .option(
      '--templates <dir>',
      'a folder of prompt templates (*.txt) that replace the shipped ones of the same name',
    )
    .option(
      '--documents <dir>',
      'a folder of documents (.txt, .md, .html, .pdf): uploaded to documents/<pool>/, the run backtranslates their passages (--method backtranslate)',
    )
    .option(
      '--grounded-questions <n>',
      'with --documents: also ask for up to n question–answer pairs grounded in each passage (default 0)',
    )
    .option('--dry-run', 'print the estimated cost of this run (see `estimate`) and stop, before any call')
    .option('--deployed', 'start the run on the deployed stack (found from its outputs) and follow it')
    .option('--state-machine-arn <arn>', 'with --deployed: the state machine (default: stack outputs)')
    .option(
      '--bucket <name>',
      'with --deployed: the bucket to upload --seeds/--prices/--templates to (default: stack outputs)',
    )
    .option('--stack <name>', 'with --deployed: the stack name', 'SelfInstruct')
    .addOption(new Option('--target <n>', 'new tasks to add (default 300)').env('SELFINSTRUCT_TARGET'))
    .addOption(new Option('--iterations <n>', 'iteration cap (default 3)').env('SELFINSTRUCT_ITERATIONS'))
    .addOption(
      new Option('--seeds <file>', 'seed file (Self-Instruct JSON Lines or Alpaca JSON)').env(
        'SELFINSTRUCT_SEEDS',
      ),
    )
    .addOption(
      new Option('--concurrency <n>', 'Map state concurrency (default 10)').env('SELFINSTRUCT_CONCURRENCY'),
    )
    .option('--call-concurrency <n>', 'model calls at once inside one function (default 8)')
    .option('--chunk-size <n>', 'instructions per Map item (default 40)')
    .option(
      '--instruction-batch-size <n>',
      'instruction-generation calls per item of the "Generate instructions" Map (default 20)',
    )
    .option('--prompts-per-iteration <n>', 'instruction-generation calls per iteration (default: adaptive)')
    .option('--threshold <x>', 'ROUGE-L rejection threshold (default 0.7)')
    .option('--judge-model <id>', 'the model that scores each task, or none (default: --model)')
    .option('--min-quality <score>', 'reject tasks the judge scores below this, 1–5 (default: none)')
    .addOption(
      new Option(
        '--response-style <style>',
        'explained: a teacher model writes each output as an explanation (default direct)',
      ).choices(ResponseStyle.options),
    )
    .option('--teacher-model <id>', 'the model that writes explained responses (default: --model)')
    .option('--temperature <x>', 'override the profile temperature')
    .option('--seed <text>', 'random seed (default: the run id)')
    .option('--input <file>', 'a run input JSON file, as given in the Step Functions console')
    .option('--fresh', 'delete the local data first (all pools)')
    .option('--data-dir <dir>', 'local S3/DynamoDB data', '.local/data')
    .option('--out <dir>', 'where datasets are copied', 'out')
    .option('--verbose', 'show the stage functions’ logs')
    .option('--no-iam', 'do not enforce the functions’ IAM roles on the local stack (debugging)')
    .option(
      '--bundled',
      'run the esbuild bundles `cdk deploy` would upload instead of the TypeScript sources',
    )
    .action(async (options: RunOptions) => {
      if (options.dryRun) {
        const [{ parseRunInput }, { estimateCommand }] = await Promise.all([
          import('../../functions/prepare/core.ts'),
          import('./estimate.ts'),
        ]);
        const input = parseRunInput(runInputFromOptions(options), 'dry-run');
        const args = ['--model', input.model, '--target', String(input.target), '--profile', input.profile];
        args.push('--iterations', String(input.maxIterations), '--chunk-size', String(input.chunkSize));
        args.push('--call-concurrency', String(input.callConcurrency), '--data-dir', options.dataDir);
        args.push('--map-concurrency', String(input.mapConcurrency));
        args.push('--max-prompts-per-iteration', String(input.maxPromptsPerIteration));
        if (options.prices) args.push('--prices', options.prices);
        if (options.seeds) args.push('--seeds', options.seeds);
        if (options.templates) args.push('--templates', options.templates);
        if (input.judgeModel) args.push('--judge-model', input.judgeModel);
        args.push('--response-style', input.responseStyle);
        if (input.teacherModel) args.push('--teacher-model', input.teacherModel);
        if (input.batch) args.push('--batch');
        if (input.method === 'backtranslate' && options.documents) {
          args.push('--method', 'backtranslate', '--documents', options.documents);
          args.push('--grounded-questions', String(input.groundedQuestions ?? 0));
        }
        await estimateCommand().parseAsync(args, { from: 'user' });
        return;
      }
      if (options.deployed) {
        const [{ runDeployed }, { formatStatus }] = await Promise.all([
          import('./deployed.ts'),
          import('./status.ts'),
        ]);
        const status = await runDeployed(options);
        console.log(`\n${formatStatus(status)}`);
        if (status.status !== 'SUCCEEDED') process.exitCode = 1;
        return;
      }
      // Ctrl-C aborts the run as StopExecution would: it is marked aborted and its pool's lease given back.
      const interrupt = new AbortController();
      const onSigint = () => {
        if (interrupt.signal.aborted) process.exit(130);
        console.error('\nInterrupted: aborting the run (Ctrl-C again to quit at once)');
        interrupt.abort();
      };
      process.on('SIGINT', onSigint);
      let result: LocalRunResult;
      try {
        result = await runLocal(
          options,
          process.stdout.isTTY ? liveView(process.stdout) : console.log,
          interrupt.signal,
        );
      } finally {
        process.off('SIGINT', onSigint);
      }
      if (result.status === 'ABORTED') {
        console.error(`\nRun ${result.runId} aborted`);
        process.exitCode = 130;
        return;
      }
      if (result.status !== 'SUCCEEDED') {
        console.error(`\nRun ${result.runId} failed: ${result.error}\n${result.cause}`);
        process.exitCode = 1;
        return;
      }
      console.log(`\nRun ${result.runId} succeeded\n${formatSummary(result)}`);
    });
}
