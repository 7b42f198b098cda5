/**
 * `selfinstruct redrive <run>` against the local stack standing in for AWS: the command talks to Step
 * Functions through the real SDK client, pointed at the stack's Step Functions endpoint. A run that
 * failed in its second iteration's instances Map (started with a fault through `LocalStack.execute`,
 * so the endpoint's registry knows it) is redriven by the command, restarts at the failed Map, takes its
 * pool back and succeeds; the command refuses a running, a succeeded and an unknown run, and a local
 * run, each with one `error:` line.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { HISTORY_EVENTS_ENV } from '../../functions/shared/execution-limits.ts';
import { exportKeys } from '../../functions/shared/keys.ts';
import { INSTRUCTION_BATCH_STATES, STAGES } from '../../functions/stages.ts';
import { main } from '../../infra/cli/main.ts';
import { executionLogPath } from '../../infra/local/executions.ts';
import { type EventLog, LocalStack } from '../../infra/local/stack.ts';
import { crashEveryAttempt, smallRunInput } from '../support/local-stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-redrive-cli-'));
const input = (pool: string, maxIterations: number) => smallRunInput('redrive-cli', pool, maxIterations);
let stack: LocalStack;
let sfn: SFNClient;

/** Every attempt of the second iteration's first instances chunk crashes: the Map, so the run, fails. */
const failSecondIteration = crashEveryAttempt(
  STAGES.generateInstances.state,
  ({ progress, chunk }) => progress.iteration === 1 && chunk?.index === 0,
);

/** The command as a user runs it (in this process, whose SFN clients reach the stack's endpoint). */
async function cli(...args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const keep = (text: unknown) => {
    out.push(...String(text).split('\n').filter(Boolean));
  };
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    keep(chunk);
    return true;
  });
  const log = vi.spyOn(console, 'log').mockImplementation(keep);
  const error = vi.spyOn(console, 'error').mockImplementation((line) => keep(`${line}\n`));
  try {
    return { code: await main(['node', 'main.ts', ...args]), out };
  } finally {
    write.mockRestore();
    log.mockRestore();
    error.mockRestore();
    process.exitCode = undefined;
  }
}

const redrive = (run: string, ...more: string[]) =>
  cli('redrive', run, '--state-machine-arn', stack.stateMachineArn, '--interval', '0.05', ...more);

beforeAll(async () => {
  stack = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
  sfn = new SFNClient(awsClientConfig('sfn'));
}, 120_000);

afterAll(async () => {
  await stack.close();
  rmSync(work, { recursive: true, force: true });
});

describe('redrive <run>', { timeout: 240_000 }, () => {
  it('redrives a failed run at its failed state and follows it to success, its dataset exported', async () => {
    const failed = await stack.execute(input('redriven', 3), {
      executionName: 'run-cli-redriven',
      retryIntervalMs: 10,
      faults: [failSecondIteration],
    });
    expect(failed.status).toBe('FAILED');
    expect(await stack.pool.getRun('run-cli-redriven')).toMatchObject({ status: 'FAILED' });
    expect(await stack.objects.getText(exportKeys('run-cli-redriven').dataset)).toBeUndefined();

    const { code, out } = await redrive('run-cli-redriven');

    expect(code, out.join('\n')).toBe(0);
    expect(out[0]).toBe(
      `Redrove execution run-cli-redriven of run run-cli-redriven (FAILED: Runtime.ExitError), restarting at "${STAGES.generateInstances.mapState}"; redrive count 1`,
    );
    expect(out.some((line) => /tasks · iteration 3 · /.test(line))).toBe(true);
    expect(out.filter((line) => /^ {2}status {2,}/.test(line))).toEqual([
      expect.stringMatching(/ SUCCEEDED$/),
    ]);
    expect(
      await sfn.send(new DescribeExecutionCommand({ executionArn: stack.executionArn('run-cli-redriven') })),
    ).toMatchObject({ status: 'SUCCEEDED', redriveCount: 1 });
    expect(await stack.pool.getRun('run-cli-redriven')).toMatchObject({ status: 'SUCCEEDED', iteration: 3 });
    const dataset = await stack.objects.getText(exportKeys('run-cli-redriven').dataset);
    expect(dataset?.split('\n').filter(Boolean).length).toBeGreaterThan(0);

    // Succeeded now: nothing left to redrive.
    expect(await redrive('run-cli-redriven')).toEqual({
      code: 1,
      out: [
        'error: Run run-cli-redriven succeeded (execution run-cli-redriven): there is nothing to redrive',
      ],
    });
  });

  it("redrives a run's last execution when the run went on in new ones, and follows it to its end", async () => {
    // One iteration to an execution (see continue-as-new.test.ts); the second execution fails.
    process.env[HISTORY_EVENTS_ENV] = '120';
    try {
      const failed = await stack.execute(input('chained', 3), {
        executionName: 'run-cli-chain',
        retryIntervalMs: 10,
        limits: { historyEvents: 120 },
        faults: [
          crashEveryAttempt(INSTRUCTION_BATCH_STATES.plan, ({ progress }) => progress.execution === 2),
        ],
      });
      expect(failed.executions).toEqual(['run-cli-chain', 'run-cli-chain-2']);
      expect(failed.status).toBe('FAILED');

      const { code, out } = await redrive('run-cli-chain');

      expect(code, out.join('\n')).toBe(0);
      expect(out[0]).toBe(
        `Redrove execution run-cli-chain-2 of run run-cli-chain (FAILED: Runtime.ExitError), restarting at "${INSTRUCTION_BATCH_STATES.plan}"; redrive count 1`,
      );
      expect(out.filter((line) => /^ {2}(status|iteration) {2,}/.test(line))).toEqual([
        expect.stringMatching(/ SUCCEEDED$/),
        expect.stringMatching(/ 3 of at most 3$/),
      ]);
      const described = await Promise.all(
        ['run-cli-chain', 'run-cli-chain-2', 'run-cli-chain-3'].map((name) =>
          sfn.send(new DescribeExecutionCommand({ executionArn: stack.executionArn(name) })),
        ),
      );
      expect(described.map(({ status, redriveCount }) => ({ status, redriveCount }))).toEqual([
        { status: 'SUCCEEDED', redriveCount: 0 },
        { status: 'SUCCEEDED', redriveCount: 1 },
        { status: 'SUCCEEDED', redriveCount: 0 },
      ]);
      expect(await stack.pool.getRun('run-cli-chain')).toMatchObject({ status: 'SUCCEEDED', iteration: 3 });
      expect(await stack.objects.getText(exportKeys('run-cli-chain').dataset)).toBeDefined();
    } finally {
      delete process.env[HISTORY_EVENTS_ENV];
    }
  });

  it('with --no-watch, redrives and returns', async () => {
    await stack.execute(input('unwatched', 2), {
      executionName: 'run-cli-unwatched',
      retryIntervalMs: 10,
      faults: [failSecondIteration],
    });
    const { code, out } = await redrive('run-cli-unwatched', '--no-watch');
    expect(code).toBe(0);
    expect(out).toEqual([
      `Redrove execution run-cli-unwatched of run run-cli-unwatched (FAILED: Runtime.ExitError), restarting at "${STAGES.generateInstances.mapState}"; redrive count 1`,
      'Follow it with "selfinstruct watch run-cli-unwatched --deployed"',
    ]);
    await stack.stepFunctions?.idle();
    expect(
      await sfn.send(new DescribeExecutionCommand({ executionArn: stack.executionArn('run-cli-unwatched') })),
    ).toMatchObject({ status: 'SUCCEEDED', redriveCount: 1 });
  });

  it('refuses a running run, pointing to watch', async () => {
    let refused: Promise<{ code: number; out: string[] }> | undefined;
    // "Prepare run" crashes once and waits 3 s to retry: the run is running meanwhile.
    const result = await stack.execute(input('running', 1), {
      executionName: 'run-cli-running',
      retryIntervalMs: 3000,
      faults: [
        {
          kind: 'crash',
          times: 1,
          error: 'Runtime.ExitError',
          invocation: (invocation) => invocation.state === STAGES.prepare.state,
        },
      ],
      onEvent: (event: EventLog) => {
        if (event.type === 'StateRetried' || event.type === 'StateFailed')
          refused ??= redrive('run-cli-running');
      },
    });
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    if (!refused) throw new Error('"Prepare run" never failed');
    expect(await refused).toEqual({
      code: 1,
      out: [
        'error: Run run-cli-running is still running (execution run-cli-running): watch it with "selfinstruct watch run-cli-running --deployed"',
      ],
    });
  });

  it('refuses an unknown run', async () => {
    expect(await redrive('no-such-run')).toEqual({
      code: 1,
      out: [
        `error: No run no-such-run: state machine ${stack.stateMachineArn} has no execution named no-such-run`,
      ],
    });
  });

  it("prints Step Functions' reason when it refuses the redrive", async () => {
    await stack.execute(input('limited', 2), {
      executionName: 'run-cli-limited',
      retryIntervalMs: 10,
      faults: [failSecondIteration],
    });
    const executionArn = stack.executionArn('run-cli-limited');
    const { events = [] } = await sfn.send(new GetExecutionHistoryCommand({ executionArn }));
    // Redriven with room for a few more events only: it fails at the history limit, for good.
    const limited = await stack.redrive('run-cli-limited', {
      retryIntervalMs: 10,
      limits: { historyEvents: events.length + 4 },
    });
    expect(limited.error).toBe('States.Runtime');

    expect(await redrive('run-cli-limited')).toEqual({
      code: 1,
      out: [
        "error: Run run-cli-limited can't be redriven (execution run-cli-limited, FAILED): Execution history event limit exceeded",
      ],
    });
    expect(await sfn.send(new DescribeExecutionCommand({ executionArn }))).toMatchObject({ redriveCount: 1 });
  });

  it('tells a local run by its history, and names its pool to run again', async () => {
    // The history a local run writes as it goes (`run`), from the same recorder.
    const dataDir = path.join(work, 'local-run');
    const file = executionLogPath(dataDir, 'run-cli-local');
    mkdirSync(path.dirname(file), { recursive: true });
    const toHistory = stack.historyRecorder();
    const failed = await stack.execute(input('local-pool', 2), {
      executionName: 'run-cli-local',
      retryIntervalMs: 10,
      faults: [failSecondIteration],
      onEvent: (event: EventLog) => {
        for (const recorded of toHistory(event)) appendFileSync(file, `${JSON.stringify(recorded)}\n`);
      },
    });
    expect(failed.status).toBe('FAILED');

    expect(await cli('redrive', 'run-cli-local', '--data-dir', dataDir)).toEqual({
      code: 1,
      out: [
        `error: Run run-cli-local is a local run (${file}). A local run's executions end with its process, so there is none to redrive: start a new run on the same pool (npm start -- --pool local-pool), it goes on from the pool's last committed iteration`,
      ],
    });
  });

  it('says a local run has no execution to redrive, and how to go on', async () => {
    // No state machine named, and no stack outputs to read it from (nothing listens there).
    const arn = process.env.SELFINSTRUCT_STATE_MACHINE_ARN;
    delete process.env.SELFINSTRUCT_STATE_MACHINE_ARN;
    process.env.AWS_ENDPOINT_URL_CLOUDFORMATION = 'http://127.0.0.1:9';
    try {
      const { code, out } = await cli('redrive', 'run-local');
      expect(code).toBe(1);
      expect(out).toHaveLength(1);
      expect(out[0]).toMatch(
        /^error: No deployed state machine \(Could not read the outputs of stack SelfInstruct .*\)\. A local run's executions end with its process, so there is none to redrive: start a new run on the same pool \(npm start -- --pool <pool>\), it goes on from the pool's last committed iteration$/,
      );
    } finally {
      delete process.env.AWS_ENDPOINT_URL_CLOUDFORMATION;
      if (arn !== undefined) process.env.SELFINSTRUCT_STATE_MACHINE_ARN = arn;
    }
  });
});
