/**
 * Batch mode (run input `batch`) through the whole state machine, against the local S3 and DynamoDB
 * servers, the Bedrock runtime stand-in (instructions, classification, judge: on demand) and the
 * Bedrock batch inference stand-in (the instance calls: one job per iteration), all through the real
 * SDK clients and the local IAM checks of the synthesized roles.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BEDROCK_MIN_RECORDS } from '../../functions/shared/batch/jobs.ts';
import { HISTORY_EVENTS, HISTORY_EVENTS_ENV } from '../../functions/shared/execution-limits.ts';
import { shippedPrices } from '../../functions/shared/pricing/pricing.ts';
import { BATCH_JOB_STATES } from '../../functions/stages.ts';
import { profileHistory } from '../../infra/local/history.ts';
import { historyRecorder } from '../../infra/local/history-events.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { type BatchStandIn, startBedrockBatchStandIn } from '../support/batch-servers.ts';
import { instanceRequests, useBatchStack } from '../support/batch-stack.ts';
import { timesEntered as entered, succeededSummary as summaryOf } from '../support/local-stack.ts';
import { type StandIn, startBedrockStandIn } from '../support/model-servers.ts';

const NOVA = 'bedrock:amazon.nova-micro-v1:0';
const world = useBatchStack('batch');
let stack: LocalStack;
let runtime: StandIn;
let batch: BatchStandIn;
/** Input positions of the records the batch stand-in fails (an `error` line): the Map makes them on demand. */
let failing = new Set<number>();

/** One iteration of enough instructions for a Bedrock job (at least 100 instance calls). */
const big = { target: 1000, maxIterations: 1, promptsPerIteration: 14, chunkSize: 40, model: NOVA };

/** The Converse requests the runtime stand-in got for instance generation (the default profile's). */
const onDemandInstanceCalls = () => instanceRequests(runtime);

beforeAll(async () => {
  runtime = await world.serve(startBedrockStandIn());
  world.setEnv({
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: runtime.url,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDBATCH',
    AWS_SECRET_ACCESS_KEY: 'batch-secret',
  });
  // Synthesized for Nova as it would be deployed: the submit stage may start Nova jobs, pass the role.
  stack = await world.startStack({ context: { 'selfinstruct:model': NOVA } });
  batch = await world.serve(
    startBedrockBatchStandIn({
      objects: () => stack.objects,
      region: stack.place.region,
      account: stack.place.account,
      pollsToComplete: 2,
      failRecord: (_recordId, index) => failing.has(index),
    }),
  );
  world.setEnv({ AWS_ENDPOINT_URL_BEDROCK: batch.url });
}, 60_000);

describe('a run with --batch on Bedrock', { timeout: 240_000 }, () => {
  it('sends the instance calls as one batch job, waits for it, and grows the pool from its replies', async () => {
    batch.reset();
    runtime.reset();
    failing = new Set();
    const result = await stack.execute(
      { ...big, pool: 'batched', batch: true, batchPollSeconds: 600 },
      { retryIntervalMs: 10, waitMs: 0 },
    );
    const summary = summaryOf(result);
    expect(summary.added).toBeGreaterThan(0);

    // One job, of the Converse type, with the stack's batch role, looked at until it was done.
    expect(batch.jobs).toHaveLength(1);
    const [job] = batch.jobs;
    expect(job?.invocationType).toBe('Converse');
    expect(job?.modelId).toBe('amazon.nova-micro-v1:0');
    expect(job?.roleArn).toMatch(/:role\/.*BatchInferenceRole/);
    expect(job?.answered).toBeGreaterThanOrEqual(BEDROCK_MIN_RECORDS);
    expect(job?.polls).toBe(2);
    expect(entered(result, BATCH_JOB_STATES.wait)).toBe(2);
    expect(entered(result, BATCH_JOB_STATES.check)).toBe(2);

    // What "Prepare run" plans a batch iteration's history with is at least what this run measured.
    const record = historyRecorder(stack.distributed);
    const profile = profileHistory(result.events.flatMap((event) => record(event)));
    expect(profile.batchJobs).toBe(1);
    expect(profile.batchPolls).toBe(2);
    expect(profile.eventsPerBatchSubmit).toBeGreaterThan(0);
    expect(profile.eventsPerBatchSubmit).toBeLessThanOrEqual(HISTORY_EVENTS.perBatchSubmit);
    expect(profile.eventsPerBatchPoll).toBeGreaterThan(0);
    expect(profile.eventsPerBatchPoll).toBeLessThanOrEqual(HISTORY_EVENTS.perBatchPoll);
    expect(profile.eventsPerIteration).toBeLessThanOrEqual(HISTORY_EVENTS.perIteration);
    expect(profile.fixedEvents).toBeLessThanOrEqual(HISTORY_EVENTS.once);

    // No instance call went on demand: every one was a batch record, recorded as a billed batch call.
    expect(onDemandInstanceCalls()).toBe(0);
    const calls = await stack.pool.listCalls(summary.runId, '');
    const instanceCalls = calls.filter((call) => call.stage === 'generate-instances');
    expect(instanceCalls).toHaveLength(job?.answered ?? -1);
    expect(instanceCalls.every((call) => call.batch === true)).toBe(true);
    expect(calls.filter((call) => call.stage !== 'generate-instances').every((call) => !call.batch)).toBe(
      true,
    );

    // Step "instances" priced at the batch rate: half Nova Micro's on-demand price.
    const price = shippedPrices().models[NOVA];
    const input = instanceCalls.reduce((sum, call) => sum + call.inputTokens, 0);
    const output = instanceCalls.reduce((sum, call) => sum + call.outputTokens, 0);
    const expected =
      (0.5 * (input * (price?.inputPer1M ?? Number.NaN) + output * (price?.outputPer1M ?? 0))) / 1e6;
    const iterations = await stack.pool.getIterations(summary.runId);
    const cost = iterations['1']?.cost as { modelUsdByStage: Record<string, number> } | undefined;
    expect(cost?.modelUsdByStage['generate-instances']).toBeCloseTo(expected, 12);
  });

  it('makes the records the job failed on demand', async () => {
    batch.reset();
    runtime.reset();
    failing = new Set([3, 7]);
    const result = await stack.execute(
      { ...big, pool: 'batched-failures', batch: true, batchPollSeconds: 600 },
      { retryIntervalMs: 10, waitMs: 0 },
    );
    const summary = summaryOf(result);
    expect(batch.jobs[0]?.failed).toBe(2);
    expect(onDemandInstanceCalls()).toBe(2);
    const calls = await stack.pool.listCalls(summary.runId, '');
    const instanceCalls = calls.filter((call) => call.stage === 'generate-instances');
    expect(instanceCalls.filter((call) => !call.batch)).toHaveLength(2);

    // The iteration's record (and the export's summary) say so: sent, served, failed, made on demand.
    const sent = batch.jobs[0]?.answered === undefined ? -1 : batch.jobs[0].answered + 2;
    const figures = {
      provider: 'bedrock',
      jobId: batch.jobs[0]?.jobArn,
      planned: sent,
      sent,
      served: sent - 2,
      failed: 2,
      madeOnDemand: 2,
      belowMinimum: false,
      // The poll loop's looks, which its AWS cost counts.
      looks: entered(result, BATCH_JOB_STATES.check),
    };
    expect((await stack.pool.getIterations(summary.runId))['1']?.batch).toEqual(figures);
    expect(summary.batch).toEqual({ 1: figures });
  });

  it("falls back to on-demand calls below Bedrock's minimum of records per job, and says so", async () => {
    batch.reset();
    runtime.reset();
    const result = await stack.execute(
      { ...big, promptsPerIteration: 2, pool: 'batched-small', batch: true, batchPollSeconds: 600 },
      { retryIntervalMs: 10, waitMs: 0 },
    );
    const summary = summaryOf(result);
    expect(summary.added).toBeGreaterThan(0);
    expect(batch.jobs).toHaveLength(0);
    expect(entered(result, BATCH_JOB_STATES.wait)).toBe(0);
    const submitted = result.events.find(
      (event) => event.type === 'StateExited' && event.state.name === BATCH_JOB_STATES.submit,
    );
    expect(JSON.stringify(submitted)).toMatch(/below the bedrock minimum of 100 records per batch job/);
    expect(onDemandInstanceCalls()).toBeGreaterThan(0);

    // The iteration's record says it ran on demand, and why.
    const figures = (await stack.pool.getIterations(summary.runId))['1']?.batch;
    expect(figures).toMatchObject({
      provider: 'bedrock',
      sent: 0,
      served: 0,
      failed: 0,
      madeOnDemand: 0,
      belowMinimum: true,
      reason: expect.stringMatching(/^\d+ instance calls, below the bedrock minimum of 100 records/),
    });
    expect(figures?.planned).toBeGreaterThan(0);
    expect(figures?.jobId).toBeUndefined();
  });

  it('fails the run with a readable cause when the job fails', async () => {
    const failed = await startBedrockBatchStandIn({
      objects: () => stack.objects,
      region: stack.place.region,
      account: stack.place.account,
      pollsToComplete: 1,
      finalStatus: 'Expired',
    });
    process.env.AWS_ENDPOINT_URL_BEDROCK = failed.url;
    try {
      const result = await stack.execute(
        { ...big, pool: 'batched-expired', batch: true, batchPollSeconds: 600 },
        { retryIntervalMs: 10, waitMs: 0 },
      );
      expect(result.status).toBe('FAILED');
      expect(result.error).toBe('BatchJobFailed');
      expect(result.cause).toMatch(/Bedrock batch job expired/);
    } finally {
      process.env.AWS_ENDPOINT_URL_BEDROCK = batch.url;
      await failed.close();
    }
  });
});

describe('batch mode refuses what has no batch API', () => {
  it("refuses a batch run whose poll loop could be longer than an execution's history, naming the poll interval that fits", async () => {
    // At 25,000 events one batch iteration fits an execution (the run goes on in the next for the
    // next); under a limit of 10,000 events (planned with, see continue-as-new.test.ts) it does not.
    process.env[HISTORY_EVENTS_ENV] = '10000';
    try {
      const result = await stack.execute(
        { ...big, maxIterations: 5, pool: 'batched-long', batch: true, batchPollSeconds: 60 },
        { retryIntervalMs: 10 },
      );
      expect(result.status).toBe('FAILED');
      expect(result.error).toBe('RunInputInvalid');
      expect(result.cause).toMatch(/1441 looks 60 s apart .* raise batchPollSeconds to \d+/);
    } finally {
      delete process.env[HISTORY_EVENTS_ENV];
    }
  });

  it('refuses batch with the offline model before any call', async () => {
    const result = await stack.execute({ pool: 'batched-offline', batch: true }, { retryIntervalMs: 10 });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(/batch: batch mode needs a model with a batch API; supported: bedrock:/);
  });
});
