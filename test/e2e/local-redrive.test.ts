/**
 * The local stack redrives an execution as Step Functions' `RedriveExecution` does, and serves
 * `DescribeExecution` to its Lambdas (real SDK clients against the stack's Step Functions endpoint):
 * a run that failed at "Save iteration" of its second iteration is redriven there (the states before are
 * not run again), as the same execution with `$$.Execution.RedriveCount` 1, RUNNING while it runs, its
 * history going on after `ExecutionRedriven` and counted whole against the limit, and its end delivered to
 * "Record failure" again with the redrive in the event. Until the stages take back the lease "Record
 * failure" gave up, a redriven run stops at its first stage that writes: these tests assert the mechanism,
 * not the run's success.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  RedriveExecutionCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { HISTORY_EVENTS_ENV } from '../../functions/shared/execution-limits.ts';
import { INSTRUCTION_BATCH_STATES, STAGES } from '../../functions/stages.ts';
import type { Fault, InvocationInfo } from '../../infra/local/faults.ts';
import type { ExecutionStatusChange } from '../../infra/local/rules.ts';
import { type EventLog, LocalStack } from '../../infra/local/stack.ts';
import type { CfnTemplate } from '../../infra/local/template.ts';
import { asFunction } from '../support/iam-roles.ts';
import { crashEveryAttempt, enteredStates, type FaultTarget, smallRunInput } from '../support/local-stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-local-redrive-'));
const SAVE = STAGES.saveIteration.state;
const input = (pool: string, maxIterations: number) => smallRunInput('local-redrive', pool, maxIterations);
let stack: LocalStack;
let sfn: SFNClient;

/**
 * Passes `$$.Execution.RedriveCount` to "Save iteration" (no stage reads it yet): what the stage
 * receives shows the context object a redrive runs with. Its input schema drops the extra field.
 */
function passRedriveCount(template: CfnTemplate): void {
  const edit = (value: unknown): unknown => {
    if (typeof value === 'string') {
      return value.replace(
        /("executionStartTime\.\$":\s*"\$\$\.Execution\.StartTime")/g,
        '$1,"redriveCount.$":"$$$$.Execution.RedriveCount"',
      );
    }
    if (Array.isArray(value)) return value.map(edit);
    if (value && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, edit(v)]));
    return value;
  };
  const [machine] = Object.values(template.Resources).filter(
    (resource) => resource.Type === 'AWS::StepFunctions::StateMachine',
  );
  if (!machine?.Properties) throw new Error('no state machine');
  const before = JSON.stringify(machine.Properties.DefinitionString);
  machine.Properties.DefinitionString = edit(machine.Properties.DefinitionString);
  if (JSON.stringify(machine.Properties.DefinitionString) === before)
    throw new Error('"Save iteration" no longer passes $$.Execution.StartTime');
}

/** Crashes `state` at every attempt (its Retry's 7) once the run's progress is where `at` says. */
const failAt = (state: string, at: (progress: FaultTarget['progress']) => boolean): Fault =>
  crashEveryAttempt(state, ({ progress }) => at(progress));
/** Crashes "Save iteration" at every attempt once `iteration` iterations are done. */
const failSave = (iteration: number) => failAt(SAVE, (progress) => progress.iteration === iteration);

/** Runs `pool` for up to `iterations` as execution `name`, which fails at "Save iteration" of its first. */
async function failedRun(pool: string, name: string, iterations: number) {
  const result = await stack.execute(input(pool, iterations), {
    executionName: name,
    retryIntervalMs: 10,
    faults: [failSave(0)],
  });
  expect(result.status).toBe('FAILED');
  return result;
}

/**
 * A fault that never strikes: it sees every invocation (its state and payload) and keeps them, and what
 * the stack's registry (which DescribeExecution answers from) said of each execution when a rule's
 * target was invoked with the execution's status-change event.
 */
function watch(): { fault: Fault; seen: InvocationInfo[]; statusAtRules: string[] } {
  const seen: InvocationInfo[] = [];
  const statusAtRules: string[] = [];
  const fault: Fault = {
    kind: 'zombie-timeout',
    invocation: (invocation) => {
      if (seen.includes(invocation)) return false;
      seen.push(invocation);
      if (invocation.state.startsWith('Rule ')) {
        const { name } = (invocation.input as ExecutionStatusChange).detail;
        statusAtRules.push(stack.executions.get(name)?.status ?? 'unknown');
      }
      return false;
    },
  };
  return { fault, seen, statusAtRules };
}

const describeExecution = (name: string) =>
  sfn.send(new DescribeExecutionCommand({ executionArn: stack.executionArn(name) }));
const history = async (name: string): Promise<HistoryEvent[]> =>
  (await sfn.send(new GetExecutionHistoryCommand({ executionArn: stack.executionArn(name) }))).events ?? [];
/** The status-change events "Record failure" was given, one per invocation. */
const ruleEvents = (seen: InvocationInfo[]) =>
  [
    ...new Map(
      seen
        .filter((invocation) => invocation.state.startsWith('Rule '))
        .map((invocation) => [(invocation.input as ExecutionStatusChange).id, invocation.input]),
    ).values(),
  ] as ExecutionStatusChange[];
const redriveCounts = (seen: InvocationInfo[]) => [
  ...new Set(
    seen
      .filter((invocation) => invocation.state === SAVE)
      .map((invocation) => (invocation.input as { redriveCount?: number }).redriveCount),
  ),
];

beforeAll(async () => {
  stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    editTemplate: passRedriveCount,
  });
  // The test's client is an administrator's (outside any invocation), reaching the stack's endpoint.
  sfn = new SFNClient(awsClientConfig('sfn'));
}, 120_000);

afterAll(async () => {
  await stack.close();
  rmSync(work, { recursive: true, force: true });
});

describe('RedriveExecution on the local stack', { timeout: 240_000 }, () => {
  it('goes on from the failed stage as the same execution, RUNNING meanwhile, its history and rules continued', async () => {
    const first = watch();
    const failed = await stack.execute(input('redriven', 3), {
      executionName: 'run-redriven',
      retryIntervalMs: 10,
      faults: [failSave(1), first.fault],
    });
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toBe('Runtime.ExitError');
    expect(redriveCounts(first.seen)).toEqual([0]);
    const before = await describeExecution('run-redriven');
    expect(before).toMatchObject({
      status: 'FAILED',
      error: 'Runtime.ExitError',
      redriveCount: 0,
      redriveStatus: 'REDRIVABLE',
    });
    expect(before.redriveDate).toBeUndefined();
    const earlier = await history('run-redriven');
    expect(earlier.at(-1)?.type).toBe('ExecutionFailed');
    const [failure] = ruleEvents(first.seen);
    expect(failure?.detail).toMatchObject({ status: 'FAILED', redriveCount: 0, redriveDate: null });
    // DescribeExecution said FAILED before the event reached "Record failure".
    expect(first.statusAtRules).toEqual(['FAILED']);

    // Every attempt of the redrive at "Save iteration" crashes, so it fails again; while a retry waits,
    // the execution runs.
    const second = watch();
    let running: Promise<DescribeExecutionCommandOutput> | undefined;
    const redriven = await stack.redrive('run-redriven', {
      retryIntervalMs: 300,
      faults: [
        {
          kind: 'crash',
          times: 7,
          error: 'Runtime.ExitError',
          invocation: (invocation) => invocation.state === SAVE,
        },
        second.fault,
      ],
      onEvent: (event: EventLog) => {
        if (event.type === 'StateFailed' && event.state.name === SAVE)
          running ??= describeExecution('run-redriven');
      },
    });
    expect(redriven.status).toBe('FAILED');
    expect(redriven.executionName).toBe('run-redriven');
    expect(redriven.executions[0]).toBe('run-redriven');
    // Restarted at the failed state with its input: no state before it entered again.
    const entered = enteredStates(redriven);
    expect(entered[0]).toBe(SAVE);
    expect(entered).not.toContain(STAGES.prepare.state);
    expect(redriven.events.some((event) => event.type === 'ExecutionStarted')).toBe(false);
    expect(redriveCounts(second.seen)).toEqual([1]);

    if (!running) throw new Error('the redriven "Save iteration" never failed');
    const during = await running;
    expect(during).toMatchObject({ status: 'RUNNING', redriveCount: 1, startDate: before.startDate });
    const redriveDate = during.redriveDate;
    if (!redriveDate) throw new Error('no redriveDate while redriven');
    const after = await describeExecution('run-redriven');
    expect(after.status).toBe(redriven.status);
    expect(after.status).not.toBe('RUNNING');
    expect(after).toMatchObject({ redriveCount: 1, input: before.input, startDate: before.startDate });

    // One history: the earlier events, ExecutionRedriven, then the failed state again.
    const events = await history('run-redriven');
    expect(events.slice(0, earlier.length).map((event) => event.id)).toEqual(
      earlier.map((event) => event.id),
    );
    const redrivenEvent = events[earlier.length];
    expect(redrivenEvent).toMatchObject({
      type: 'ExecutionRedriven',
      executionRedrivenEventDetails: { redriveCount: 1 },
      previousEventId: earlier.at(-1)?.id,
    });
    expect(redrivenEvent?.id).toBeGreaterThan(earlier.at(-1)?.id ?? Number.POSITIVE_INFINITY);
    expect(events[earlier.length + 1]).toMatchObject({
      type: 'TaskStateEntered',
      stateEnteredEventDetails: { name: SAVE },
    });
    expect(events.filter((event) => event.type === 'ExecutionStarted')).toHaveLength(1);

    // "Record failure" ran again, given the redrive in its event.
    expect(redriven.deliveries.map((delivery) => delivery.functionName)).toEqual(
      failed.deliveries.map((delivery) => delivery.functionName),
    );
    expect(second.statusAtRules).toEqual([redriven.status]);
    const [again] = ruleEvents(second.seen);
    expect(again?.detail).toMatchObject({
      status: redriven.status,
      redriveCount: 1,
      startDate: failure?.detail.startDate,
      input: failure?.detail.input,
    });
    expect(Math.abs((again?.detail.redriveDate ?? 0) - redriveDate.getTime())).toBeLessThan(2);

    // Redriven once more, without a fault: the run takes its pool back again and ends.
    const third = await stack.redrive('run-redriven', { retryIntervalMs: 10 });
    expect(third.status, `${third.error}: ${third.cause}`).toBe('SUCCEEDED');
    expect(await describeExecution('run-redriven')).toMatchObject({ status: 'SUCCEEDED', redriveCount: 2 });
    expect(await stack.pool.getRun('run-redriven')).toMatchObject({ status: 'SUCCEEDED' });
  });

  it("knows a run's next executions, and redrives the one that failed as itself", async () => {
    // One iteration to an execution (see continue-as-new.test.ts); the second execution fails.
    process.env[HISTORY_EVENTS_ENV] = '120';
    try {
      const limits = { historyEvents: 120 };
      const failed = await stack.execute(input('chained', 3), {
        executionName: 'run-chain',
        retryIntervalMs: 10,
        limits,
        faults: [failAt(INSTRUCTION_BATCH_STATES.plan, (progress) => progress.execution === 2)],
      });
      expect(failed.executions).toEqual(['run-chain', 'run-chain-2']);
      expect(failed.status).toBe('FAILED');
      expect(await describeExecution('run-chain')).toMatchObject({ status: 'SUCCEEDED' });
      const second = await describeExecution('run-chain-2');
      expect(second).toMatchObject({ status: 'FAILED', error: 'Runtime.ExitError', redriveCount: 0 });
      expect(JSON.parse(second.input ?? '{}')).toHaveProperty('continueRun');

      // Redriven, it takes the pool back and hands the run on to its third execution, as before.
      const redriven = await stack.redrive('run-chain-2', { retryIntervalMs: 10, limits });
      expect(redriven.status, `${redriven.error}: ${redriven.cause}`).toBe('SUCCEEDED');
      expect(redriven.executions).toEqual(['run-chain-2', 'run-chain-3']);
      expect(enteredStates(redriven)[0]).toBe(INSTRUCTION_BATCH_STATES.plan);
      // "Prepare run" of run-chain-3 alone: run-chain-2's was not run again.
      expect(enteredStates(redriven).filter((state) => state === STAGES.prepare.state)).toHaveLength(1);
      expect(await describeExecution('run-chain-2')).toMatchObject({
        status: redriven.status,
        redriveCount: 1,
        input: second.input,
        startDate: second.startDate,
      });
      expect((await describeExecution('run-chain')).redriveCount).toBe(0);
    } finally {
      delete process.env[HISTORY_EVENTS_ENV];
    }
  });

  it('redrives an execution StopExecution aborted, from the state it was stopped in', async () => {
    let stopping: Promise<unknown> | undefined;
    const aborted = await stack.execute(input('stopped', 2), {
      executionName: 'run-stopped',
      retryIntervalMs: 10,
      onEvent: (event: EventLog) => {
        if (event.type === 'StateEntered' && event.state.name === INSTRUCTION_BATCH_STATES.plan)
          stopping ??= sfn.send(
            new StopExecutionCommand({ executionArn: stack.executionArn('run-stopped') }),
          );
      },
    });
    await stopping;
    expect(aborted.status).toBe('ABORTED');
    expect(await describeExecution('run-stopped')).toMatchObject({
      status: 'ABORTED',
      redriveStatus: 'REDRIVABLE',
    });
    const topLevel = Object.keys(stack.definition.States);
    const stoppedIn = aborted.events
      .flatMap((event) =>
        event.type === 'StateEntered' && event.index === undefined && topLevel.includes(event.state.name)
          ? [event.state.name]
          : [],
      )
      .at(-1);
    expect(stoppedIn).toBeDefined();

    const redriven = await stack.redrive('run-stopped', { retryIntervalMs: 10 });
    expect(enteredStates(redriven)[0]).toBe(stoppedIn);
    expect(enteredStates(redriven)).not.toContain(STAGES.prepare.state);
    expect(await describeExecution('run-stopped')).toMatchObject({
      status: redriven.status,
      redriveCount: 1,
    });
  });

  it('counts the whole history, before and after the redrive, against the history event limit', async () => {
    await failedRun('limited', 'run-limited', 2);
    const length = (await history('run-limited')).length;

    // No room for ExecutionRedriven and one more event: not redrivable.
    await expect(
      stack.redrive('run-limited', { limits: { historyEvents: length + 1 } }),
    ).rejects.toMatchObject({
      name: 'ExecutionNotRedrivable',
      message: expect.stringContaining('Execution history event limit exceeded'),
    });
    expect((await describeExecution('run-limited')).redriveCount).toBe(0);

    // Room for ExecutionRedriven and "Save iteration" entered, scheduled, started: the limit is reached there.
    const redriven = await stack.redrive('run-limited', {
      retryIntervalMs: 10,
      limits: { historyEvents: length + 4 },
    });
    expect(redriven.status).toBe('FAILED');
    expect(redriven.error).toBe('States.Runtime');
    expect(redriven.cause).toContain(`maximum number of history events (${length + 4})`);
    // An execution that failed at the history limit can't be redriven, whatever the limit.
    const refused = await sfn
      .send(new RedriveExecutionCommand({ executionArn: stack.executionArn('run-limited') }))
      .catch((error: Error) => error);
    expect(refused).toMatchObject({ name: 'ExecutionNotRedrivable' });
    expect(await describeExecution('run-limited')).toMatchObject({
      status: 'FAILED',
      redriveCount: 1,
      redriveStatus: 'NOT_REDRIVABLE',
      redriveStatusReason: 'Execution history event limit exceeded',
    });
  });

  it('refuses a running, a succeeded or an unknown execution, through the Step Functions API', async () => {
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: stack.stateMachineArn,
        name: 'run-succeeds',
        input: JSON.stringify(input('succeeds', 1)),
      }),
    );
    const redrive = () =>
      sfn.send(new RedriveExecutionCommand({ executionArn })).catch((error: Error) => error);
    expect(await redrive()).toMatchObject({
      name: 'ExecutionNotRedrivable',
      message: expect.stringContaining('Execution is RUNNING and cannot be redriven'),
    });
    await stack.stepFunctions?.idle();
    expect(await describeExecution('run-succeeds')).toMatchObject({
      status: 'SUCCEEDED',
      redriveStatus: 'NOT_REDRIVABLE',
      redriveStatusReason: 'Execution is SUCCEEDED and cannot be redriven',
    });
    expect(await redrive()).toMatchObject({
      name: 'ExecutionNotRedrivable',
      message: expect.stringContaining('Execution is SUCCEEDED and cannot be redriven'),
    });
    await expect(stack.redrive('run-succeeds')).rejects.toMatchObject({ name: 'ExecutionNotRedrivable' });
    // Its name is taken, as StartExecution's are.
    await expect(
      stack.execute(input('succeeds', 1), { executionName: 'run-succeeds' }),
    ).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });
    const unknown = await sfn
      .send(new RedriveExecutionCommand({ executionArn: stack.executionArn('no-such-run') }))
      .catch((error: Error) => error);
    expect(unknown).toMatchObject({ name: 'ExecutionDoesNotExist' });
  });

  it('redrives through the API: RedriveExecution answers the redrive date, the execution runs again', async () => {
    await failedRun('api', 'run-api', 2);
    const { redriveDate } = await sfn.send(
      new RedriveExecutionCommand({ executionArn: stack.executionArn('run-api') }),
    );
    expect(redriveDate).toBeInstanceOf(Date);
    await stack.stepFunctions?.idle();
    const after = await describeExecution('run-api');
    expect(after).toMatchObject({ redriveCount: 1, redriveDate });
    expect(after.status).not.toBe('RUNNING');
    const events = await history('run-api');
    expect(events.filter((event) => event.type === 'ExecutionRedriven')).toHaveLength(1);
    expect(events.at(-1)?.type).toMatch(/^Execution(Succeeded|Failed)$/);
  });
});

describe("the stack's Lambdas and its Step Functions endpoint", () => {
  it('answers DescribeExecution to a role that may, and AccessDenied to one that may not', async () => {
    await stack.execute(input('iam', 1), { executionName: 'run-iam', retryIntervalMs: 10 });
    const executionArn = stack.executionArn('run-iam');
    const describe = () =>
      new SFNClient(awsClientConfig('sfn')).send(new DescribeExecutionCommand({ executionArn }));
    const mayDescribe = [{ Effect: 'Allow', Action: 'states:DescribeExecution', Resource: executionArn }];
    expect(await asFunction(mayDescribe, describe)).toMatchObject({ status: 'SUCCEEDED' });

    const refused = await asFunction([], describe).catch((error: Error) => error);
    expect(refused).toMatchObject({ name: 'AccessDeniedException' });
    expect((refused as Error).message).toContain(
      `is not authorized to perform: states:DescribeExecution on resource: ${executionArn}`,
    );
    // Redriving needs states:RedriveExecution, which DescribeExecution's grant does not give.
    const redrive = await asFunction(mayDescribe, () =>
      new SFNClient(awsClientConfig('sfn')).send(new RedriveExecutionCommand({ executionArn })),
    ).catch((error: Error) => error);
    expect(redrive).toMatchObject({ name: 'AccessDeniedException' });
    expect((redrive as Error).message).toContain('states:RedriveExecution');
  });
});
