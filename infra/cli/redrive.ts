/**
 * `redrive <run>`: resumes a failed deployed run with Step Functions' `RedriveExecution`. The run's
 * unsuccessful execution is its last one (a run goes on in `<run>-2`, `<run>-3` … : `runExecutions`);
 * redriven, it restarts at its failed state and its first stage takes the pool's lease back (see
 * README, "Resuming a failed run"). The command then follows the run like `watch`. A local run has no
 * execution left to redrive: its executions end with its process.
 */
import { existsSync } from 'node:fs';
import type { HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { Command } from 'commander';
import { z } from 'zod';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { NotFound, SelfInstructError } from '../../functions/shared/errors.ts';
import { PoolName } from '../../functions/shared/schemas.ts';
import { STAGES } from '../../functions/stages.ts';
import { executionLogPath } from '../local/executions.ts';
import {
  deployedHistory,
  executionArnOf,
  formatStatus,
  localHistory,
  type RunStatus,
  runExecutions,
  watch,
} from './status.ts';

/** A run that can't be redriven (running, succeeded, refused by Step Functions, or a local run). */
export class RunNotRedrivable extends SelfInstructError {}

/** What `redriveRun` redrove, and how the run ended when it was followed. */
export interface Redriven {
  runId: string;
  /** The execution redriven: the run's last one. */
  executionArn: string;
  executionName: string;
  /** Its redrives so far, this one included. */
  redriveCount: number;
  /** The state it restarted at, once its history shows it. */
  restartsAt?: string;
  /** The run's end, when followed. */
  status?: RunStatus;
}

export interface RedriveRunOptions {
  /** Follow the run to its end (default true). */
  follow?: boolean;
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  intervalMs?: number;
  client?: SFNClient;
  /** How long to wait for the redrive to show in the history (AWS records it shortly after). */
  showsWithinMs?: number;
}

const nameOf = (executionArn: string) => executionArn.slice(executionArn.lastIndexOf(':') + 1);

/**
 * The redrive's place in the history: its `ExecutionRedriven` event (`redriveCount` on), the state
 * entered next, if it was already, and whether the execution ended since.
 */
function redriveIn(events: readonly HistoryEvent[], redriveCount: number) {
  const at = events.findIndex(
    (event) =>
      event.type === 'ExecutionRedriven' &&
      (event.executionRedrivenEventDetails?.redriveCount ?? 0) >= redriveCount,
  );
  if (at < 0) return undefined;
  const restartsAt = events.slice(at + 1).find((event) => event.stateEnteredEventDetails?.name)
    ?.stateEnteredEventDetails?.name;
  const count = events[at]?.executionRedrivenEventDetails?.redriveCount ?? redriveCount;
  const ended = events
    .slice(at + 1)
    .some((event) => /^Execution(Succeeded|Failed|Aborted|TimedOut)$/.test(event.type ?? ''));
  return { redriveCount: count, restartsAt, ended };
}

/**
 * Redrives run `runId` of the deployed state machine `stateMachineArn`: its last execution, when it
 * ended FAILED, TIMED_OUT or ABORTED and Step Functions takes the redrive; prints what it redrove and
 * then, unless `follow` is false, follows the run to its end as `watch` does. Throws `NotFound` for an
 * unknown run and `RunNotRedrivable` (with Step Functions' reason where it gives one) otherwise.
 */
export async function redriveRun(
  runId: string,
  stateMachineArn: string,
  {
    follow = true,
    out = process.stdout,
    intervalMs = 2000,
    client: given,
    showsWithinMs = 10_000,
  }: RedriveRunOptions = {},
): Promise<Redriven> {
  const sdk = await import('@aws-sdk/client-sfn');
  const client = given ?? new sdk.SFNClient(awsClientConfig('sfn'));
  const firstArn = executionArnOf(stateMachineArn, runId);
  const executions = await runExecutions(client, firstArn).catch((error: Error) => {
    throw error instanceof NotFound
      ? new NotFound(`No run ${runId}: state machine ${stateMachineArn} has no execution named ${runId}`)
      : error;
  });
  const { executionArn } = executions.at(-1) ?? { executionArn: firstArn };
  const executionName = nameOf(executionArn);
  const describe = () => client.send(new sdk.DescribeExecutionCommand({ executionArn }));
  const before = await describe();
  if (before.status === 'RUNNING' || before.status === 'PENDING_REDRIVE') {
    throw new RunNotRedrivable(
      `Run ${runId} is still running (execution ${executionName}): watch it with "selfinstruct watch ${runId} --deployed"`,
    );
  }
  if (before.status === 'SUCCEEDED') {
    throw new RunNotRedrivable(
      `Run ${runId} succeeded (execution ${executionName}): there is nothing to redrive`,
    );
  }
  try {
    await client.send(new sdk.RedriveExecutionCommand({ executionArn }));
  } catch (error) {
    if ((error as Error).name !== 'ExecutionNotRedrivable') throw error;
    const reason = (await describe()).redriveStatusReason ?? (error as Error).message;
    throw new RunNotRedrivable(
      `Run ${runId} can't be redriven (execution ${executionName}, ${before.status}): ${reason}`,
    );
  }

  // The history shows the redrive, and the state it restarts at, shortly after.
  const expected = (before.redriveCount ?? 0) + 1;
  const deadline = Date.now() + showsWithinMs;
  let shown = redriveIn((await runExecutions(client, executionArn))[0]?.events ?? [], expected);
  while ((!shown || (!shown.restartsAt && !shown.ended)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, 250)));
    shown = redriveIn((await runExecutions(client, executionArn))[0]?.events ?? [], expected);
  }
  const redriven: Redriven = {
    runId,
    executionArn,
    executionName,
    redriveCount: shown?.redriveCount ?? expected,
    restartsAt: shown?.restartsAt,
  };
  out.write(
    `Redrove execution ${executionName} of run ${runId} (${before.status}${before.error ? `: ${before.error}` : ''})` +
      `${redriven.restartsAt ? `, restarting at "${redriven.restartsAt}"` : ''}; redrive count ${redriven.redriveCount}\n`,
  );
  if (!follow) {
    out.write(`Follow it with "selfinstruct watch ${runId} --deployed"\n`);
    return redriven;
  }
  // Followed once the redrive shows (else the history still ends with the failure).
  const status = await watch(runId, deployedHistory(firstArn, client), { out, intervalMs });
  return { ...redriven, status };
}

interface RedriveCommandOptions {
  stateMachineArn?: string;
  watch: boolean;
  interval: string;
  dataDir: string;
}

const LOCAL_RUNS =
  "A local run's executions end with its process, so there is none to redrive: start a new run on the same pool";
const GOES_ON = "it goes on from the pool's last committed iteration";
const PreparedPool = z.object({ config: z.object({ pool: PoolName }) });

/**
 * The refusal for local run `runId`, whose history is in `dataDir`: what to do instead, with its pool
 * when "Prepare run" got as far as naming it.
 */
async function localRunRefusal(runId: string, dataDir: string): Promise<RunNotRedrivable> {
  const prepared = (await localHistory(dataDir, runId).history()).find(
    (event) => event.stateExitedEventDetails?.name === STAGES.prepare.state,
  );
  const pool = PreparedPool.safeParse(JSON.parse(prepared?.stateExitedEventDetails?.output ?? 'null'));
  return new RunNotRedrivable(
    `Run ${runId} is a local run (${executionLogPath(dataDir, runId)}). ${LOCAL_RUNS} (npm start -- --pool ${pool.success ? pool.data.config.pool : '<pool>'}), ${GOES_ON}`,
  );
}

/** `redrive <run>`, for `program()` in main.ts; `resolveArn` finds the deployed state machine. */
export function redriveCommand(
  resolveArn: (options: { stateMachineArn?: string }) => Promise<string>,
): Command {
  return new Command('redrive')
    .argument('<run>', 'run id (its first execution’s name)')
    .option('--state-machine-arn <arn>', 'the deployed state machine (default: the stack outputs)')
    .option('--no-watch', 'redrive and return, without following the run')
    .option('--interval <seconds>', 'seconds between checks while following', '2')
    .option('--data-dir <dir>', 'local data, where a local run of that id would be', '.local/data')
    .action(async (runId: string, options: RedriveCommandOptions) => {
      if (!options.stateMachineArn && existsSync(executionLogPath(options.dataDir, runId)))
        throw await localRunRefusal(runId, options.dataDir);
      let stateMachineArn: string;
      try {
        stateMachineArn = await resolveArn(options);
      } catch (error) {
        if (options.stateMachineArn || process.env.SELFINSTRUCT_STATE_MACHINE_ARN) throw error;
        throw new RunNotRedrivable(
          `No deployed state machine (${(error as Error).message}). ${LOCAL_RUNS} (npm start -- --pool <pool>), ${GOES_ON}`,
        );
      }
      const result = await redriveRun(runId, stateMachineArn, {
        follow: options.watch,
        intervalMs: Number(options.interval) * 1000,
      });
      if (!result.status) return;
      console.log(formatStatus(result.status));
      if (result.status.status !== 'SUCCEEDED') process.exitCode = 1;
    });
}
