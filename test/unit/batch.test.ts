/**
 * Batch mode's parts: the Bedrock records (Converse bodies) and the reading of a job's output, the
 * submit step (the same calls the Map would make, idempotent), the check step (its bound, the replies
 * into the call ledger at the batch price) and the Map serving them; with fake ports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBatch } from '../../functions/generate-instances/batch-check.ts';
import { submitBatch } from '../../functions/generate-instances/batch-submit.ts';
import { generateInstances } from '../../functions/generate-instances/core.ts';
import { renderInstancesRequest } from '../../functions/generate-instances/prompt.ts';
import {
  BedrockBatchJobs,
  bedrockBatchLine,
  bedrockJobStatus,
  parseBedrockBatchOutput,
} from '../../functions/shared/batch/bedrock.ts';
import {
  type BatchJobSpec,
  type BatchJobs,
  type BatchResult,
  type BatchStatus,
  type BatchSubmission,
  batchToken,
  maxPolls,
  recordId,
} from '../../functions/shared/batch/jobs.ts';
import { BatchJobFailed } from '../../functions/shared/errors.ts';
import { toJsonLines } from '../../functions/shared/json-lines.ts';
import { runKeys } from '../../functions/shared/keys.ts';
import { promptHash } from '../../functions/shared/model-calls.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import { modelCost, shippedPrices } from '../../functions/shared/pricing/pricing.ts';
import { describeRequest } from '../../infra/local/iam.ts';
import { type BatchStandIn, startBedrockBatchStandIn } from '../support/batch-servers.ts';
import { iterationToGate, iterationToInstances, useFastRetries } from '../support/stage-iteration.ts';
import { MemoryObjects } from './fakes.ts';

useFastRetries();

describe('Bedrock batch records', () => {
  it('writes a record as its id and the Converse body of the request', () => {
    const request = renderInstancesRequest('default', 'Name a fruit.', false);
    const line = JSON.parse(bedrockBatchLine('abc12345678', { ...request, stop: ['', 'END'] }));
    expect(line).toEqual({
      recordId: 'abc12345678',
      modelInput: {
        system: [{ text: request.system }],
        messages: [{ role: 'user', content: [{ text: request.prompt }] }],
        inferenceConfig: {
          temperature: request.temperature,
          topP: request.topP,
          maxTokens: request.maxTokens,
          stopSequences: ['END'],
        },
      },
    });
  });

  it('reads answered and failed records of an output file, hashing the prompt each was sent', () => {
    const modelInput = { system: [{ text: 'sys' }], messages: [{ role: 'user', content: [{ text: 'hi' }] }] };
    const text = toJsonLines([
      {
        recordId: 'a',
        modelInput,
        modelOutput: {
          output: { message: { role: 'assistant', content: [{ text: 'hel' }, { text: 'lo' }] } },
          stopReason: 'max_tokens',
          usage: { inputTokens: 7, outputTokens: 3, totalTokens: 10 },
        },
      },
      { recordId: 'b', modelInput, error: { errorCode: 400, errorMessage: 'bad request' } },
      { modelInput, modelOutput: {} },
    ]);
    expect(parseBedrockBatchOutput(text)).toEqual([
      {
        recordId: 'a',
        promptHash: promptHash({ system: 'sys', prompt: 'hi' }),
        reply: {
          text: 'hello',
          finish: 'length',
          usage: { inputTokens: 7, outputTokens: 3, estimated: false },
        },
      },
      { recordId: 'b', error: '400: bad request' },
    ]);
  });

  it('reads Bedrock job statuses as running, completed or failed', () => {
    expect(bedrockJobStatus('InProgress', undefined).status).toBe('running');
    expect(bedrockJobStatus('Scheduled', undefined).status).toBe('running');
    expect(bedrockJobStatus('PartiallyCompleted', undefined).status).toBe('completed');
    expect(bedrockJobStatus('Expired', 'took too long')).toEqual({
      status: 'failed',
      providerStatus: 'Expired',
      message: 'Bedrock batch job expired: took too long',
    });
  });

  it('names records by their call (11 alphanumeric characters), jobs and tokens by run and iteration', () => {
    expect(recordId(0, 't1/instances-0')).toMatch(/^[0-9a-z]{11}$/);
    expect(recordId(0, 't1/instances-0')).toBe(recordId(0, 't1/instances-0'));
    expect(recordId(0, 't1/instances-0')).not.toBe(recordId(1, 't1/instances-0'));
    expect(batchToken('job-a')).not.toBe(batchToken('job-b'));
  });

  it('bounds the poll loop by the 24 h window', () => {
    expect(maxPolls(60)).toBe(1441);
    expect(maxPolls(3600)).toBe(25);
    // Zero seconds between looks (tests): one look a second's worth.
    expect(maxPolls(0)).toBe(86_401);
  });

  it('prices a batch call at half the on-demand price', () => {
    const table = shippedPrices();
    const tokens = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    const onDemand = modelCost(table, 'bedrock:amazon.nova-micro-v1:0', tokens);
    const batched = modelCost(table, 'bedrock:amazon.nova-micro-v1:0', tokens, { batch: true });
    expect(batched.usd).toBeCloseTo((onDemand.usd ?? 0) / 2, 12);
  });
});

/** A batch API in memory: answers each record with the offline model when looked at `after` times. */
class MemoryJobs {
  readonly provider = 'bedrock' as const;
  readonly submitted: BatchJobSpec[] = [];
  readonly jobs = new Map<string, { spec: BatchJobSpec; looks: number }>();
  statusOf: (looks: number) => BatchStatus = (looks) =>
    looks >= 2
      ? { status: 'completed', providerStatus: 'Completed' }
      : { status: 'running', providerStatus: 'InProgress' };

  constructor(readonly minRecords = 5) {}

  async submit(spec: BatchJobSpec): Promise<string> {
    this.submitted.push(spec);
    // The provider's idempotency: the same token gets the same job.
    const id = `job-${batchToken(spec.name).slice(0, 8)}`;
    if (!this.jobs.has(id)) this.jobs.set(id, { spec, looks: 0 });
    return id;
  }

  async status_(jobId: string) {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    job.looks++;
    return job;
  }

  async results(jobId: string): Promise<BatchResult[]> {
    const job = this.jobs.get(jobId);
    const model = new OfflineModel({ seed: 'batch' });
    return Promise.all(
      (job?.spec.records ?? []).map(async ({ recordId: id, request }) => {
        const { text, finish, usage } = await model.generate(request);
        return { recordId: id, promptHash: promptHash(request), reply: { text, finish, usage } };
      }),
    );
  }
}

/** `MemoryJobs` as `BatchJobs` (its `status` counts looks). */
const asJobs = (jobs: MemoryJobs): BatchJobs => ({
  provider: jobs.provider,
  minRecords: jobs.minRecords,
  submit: (spec) => jobs.submit(spec),
  status: async (jobId) => jobs.statusOf((await jobs.status_(jobId)).looks),
  results: (jobId) => jobs.results(jobId),
});

/** One iteration up to the gate, its state with `batch` on. */
async function gatedIteration() {
  const model = new OfflineModel({ seed: 'unit' });
  const { objects, pool, state, gated } = await iterationToGate({}, { model });
  const batched = { ...state, config: { ...state.config, batch: true, batchPollSeconds: 0 } };
  return { objects, pool, model, state: batched, chunks: gated.chunks };
}

describe('the batch steps', () => {
  it('submits the instance calls the Map would make, once, even when the submit is retried', async () => {
    const { objects, pool, model, state, chunks } = await gatedIteration();
    const jobs = new MemoryJobs();
    const deps = { objects, pool, model, jobs: asJobs(jobs) };
    const first = await submitBatch({ ...state, step: 'submit-batch', chunks }, deps);
    const classified = (await pool.listCalls('run-1', '1#chunk-')).length;
    const again = await submitBatch({ ...state, step: 'submit-batch', chunks }, deps);

    expect(first.status).toBe('submitted');
    expect(again).toEqual(first);
    expect(jobs.jobs.size).toBe(1);
    expect(jobs.submitted).toHaveLength(2);
    // The retry sent the same records under the same job name (the provider's token keeps one job).
    expect(jobs.submitted[1]?.records).toEqual(jobs.submitted[0]?.records);
    expect(jobs.submitted[1]?.name).toBe(jobs.submitted[0]?.name);
    const ids = chunks.flatMap((chunk) => chunk.ids);
    expect(first.records).toBe(ids.length);
    expect(first.maxPolls).toBe(maxPolls(0));
    // The classification calls (if any) were made once: the retry reused them.
    expect(await pool.listCalls('run-1', '1#chunk-')).toHaveLength(classified);
  });

  it('makes no job below the provider minimum, and says why', async () => {
    const { objects, pool, model, state, chunks } = await gatedIteration();
    const jobs = new MemoryJobs(10_000);
    const result = await submitBatch(
      { ...state, step: 'submit-batch', chunks },
      { objects, pool, model, jobs: asJobs(jobs) },
    );
    expect(result.status).toBe('on-demand');
    expect(result.reason).toMatch(/below the bedrock minimum of 10000 records per batch job: made on demand/);
    expect(jobs.submitted).toHaveLength(0);
    // Noted for the iteration's figures ("Save iteration"): no job, and why.
    const noted = await objects.getText(runKeys('run-1', 1).batch.submission);
    expect(JSON.parse(noted ?? '{}')).toEqual({
      provider: 'bedrock',
      records: result.records,
      minRecords: 10_000,
      reason: result.reason,
    });
  });

  it('looks until the job is done, records its replies as batch calls, and the Map serves them', async () => {
    const { objects, pool, model, state, chunks } = await gatedIteration();
    const jobs = new MemoryJobs();
    const submitted = await submitBatch(
      { ...state, step: 'submit-batch', chunks },
      { objects, pool, model, jobs: asJobs(jobs) },
    );
    const look = (batch: typeof submitted) =>
      checkBatch({ ...state, step: 'check-batch', batch }, { objects, pool, jobs: asJobs(jobs) });
    const running = await look(submitted);
    expect(running).toMatchObject({ status: 'running', polls: 1 });
    const done = await look(running);
    expect(done).toMatchObject({
      status: 'completed',
      polls: 2,
      answered: submitted.records,
      failedRecords: 0,
    });
    // A retried look records nothing twice.
    await look(running);
    const batchCalls = (await pool.listCalls('run-1', '1#')).filter((call) => call.batch);
    expect(batchCalls).toHaveLength(submitted.records);

    const counting = {
      calls: 0,
      generate: (request: Parameters<OfflineModel['generate']>[0]) => {
        if (request.stage === 'generate-instances') counting.calls++;
        return model.generate(request);
      },
      id: 'offline',
    };
    for (const chunk of chunks) {
      await generateInstances({ ...state, chunk }, { objects, pool, model: counting });
    }
    expect(counting.calls).toBe(0);
    const tasks = await pool.getTasks(
      'demo',
      chunks.flatMap((chunk) => chunk.ids),
    );
    expect(tasks.filter((task) => task.status === 'complete').length).toBeGreaterThan(0);
  });

  it('fails the run at the last look of the window, and when the job failed', async () => {
    const { objects, pool, model, state, chunks } = await gatedIteration();
    const jobs = new MemoryJobs();
    jobs.statusOf = () => ({ status: 'running', providerStatus: 'InProgress' });
    const submitted = await submitBatch(
      { ...state, step: 'submit-batch', chunks },
      { objects, pool, model, jobs: asJobs(jobs) },
    );
    const last = { ...submitted, polls: submitted.maxPolls - 1 };
    await expect(
      checkBatch({ ...state, step: 'check-batch', batch: last }, { objects, pool, jobs: asJobs(jobs) }),
    ).rejects.toThrow(/still InProgress after 86401 looks 0 s apart, past the provider's 24 h window/);
    jobs.statusOf = () => ({
      status: 'failed',
      providerStatus: 'Failed',
      message: 'Bedrock batch job failed: no access',
    });
    await expect(
      checkBatch({ ...state, step: 'check-batch', batch: submitted }, { objects, pool, jobs: asJobs(jobs) }),
    ).rejects.toBeInstanceOf(BatchJobFailed);
  });
});

describe('local IAM of the batch API', () => {
  const place = { region: 'us-east-1', account: '000000000000' };
  it('asks CreateModelInvocationJob on the model and the job, and PassRole of the role, passed to Bedrock', () => {
    const described = describeRequest(
      'bedrock',
      {
        method: 'POST',
        hostname: 'bedrock.us-east-1.amazonaws.com',
        path: '/model-invocation-job',
        headers: {},
        body: JSON.stringify({
          jobName: 'j',
          modelId: 'amazon.nova-micro-v1:0',
          roleArn: 'arn:aws:iam::0:role/R',
        }),
      },
      place,
    );
    expect(described.authorizations).toEqual([
      {
        action: 'bedrock:CreateModelInvocationJob',
        resource: 'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0',
      },
      {
        action: 'bedrock:CreateModelInvocationJob',
        resource: 'arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/j',
      },
      {
        action: 'iam:PassRole',
        resource: 'arn:aws:iam::0:role/R',
        context: { 'iam:PassedToService': 'bedrock.amazonaws.com' },
      },
    ]);
  });

  it('asks GetModelInvocationJob on the job the path names', () => {
    const arn = 'arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/abc';
    const described = describeRequest(
      'bedrock',
      { method: 'GET', hostname: 'h', path: `/model-invocation-job/${encodeURIComponent(arn)}`, headers: {} },
      place,
    );
    expect(described).toMatchObject({
      operation: 'GetModelInvocationJob',
      authorizations: [{ action: 'bedrock:GetModelInvocationJob', resource: arn }],
    });
  });
});

describe('a retried Bedrock submit', () => {
  const objects = new MemoryObjects();
  const saved = { ...process.env };
  let standIn: BatchStandIn;
  beforeAll(async () => {
    standIn = await startBedrockBatchStandIn({
      objects: () => objects,
      region: 'us-east-1',
      account: '000000000000',
    });
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_BEDROCK: standIn.url,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'retried-submit',
      AWS_SECRET_ACCESS_KEY: 'secret',
    });
  });
  afterAll(async () => {
    process.env = saved;
    await standIn.close();
  });

  it('gets the job the first attempt started (same name and clientRequestToken), never a second job', async () => {
    const jobs = new BedrockBatchJobs(objects, 'bucket', 'arn:aws:iam::000000000000:role/BatchRole');
    const spec = {
      runId: 'r',
      name: 'selfinstruct-0123456789abcdef-i1',
      modelId: 'amazon.nova-micro-v1:0',
      inputKey: 'runs/r/iteration-1/batch/input/instances.jsonl',
      outputPrefix: 'runs/r/iteration-1/batch/output/',
      records: [{ recordId: 'a', request: renderInstancesRequest('default', 'Name a fruit.', false) }],
    };
    const first = await jobs.submit(spec);
    const again = await jobs.submit(spec);
    expect(again).toBe(first);
    expect(standIn.jobs).toHaveLength(1);
    expect(standIn.jobs[0]?.token).toBe(batchToken(spec.name));
    expect(standIn.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });
});

describe("the poll loop's looks", () => {
  it('are stored by the last look and priced in the iteration\'s AWS cost by "Save iteration"', async () => {
    const model = new OfflineModel({ seed: 'looks' });
    const onDemand = await iterationToInstances({}, { model });
    const plain = await onDemand.save();
    const batched = await iterationToInstances({}, { model: new OfflineModel({ seed: 'looks' }) });
    const keys = runKeys('run-1', 1).batch;
    const submission: BatchSubmission = { provider: 'bedrock', jobId: 'job-1', records: 0, minRecords: 100 };
    await batched.objects.put(keys.submission, JSON.stringify(submission));
    await batched.objects.put(keys.completion, JSON.stringify({ looks: 5 }));
    const looked = await batched.save();
    const stored = (await batched.pool.getIterations('run-1'))['1'];
    expect(stored?.batch?.looks).toBe(5);
    // The same iteration but its job's submit and 5 looks: each look's check, its states and GB-seconds.
    const awsUsd = async (pool: typeof batched.pool) =>
      (await pool.getIterations('run-1'))['1']?.cost.awsUsd ?? 0;
    const plainCost = await awsUsd(onDemand.pool);
    const lookedCost = await awsUsd(batched.pool);
    expect(lookedCost).toBeGreaterThan(plainCost);
    expect(looked.progress.costUsd - plain.progress.costUsd).toBeCloseTo(lookedCost - plainCost, 12);
  });
});
