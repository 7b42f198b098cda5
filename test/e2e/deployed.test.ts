/**
 * `run --deployed`, `status` and `watch` against the local stack standing in for AWS: the CLI talks to
 * Step Functions through the real SDK client, pointed at the local Step Functions endpoint the project
 * starts (`AWS_ENDPOINT_URL_SFN`), exactly as it would talk to AWS.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HISTORY_EVENTS_ENV } from '../../functions/shared/execution-limits.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { STAGES } from '../../functions/stages.ts';
import { runDeployed } from '../../infra/cli/deployed.ts';
import { deployedHistory, executionArnOf } from '../../infra/cli/status.ts';
import { type LocalStepFunctions, startLocalStepFunctions } from '../../infra/local/sfn-server.ts';
import { LocalStack } from '../../infra/local/stack.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-deployed-'));
let stack: LocalStack;
let sfn: LocalStepFunctions;

/** A non-TTY output that keeps its lines. */
function capture() {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean; lines: () => string[] };
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  stream.lines = () => text.split('\n').filter(Boolean);
  return stream;
}

beforeAll(async () => {
  stack = await LocalStack.start({ dataDir: path.join(work, 'data'), fresh: true });
  // The CLI's Step Functions client reaches the local endpoint through its client configuration.
  sfn = await startLocalStepFunctions(stack);
}, 60_000);

afterAll(async () => {
  await sfn.close();
  await stack.close();
  rmSync(work, { recursive: true, force: true });
});

describe('run --deployed', () => {
  it('starts the deployed state machine with the validated input and follows it to the end', async () => {
    const seeds = path.join(work, 'my-seeds.jsonl');
    writeFileSync(
      seeds,
      `${JSON.stringify({ id: 's0', name: 'n0', instruction: 'List three uses of a paperclip at the office.', instances: [{ input: '', output: 'Holding papers, a bookmark, a reset pin.' }], is_classification: false })}\n`,
    );
    const out = capture();
    const status = await runDeployed(
      {
        dataDir: '',
        out: '',
        pool: 'cloud',
        target: '40',
        iterations: '2',
        promptsPerIteration: '3',
        seeds,
        stateMachineArn: sfn.stateMachineArn,
        bucket: stack.bucketName,
      },
      { out, intervalMs: 50 },
    );

    expect(status.status, `${status.error}: ${status.cause}`).toBe('SUCCEEDED');
    const summary = status.output as RunSummary;
    expect(status.added).toBe(summary.added);
    expect(status.counts.generated).toBe(summary.counts.generated);
    expect(status.counts.accepted).toBe(summary.counts.accepted);
    expect(status.usage.calls).toBe(summary.usage.calls);
    expect(status.iteration).toBe(summary.iterations);
    // The uploaded seed file (one task) started a new pool, not under seeds/ (which would trigger a second run).
    expect(summary.poolSize).toBe(1 + summary.added);
    expect(out.lines()[0]).toMatch(/^Started arn:aws:states:.*:execution:SelfInstruct:run-/);
    expect(out.lines().some((line) => /tasks · iteration \d · /.test(line))).toBe(true);
    expect(out.lines().at(-1)).toMatch(/SUCCEEDED/);
    // The instances Maps' items, done as DescribeMapRun counts them (the history holds only the Map Runs).
    const source = deployedHistory(executionArnOf(sfn.stateMachineArn, status.runId));
    const events = await source.history();
    const instanceRuns = events.flatMap((event, i) =>
      event.type === 'MapRunStarted' &&
      events[i - 2]?.stateEnteredEventDetails?.name === STAGES.generateInstances.mapState
        ? [event.mapRunStartedEventDetails?.mapRunArn ?? '']
        : [],
    );
    expect(instanceRuns).toHaveLength(summary.iterations);
    const chunks = events.flatMap((event) =>
      event.stateExitedEventDetails?.name === STAGES.generateInstances.mapState
        ? [JSON.parse(event.stateExitedEventDetails.output ?? '{}').instances.length as number]
        : [],
    );
    expect(await Promise.all(instanceRuns.map((arn) => source.mapRunItemsDone?.(arn)))).toEqual(chunks);
    expect(chunks.every((n) => n > 0)).toBe(true);
    // Two iterations through the CLI's polling: as long as the other whole-run tests may take under load.
  }, 120_000);

  it("follows a run that goes on in new executions to its last execution's end", async () => {
    // Each execution holds one iteration (the limit the run plans with, lowered: see continue-as-new.test.ts).
    process.env[HISTORY_EVENTS_ENV] = '120';
    try {
      const out = capture();
      const status = await runDeployed(
        {
          dataDir: '',
          out: '',
          pool: 'chained',
          target: '400',
          iterations: '3',
          promptsPerIteration: '3',
          stateMachineArn: sfn.stateMachineArn,
        },
        { out, intervalMs: 50 },
      );
      expect(status.status, `${status.error}: ${status.cause}`).toBe('SUCCEEDED');
      const summary = status.output as RunSummary;
      expect(summary.iterations).toBe(3);
      expect(status.iteration).toBe(3);
      expect(status.added).toBe(summary.added);
      expect(status.usage.calls).toBe(summary.usage.calls);
      // The run's history is its three executions', one after the other.
      const events = await deployedHistory(executionArnOf(sfn.stateMachineArn, status.runId)).history();
      expect(events.filter((event) => event.type === 'ExecutionStarted')).toHaveLength(3);
      expect(
        events
          .filter((event) => event.type === 'ExecutionSucceeded')
          .map((event) => JSON.parse(event.executionSucceededEventDetails?.output ?? '{}').continuedAs),
      ).toEqual([`${status.runId}-2`, `${status.runId}-3`, undefined]);
    } finally {
      delete process.env[HISTORY_EVENTS_ENV];
    }
  }, 180_000);

  it('refuses an invalid input before starting anything', async () => {
    await expect(
      runDeployed(
        { dataDir: '', out: '', target: '-3', stateMachineArn: sfn.stateMachineArn },
        { out: capture() },
      ),
    ).rejects.toThrow(/target/);
  });
});

describe('status', () => {
  it('says a deployed run does not exist', async () => {
    const source = deployedHistory(executionArnOf(sfn.stateMachineArn, 'no-such-run'));
    await expect(source.history()).rejects.toThrow(/No execution/);
  });
});
