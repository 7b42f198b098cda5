/**
 * `status <run>` and `watch <run>`: where a run stands, read from its execution history, the same way
 * for a local run (the history the local run writes as it goes, `.local/data/executions/<run>.jsonl`)
 * and a deployed one (Step Functions `GetExecutionHistory`): current state, iteration, counts by
 * outcome, pool size, tokens and estimated cost so far, and an ETA.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { Command } from 'commander';
import { readableCause } from '../../functions/record-failure/core.ts';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { NotFound } from '../../functions/shared/errors.ts';
import { formatUsd } from '../../functions/shared/pricing/money.ts';
import { addCounts } from '../../functions/shared/schemas.ts';
import { STAGES } from '../../functions/stages.ts';
import { executionLogPath } from '../local/executions.ts';
import { formatEntries, groupCounts } from './counts.ts';

export interface RunStatus {
  runId: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';
  /** The state being executed (the last one entered). */
  state?: string;
  /** The iteration under way (or the last one). */
  iteration: number;
  maxIterations?: number;
  target?: number;
  /** Tasks this run added (after each "Save iteration"). */
  added: number;
  poolSize?: number;
  /** generated, accepted, complete and one key per rejection reason, including the current iteration. */
  counts: Record<string, number>;
  chunks?: { done: number; total: number };
  usage: { calls: number; inputTokens: number; outputTokens: number };
  costUsd: number;
  startedAt?: Date;
  elapsedMs: number;
  /** Remaining time at the rate so far, while running. */
  etaMs?: number;
  error?: string;
  cause?: string;
  output?: unknown;
}

interface Usage {
  calls: number;
  inputTokens: number;
  outputTokens: number;
}

const parse = (text: string | undefined): Record<string, unknown> => {
  try {
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

/** Derives a run's status from its execution history (oldest event first). */
export function statusFromHistory(
  runId: string,
  events: readonly HistoryEvent[],
  now = new Date(),
): RunStatus {
  const status: RunStatus = {
    runId,
    status: 'RUNNING',
    iteration: 0,
    added: 0,
    counts: {},
    usage: { calls: 0, inputTokens: 0, outputTokens: 0 },
    costUsd: 0,
    elapsedMs: 0,
  };
  const add = (counts: Record<string, number> | undefined) => addCounts(status.counts, counts);
  const addUsage = (byStage: Record<string, Usage> | undefined) => {
    for (const usage of Object.values(byStage ?? {})) {
      status.usage.calls += usage.calls;
      status.usage.inputTokens += usage.inputTokens;
      status.usage.outputTokens += usage.outputTokens;
    }
  };
  let endedAt: Date | undefined;

  for (const event of events) {
    const entered = event.stateEnteredEventDetails;
    const exited = event.stateExitedEventDetails;
    if (event.type === 'ExecutionStarted') status.startedAt = event.timestamp;
    if (entered?.name) {
      status.state = entered.name;
      if (entered.name === STAGES.generateInstructions.state) status.iteration++;
      if (entered.name === STAGES.generateInstances.mapState) {
        const input = parse(entered.input) as { gated?: { chunks?: unknown[] } };
        status.chunks = { done: 0, total: input.gated?.chunks?.length ?? 0 };
      }
    }
    if (event.type === 'MapIterationSucceeded' && status.chunks) status.chunks.done++;
    if (exited?.name) {
      const output = parse(exited.output);
      if (exited.name === STAGES.prepare.state) {
        const config = output.config as { target?: number; maxIterations?: number } | undefined;
        status.target = config?.target;
        status.maxIterations = config?.maxIterations;
        status.poolSize = (output.progress as { poolSize?: number } | undefined)?.poolSize;
      } else if (exited.name === STAGES.generateInstructions.state) {
        addUsage((output.generated as { usage?: Record<string, Usage> } | undefined)?.usage);
      } else if (exited.name === STAGES.filter.state) {
        add((output.gated as { counts?: Record<string, number> } | undefined)?.counts);
      } else if (exited.name === STAGES.generateInstances.mapState) {
        for (const result of (output.instances as {
          counts: Record<string, number>;
          usage: Record<string, Usage>;
        }[]) ?? []) {
          add(result.counts);
          addUsage(result.usage);
        }
      } else if (exited.name === STAGES.saveIteration.state) {
        const progress = output.progress as { added: number; poolSize: number; costUsd?: number } | undefined;
        if (progress) {
          status.added = progress.added;
          status.poolSize = progress.poolSize;
          status.costUsd = progress.costUsd ?? status.costUsd;
        }
      }
    }
    if (event.type === 'ExecutionSucceeded') {
      status.status = 'SUCCEEDED';
      status.output = parse(event.executionSucceededEventDetails?.output);
      endedAt = event.timestamp;
    }
    if (event.type === 'ExecutionFailed') {
      status.status = 'FAILED';
      status.error = event.executionFailedEventDetails?.error;
      status.cause = readableCause(status.error ?? '', event.executionFailedEventDetails?.cause);
      endedAt = event.timestamp;
    }
    if (event.type === 'ExecutionAborted') status.status = 'ABORTED';
    if (event.type === 'ExecutionTimedOut') status.status = 'TIMED_OUT';
  }
  const start = status.startedAt?.getTime();
  status.elapsedMs = start === undefined ? 0 : (endedAt ?? now).getTime() - start;
  if (status.status === 'RUNNING' && status.target && status.added > 0 && status.added < status.target) {
    status.etaMs = (status.elapsedMs * (status.target - status.added)) / status.added;
  }
  return status;
}

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
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `  ${key.padEnd(width)}  ${value}`).join('\n');
}

/** One line: a progress bar in a terminal, plain text otherwise. */
export function statusLine(s: RunStatus, bar: boolean): string {
  const fraction = s.target ? Math.min(1, s.added / s.target) : 0;
  const width = 24;
  const filled = Math.round(fraction * width);
  const progress = bar ? `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` : '';
  const chunks =
    s.state === STAGES.generateInstances.mapState && s.chunks ? ` ${s.chunks.done}/${s.chunks.total}` : '';
  const eta = s.etaMs === undefined ? '' : ` · ETA ${seconds(s.etaMs)}`;
  return `${progress}${s.added}/${s.target ?? '?'} tasks · iteration ${s.iteration} · ${s.status === 'RUNNING' ? `${s.state ?? 'starting'}${chunks}` : s.status} · ${formatUsd(s.costUsd)}${eta}`;
}

/** Reads a run's history: `history()` returns the events so far and whether the run has ended. */
export interface HistorySource {
  history(): Promise<HistoryEvent[]>;
}

/** The history a local run writes as it goes. */
export function localHistory(dataDir: string, runId: string): HistorySource {
  const file = executionLogPath(dataDir, runId);
  return {
    async history() {
      if (!existsSync(file)) throw new NotFound(`No local run ${runId} in ${dataDir} (looked for ${file})`);
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => {
          const event = JSON.parse(line) as HistoryEvent & { timestamp: string };
          return { ...event, timestamp: new Date(event.timestamp) };
        });
    },
  };
}

/**
 * A deployed run's history, from Step Functions (the local `serve` endpoint when the local runtime
 * points the SFN client at it). The SDK is loaded on the first read, so that a local `status` never
 * loads it.
 */
export function deployedHistory(executionArn: string, given?: SFNClient): HistorySource {
  return {
    async history() {
      const { DescribeExecutionCommand, paginateGetExecutionHistory, SFNClient } = await import(
        '@aws-sdk/client-sfn'
      );
      const client = given ?? new SFNClient(awsClientConfig('sfn'));
      try {
        await client.send(new DescribeExecutionCommand({ executionArn }));
      } catch (error) {
        if ((error as Error).name === 'ExecutionDoesNotExist')
          throw new NotFound(`No execution ${executionArn}`);
        throw error;
      }
      const events: HistoryEvent[] = [];
      for await (const page of paginateGetExecutionHistory(
        { client },
        { executionArn, includeExecutionData: true },
      )) {
        events.push(...(page.events ?? []));
      }
      return events;
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
  for (;;) {
    const status = statusFromHistory(runId, await source.history());
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

/** The execution ARN of run `runId` of a deployed state machine. */
export const executionArnOf = (stateMachineArn: string, runId: string) =>
  `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${runId}`;

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
    const result = statusFromHistory(runId, await source.history());
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
