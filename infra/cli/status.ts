/**
 * `status <run>` and `watch <run>`: where a run stands, read from its execution history, the same way
 * for a local run (the history the local run writes as it goes, `.local/data/executions/<run>.jsonl`)
 * and a deployed one (Step Functions `GetExecutionHistory`): current state, iteration, counts by
 * outcome, pool size, tokens and estimated cost so far, and an ETA.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { Command } from 'commander';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { NotFound } from '../../functions/shared/errors.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import { totalUsage } from '../../functions/shared/model-calls.ts';
import { formatUsd } from '../../functions/shared/pricing/money.ts';
import { ContinuedAs, type Usage } from '../../functions/shared/schemas.ts';
import { initialRunView, type RunView, reduce, timing } from '../history/run-view.ts';
import { executionLogPath } from '../local/executions.ts';
import { formatEntries, formatFields, groupCounts } from './counts.ts';

/** Where a run stands at a moment: its view, with the time it has run and the time left. */
export interface RunStatus extends Omit<RunView, 'usage'> {
  runId: string;
  /** Billed model calls and tokens, all steps together. */
  usage: Usage;
  elapsedMs: number;
  /** Remaining time at the rate so far, while running. */
  etaMs?: number;
}

/** The status of run `runId` as `view` shows it at `now`. */
export const statusOf = (runId: string, view: RunView, now = new Date()): RunStatus => ({
  ...view,
  runId,
  usage: totalUsage(view.usage),
  ...timing(view, now),
});

/** A run's status from its execution history (oldest event first). */
export const statusFromHistory = (runId: string, events: readonly HistoryEvent[], now = new Date()) =>
  statusOf(runId, events.reduce(reduce, initialRunView), now);

const seconds = (ms: number) =>
  ms < 60_000 ? `${(ms / 1000).toFixed(0)} s` : `${(ms / 60_000).toFixed(1)} min`;

/** The multi-line `status` view. */
export function formatStatus(s: RunStatus): string {
  const groups = groupCounts(s.counts);
  const rows: [string, string][] = [
    ['run', s.runId],
    ['status', s.status + (s.state && s.status === 'RUNNING' ? ` (${s.state})` : '')],
    ['iteration', `${s.iteration}${s.maxIterations ? ` of at most ${s.maxIterations}` : ''}`],
    ['added', `${s.added}${s.target ? ` of ${s.target}` : ''} tasks; pool ${s.poolSize ?? '?'}`],
    ['generated / accepted', `${s.counts.generated ?? 0} / ${s.counts.accepted ?? 0}`],
    ['rejected', formatEntries(groups.instructions)],
    ['with valid instances', String(s.counts.complete ?? 0)],
    ['model calls, tokens', `${s.usage.calls}, ${s.usage.inputTokens} in / ${s.usage.outputTokens} out`],
    ['cost so far (estimated)', formatUsd(s.costUsd)],
    ['elapsed', seconds(s.elapsedMs) + (s.etaMs === undefined ? '' : `, about ${seconds(s.etaMs)} to go`)],
  ];
  if (s.error) rows.push(['error', `${s.error}: ${s.cause ?? ''}`]);
  return formatFields(rows);
}

/** One line: a progress bar in a terminal, plain text otherwise. */
export function statusLine(s: Omit<RunStatus, 'runId' | 'usage'>, bar: boolean): string {
  const fraction = s.target ? Math.min(1, s.added / s.target) : 0;
  const width = 24;
  const filled = Math.round(fraction * width);
  const progress = bar ? `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` : '';
  const chunks = s.chunks ? ` ${s.chunks.done}/${s.chunks.total}` : '';
  const eta = s.etaMs === undefined ? '' : ` · ETA ${seconds(s.etaMs)}`;
  return `${progress}${s.added}/${s.target ?? '?'} tasks · iteration ${s.iteration} · ${s.status === 'RUNNING' ? `${s.state ?? 'starting'}${chunks}` : s.status} · ${formatUsd(s.costUsd)}${eta}`;
}

/** Reads a run's history: `history()` returns the events so far and whether the run has ended. */
export interface HistorySource {
  history(): Promise<HistoryEvent[]>;
  /**
   * Items of a running Map Run done so far, where the history does not hold them (a deployed run's
   * Distributed Map items are child executions, with histories of their own).
   */
  mapRunItemsDone?(mapRunArn: string): Promise<number | undefined>;
}

/** The view with its Map's items done, asked of the source where the history does not count them. */
export async function withItemsDone(view: RunView, source: HistorySource): Promise<RunView> {
  if (view.status !== 'RUNNING' || !view.chunks || !view.mapRun || !source.mapRunItemsDone) return view;
  const done = await source.mapRunItemsDone(view.mapRun);
  return done === undefined ? view : { ...view, chunks: { ...view.chunks, done } };
}

/** The history a local run writes as it goes. */
export function localHistory(dataDir: string, runId: string): HistorySource {
  const file = executionLogPath(dataDir, runId);
  return {
    async history() {
      if (!existsSync(file)) throw new NotFound(`No local run ${runId} in ${dataDir} (looked for ${file})`);
      return fromJsonLines<HistoryEvent & { timestamp: string }>(readFileSync(file, 'utf8')).map((event) => ({
        ...event,
        timestamp: new Date(event.timestamp),
      }));
    },
  };
}

/** One execution of a deployed run, with its history so far (oldest event first). */
export interface RunExecution {
  executionArn: string;
  events: HistoryEvent[];
}

/**
 * A deployed run's executions, in order: its first (`executionArn`), then each execution the one before
 * handed the run to (it ended SUCCEEDED with `ContinuedAs`), each with its history. Throws `NotFound`
 * when the first does not exist. `status`, `watch` and `redrive` all find a run's executions here.
 */
export async function runExecutions(client: SFNClient, executionArn: string): Promise<RunExecution[]> {
  const { DescribeExecutionCommand, paginateGetExecutionHistory } = await import('@aws-sdk/client-sfn');
  try {
    await client.send(new DescribeExecutionCommand({ executionArn }));
  } catch (error) {
    if ((error as Error).name === 'ExecutionDoesNotExist') throw new NotFound(`No execution ${executionArn}`);
    throw error;
  }
  const executions: RunExecution[] = [];
  let arn: string | undefined = executionArn;
  while (arn) {
    const events: HistoryEvent[] = [];
    for await (const page of paginateGetExecutionHistory(
      { client },
      { executionArn: arn, includeExecutionData: true },
    )) {
      events.push(...(page.events ?? []));
    }
    executions.push({ executionArn: arn, events });
    const last = events.at(-1);
    const handedOver =
      last?.type === 'ExecutionSucceeded'
        ? ContinuedAs.safeParse(JSON.parse(last.executionSucceededEventDetails?.output ?? 'null'))
        : undefined;
    arn = handedOver?.success ? executionArnOf(arn, handedOver.data.continuedAs, 'execution') : undefined;
  }
  return executions;
}

/**
 * A deployed run's history, from Step Functions (the local `serve` endpoint when the local runtime
 * points the SFN client at it): its executions' (`runExecutions`), one after the other, as one
 * history. The SDK is loaded on the first read, so that a local `status` never loads it.
 */
export function deployedHistory(executionArn: string, given?: SFNClient): HistorySource {
  let made: SFNClient | undefined;
  const sdk = () => import('@aws-sdk/client-sfn');
  const clientOf = async () => {
    made ??= given ?? new (await sdk()).SFNClient(awsClientConfig('sfn'));
    return made;
  };
  return {
    async history() {
      return (await runExecutions(await clientOf(), executionArn)).flatMap((execution) => execution.events);
    },
    async mapRunItemsDone(mapRunArn) {
      const { DescribeMapRunCommand } = await sdk();
      try {
        const run = await (await clientOf()).send(new DescribeMapRunCommand({ mapRunArn }));
        return run.itemCounts?.succeeded;
      } catch {
        // Progress only: the history still says where the run is.
        return undefined;
      }
    },
  };
}

/**
 * Follows a run until it ends, printing progress: a live bar on a TTY, a plain line whenever something
 * changes otherwise (CI, logs). Returns the final status.
 */
export async function watch(
  runId: string,
  source: HistorySource,
  {
    intervalMs = 1000,
    out = process.stdout,
  }: { intervalMs?: number; out?: NodeJS.WritableStream & { isTTY?: boolean } } = {},
): Promise<RunStatus> {
  let last = '';
  let view = initialRunView;
  let seen = 0;
  for (;;) {
    // A history only grows: fold the events not seen yet.
    const events = await source.history();
    view = events.slice(seen).reduce(reduce, view);
    seen = events.length;
    const status = statusOf(runId, await withItemsDone(view, source));
    const line = statusLine(status, Boolean(out.isTTY));
    if (out.isTTY) out.write(`\r\u001b[2K${line}`);
    else if (line !== last) out.write(`${line}\n`);
    last = line;
    if (status.status !== 'RUNNING') {
      if (out.isTTY) out.write('\n');
      return status;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

interface StatusOptions {
  dataDir: string;
  deployed?: boolean;
  stateMachineArn?: string;
  interval?: string;
}

/**
 * The ARN of execution `name` (a run's first execution is named after the run) of a deployed state
 * machine, or of the state machine of execution `of` another.
 */
export const executionArnOf = (
  arn: string,
  name: string,
  of: 'stateMachine' | 'execution' = 'stateMachine',
) =>
  of === 'stateMachine'
    ? `${arn.replace(':stateMachine:', ':execution:')}:${name}`
    : `${arn.slice(0, arn.lastIndexOf(':'))}:${name}`;

function sourceFor(
  runId: string,
  options: StatusOptions,
  resolveArn: () => Promise<string>,
): Promise<HistorySource> {
  if (!options.deployed) return Promise.resolve(localHistory(options.dataDir, runId));
  return resolveArn().then((arn) => deployedHistory(executionArnOf(arn, runId)));
}

/** Finds the deployed state machine (flag, env or stack outputs). */
type ResolveArn = (options: StatusOptions) => Promise<string>;

const withSourceOptions = (command: Command) =>
  command
    .argument('<run>', 'run id')
    .option('--deployed', 'a run of the deployed state machine (else a local run)')
    .option('--state-machine-arn <arn>', 'the deployed state machine (default: the stack outputs)')
    .option('--data-dir <dir>', 'local data', '.local/data');

/** `status <run>`, for `program()` in main.ts. */
export function statusCommand(resolveArn: ResolveArn): Command {
  return withSourceOptions(new Command('status')).action(async (runId: string, options: StatusOptions) => {
    const source = await sourceFor(runId, options, () => resolveArn(options));
    const result = statusOf(
      runId,
      await withItemsDone((await source.history()).reduce(reduce, initialRunView), source),
    );
    console.log(formatStatus(result));
    if (result.status !== 'RUNNING' && result.status !== 'SUCCEEDED') process.exitCode = 1;
  });
}

/** `watch <run>`, for `program()` in main.ts. */
export function watchCommand(resolveArn: ResolveArn): Command {
  return withSourceOptions(new Command('watch'))
    .option('--interval <seconds>', 'seconds between checks', '2')
    .action(async (runId: string, options: StatusOptions) => {
      const source = await sourceFor(runId, options, () => resolveArn(options));
      const result = await watch(runId, source, { intervalMs: Number(options.interval) * 1000 });
      console.log(formatStatus(result));
      if (result.status !== 'SUCCEEDED') process.exitCode = 1;
    });
}
