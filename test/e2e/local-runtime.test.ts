/**
 * The local runtime fails the way AWS does: a crashed invocation reports `Lambda.Unknown` and makes no
 * more requests; a write can land before a timeout; a Map item can be delivered twice, or time out for
 * the state machine while its invocation keeps writing; a state payload over the limit or a history over
 * the limit fails the execution; an aborted execution is ABORTED. After every unsuccessful end, the
 * EventBridge rule's Record failure marks the run and gives its pool back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fault, FaultPlan, timeoutAfterWrite } from '../../infra/local/faults.ts';
import { Invocation } from '../../infra/local/runtime.ts';
import { type ExecutionResult, LocalStack } from '../../infra/local/stack.ts';
import { type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-runtime-'));
let stack: LocalStack;
/** Keys of the objects the S3 server stored, in order. */
const written: string[] = [];
const small = { target: 1000, maxIterations: 1, promptsPerIteration: 2, chunkSize: 5 };
const CHUNK_TASK = 'Generate instances for a chunk';

/** The first chunk's Map item (first delivery), whatever its iteration. */
const firstChunk =
  (attempt = 1) =>
  (i: { state: string; input: unknown; attempt: number }) =>
    i.state === CHUNK_TASK &&
    i.attempt === attempt &&
    (i.input as { chunk: { index: number } }).chunk.index === 0;

const failedStates = (result: ExecutionResult) =>
  result.events.flatMap((event) =>
    event.type === 'StateFailed' ? [`${event.state.name}: ${(event as { Error?: string }).Error}`] : [],
  );
const rawWrites = (runId: string, chunk: number) =>
  written.filter((key) => key === `runs/${runId}/iteration-1/raw/generate-instances-chunk-${chunk}.jsonl`)
    .length;

async function run(pool: string, faults: Fault[], options: Parameters<LocalStack['execute']>[1] = {}) {
  return stack.execute({ ...small, pool }, { retryIntervalMs: 10, faults, ...options });
}

/** A stand-in with latency, for crashes deferred while model calls are in flight. */
let slow: StandIn;

beforeAll(async () => {
  slow = await startOpenAIStandIn({ mix: { seed: 'defer', latencyMs: [20, 60] } });
  stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    context: { 'selfinstruct:allowedModelEndpoints': [slow.url] },
  });
  stack.servers.s3Events.on('event', (event: { Records: { s3: { object: { key: string } } }[] }) => {
    for (const record of event.Records) written.push(decodeURIComponent(record.s3.object.key));
  });
}, 120_000);

afterAll(async () => {
  await stack.close();
  await slow.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a crashed invocation', () => {
  it('makes no request after its death: the server never sees it', async () => {
    const invocation = new Invocation(
      { state: 'test', functionName: 'F', input: {}, attempt: 1 },
      undefined,
      new FaultPlan(),
    );
    let put!: Promise<void>;
    invocation.start(async () => {
      invocation.kill('Lambda.Unknown', 'injected');
      put = stack.objects.put('pools/after-death', 'x');
      await put.catch(() => undefined);
    });
    await expect(invocation.reported).rejects.toMatchObject({ name: 'Lambda.Unknown' });
    await expect(put).rejects.toThrow(/is dead/);
    expect(written).not.toContain('pools/after-death');
  });

  it('is retried by the state machine (Lambda.Unknown), and the run succeeds', async () => {
    const crash: Fault = {
      kind: 'crash',
      invocation: firstChunk(),
      request: (r) => r.service === 's3' && r.operation === 'PutObject',
    };
    const result = await run('crash', [crash]);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(result.faultsStruck.crash).toBe(1);
    expect(failedStates(result)).toEqual([`${CHUNK_TASK}: Lambda.Unknown`]);
    // The crashed attempt died at its first S3 write (the chunk's raw calls, its last step, after it had
    // finished every task): that write never landed, and the retry, finding the tasks finished, made no
    // call and had nothing to write.
    expect(rawWrites(result.executionName, 0)).toBe(0);
  });

  it('can die right after a write lands (the timeout between a write and the next call)', async () => {
    const seen: string[] = [];
    const fault = timeoutAfterWrite({
      invocation: (i) => i.state === 'Save iteration' && i.attempt === 1,
      request: (r) => {
        seen.push(`${r.service} ${r.operation}`);
        return r.service === 'dynamodb' && r.operation.endsWith('Item');
      },
    });
    const result = await run('after-write', [fault]);
    expect(seen.slice(0, 1)).toEqual(['dynamodb UpdateItem']);
    expect(result.faultsStruck).toMatchObject({ crash: 0, 'timeout-after-write': 1 });
    expect(failedStates(result)).toEqual(['Save iteration: Sandbox.Timedout']);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  });
});

describe('an iteration saved across a crash', () => {
  it("adds to the run's counters exactly what its iteration item holds, when it dies between the two", async () => {
    const fault = timeoutAfterWrite({
      invocation: (i) => i.state === 'Save iteration' && i.attempt === 1,
      request: (r) => r.service === 'dynamodb' && r.operation === 'PutItem' && /\/ITER#/.test(r.key ?? ''),
    });
    const result = await run('iteration-item', [fault]);
    expect(result.faultsStruck).toMatchObject({ 'timeout-after-write': 1 });
    expect(failedStates(result)).toEqual(['Save iteration: Sandbox.Timedout']);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');

    const record = await stack.pool.getRun(result.executionName);
    const iterations = Object.values(await stack.pool.getIterations(result.executionName));
    expect(iterations).toHaveLength(1);
    // Counted once, and from the item the first attempt wrote.
    expect(record?.counts).toEqual(iterations[0]?.counts);
    expect(record?.cost?.totalUsd).toBeCloseTo(iterations[0]?.cost.totalUsd ?? Number.NaN, 12);
    // The run item holds no per-iteration stats: it stays small however many iterations run.
    expect(record?.iterations).toBeUndefined();
  });
});

describe('a crash deferred while model calls are in flight', () => {
  it('lets every reply the provider sent reach the invocation, then kills it', async () => {
    const openai = slow;
    {
      const crash: Fault = {
        kind: 'crash',
        invocation: firstChunk(),
        request: (r) => r.service === 'dynamodb' && r.operation === 'PutItem',
        deferWhileModelCalls: true,
      };
      const result = await stack.execute(
        { ...small, pool: 'deferred', model: `openai-compatible:stand-in-chat@${openai.url}` },
        { retryIntervalMs: 10, faults: [crash] },
      );
      expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
      expect(failedStates(result)).toEqual([`${CHUNK_TASK}: Lambda.Unknown`]);
      const calls = openai.requests.filter((r) => r.path === '/v1/chat/completions');
      // No reply was cut off in transit: every call the stand-in answered reached its caller.
      expect(calls.filter((r) => r.reply && !r.delivered)).toEqual([]);
      expect(openai.billedCalls()).toBe(calls.length);
    }
  });
});

describe('a Map item', () => {
  it('delivered twice runs twice, overlapping', async () => {
    const result = await run('twice', [{ kind: 'duplicate', invocation: firstChunk() }]);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(result.faultsStruck.duplicate).toBe(1);
    expect(rawWrites(result.executionName, 0)).toBe(2);
    expect(rawWrites(result.executionName, 1)).toBe(1);
  });

  it('timed out for the state machine keeps running while its retry runs', async () => {
    const result = await run('zombie', [{ kind: 'zombie-timeout', invocation: firstChunk() }]);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(failedStates(result)).toEqual([`${CHUNK_TASK}: States.Timeout`]);
    // Both the zombie and the retry wrote.
    expect(rawWrites(result.executionName, 0)).toBe(2);
  });
});

describe('Step Functions limits', () => {
  const recorded = async (result: ExecutionResult) => {
    expect(result.deliveries.map((d) => d.error)).toEqual([undefined]);
    return stack.pool.getRun(result.executionName);
  };

  it('fail the execution on a state payload over the limit (States.DataLimitExceeded)', async () => {
    const result = await run('payload', [], { limits: { payloadBytes: 1000 } });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('States.DataLimitExceeded');
    expect(result.events.at(-1)?.type).toBe('ExecutionFailed');
    expect(await recorded(result)).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
  });

  it('fail the execution on a history over the limit', async () => {
    const result = await run('history', [], { limits: { historyEvents: 20 } });
    expect(result.status).toBe('FAILED');
    expect(result.cause).toMatch(/maximum number of history events \(20\)/);
    expect(await recorded(result)).toMatchObject({ status: 'FAILED' });
  });
});

describe('an aborted execution', () => {
  it('ends ABORTED; Record failure marks the run aborted and gives the pool back', async () => {
    const stop = new AbortController();
    const result = await run('stopped', [], {
      signal: stop.signal,
      onEvent: (event) => {
        if (event.type === 'StateEntered' && event.state.name === 'Generate instances') stop.abort();
      },
    });
    expect(result.status).toBe('ABORTED');
    expect(result.events.at(-1)?.type).toBe('ExecutionAborted');
    expect(result.deliveries.map((d) => d.error)).toEqual([undefined]);
    expect(await stack.pool.getRun(result.executionName)).toMatchObject({ status: 'ABORTED' });
    expect((await stack.pool.getMeta('stopped'))?.lease).toBeUndefined();
  });
});
