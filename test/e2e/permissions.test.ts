/**
 * What a run may do, through the local stack. The model API key goes only to the endpoints of
 * `selfinstruct:allowedModelEndpoints`: a run naming another server fails in "Prepare run" before any
 * request, and none carrying the key reaches that server. A run above the concurrency caps fails the
 * same way, and a model URL with credentials in it is refused without printing them. And the paths
 * whose grants were once missing work: a price table under `prices/` read by "Prepare run" and "Save
 * iteration", and a failed run recorded with its real cause and its pool given back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRICE_TABLE_PREFIX } from '../../functions/shared/keys.ts';
import { runLocal } from '../../infra/cli/run.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { type StandIn, startOpenAIStandIn } from '../support/model-servers.ts';

const KEY = 'sk-test-endpoint-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-endpoints-'));
let stack: LocalStack;
/** The server the operator allows, and one it does not. */
let allowed: StandIn;
let other: StandIn;

// Within this deployment's cap of 100 calls in flight: 10 Map items × 10 (the default 20 would be refused).
const small = { target: 1000, maxIterations: 1, promptsPerIteration: 2, chunkSize: 10, callConcurrency: 10 };
const carryingKey = (server: StandIn) =>
  server.requests.filter((request) => request.headers.authorization === `Bearer ${KEY}`);

beforeAll(async () => {
  allowed = await startOpenAIStandIn({ apiKey: KEY });
  other = await startOpenAIStandIn({ apiKey: KEY });
  process.env.SELFINSTRUCT_API_KEY = KEY;
  stack = await LocalStack.start({
    dataDir: path.join(work, 'data'),
    fresh: true,
    context: {
      'selfinstruct:allowedModelEndpoints': [allowed.url],
      'selfinstruct:maxModelCallsInFlight': 100,
    },
  });
}, 60_000);

afterAll(async () => {
  await stack.close();
  await allowed.close();
  await other.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the model API key', () => {
  it('goes to an allowed endpoint', async () => {
    const result = await stack.execute({ ...small, pool: 'ok', model: `openai-compatible:m@${allowed.url}` });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(carryingKey(allowed).length).toBeGreaterThan(0);
  });

  it('never reaches a server outside the allowed list: the run fails in "Prepare run", before any request', async () => {
    allowed.reset();
    other.reset();

    const result = await stack.execute({ ...small, pool: 'away', model: `openai-compatible:m@${other.url}` });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('ModelEndpointNotAllowed');
    expect(result.cause).toContain(`Model endpoint ${other.url} is not allowed`);
    expect(result.cause).toContain('selfinstruct:allowedModelEndpoints');
    expect(result.cause).toContain('SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS');
    expect(other.requests).toEqual([]);
    expect(allowed.requests).toEqual([]);
    const entered = result.events.flatMap((event) =>
      event.type === 'StateEntered' ? [event.state.name] : [],
    );
    // The execution fails at the stage; the execution-end rule's Record failure marks the run.
    expect(entered).toEqual(['Start run', 'Prepare run']);
    expect(result.deliveries.map((delivery) => delivery.error)).toEqual([undefined]);
    expect(await stack.pool.getRun(result.executionName)).toMatchObject({ status: 'FAILED' });
  });

  it('is not sent to a fallback of a replay outside the allowed list either', async () => {
    other.reset();

    const result = await stack.execute({
      ...small,
      pool: 'away',
      model: `replay:some-run+openai-compatible:m@${other.url}`,
    });

    expect(result.error).toBe('ModelEndpointNotAllowed');
    expect(other.requests).toEqual([]);
  });
});

describe("the operator's caps", () => {
  it('refuse a run whose mapConcurrency × callConcurrency is above maxModelCallsInFlight', async () => {
    const result = await stack.execute({ ...small, pool: 'caps', mapConcurrency: 20, callConcurrency: 8 });

    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(
      /20 × 8 = 160 .* cap of 100 \(CDK context selfinstruct:maxModelCallsInFlight\)/,
    );
  });

  it('refuse the default callConcurrency when 10 Map items × 20 is above the cap of 100', async () => {
    const { callConcurrency: _, ...defaults } = small;
    const result = await stack.execute({ ...defaults, pool: 'caps' });

    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(
      /10 × 20 = 200 .* cap of 100 \(CDK context selfinstruct:maxModelCallsInFlight\)/,
    );
  });

  it('refuse a Map concurrency above the 40 items an inline Map runs at once', async () => {
    const result = await stack.execute({ ...small, pool: 'caps', mapConcurrency: 41, callConcurrency: 1 });

    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(/mapConcurrency: an inline Map state runs at most 40 items at once/);
  });
});

describe('a model URL with credentials', () => {
  it('is refused by the CLI before anything starts, without printing the password', async () => {
    const lines: string[] = [];
    const run = runLocal(
      {
        model: `openai-compatible:m@https://me:hunter2@${new URL(allowed.url).host}/v1`,
        dataDir: path.join(work, 'cli-data'),
        out: path.join(work, 'out'),
      },
      (line) => lines.push(line),
    );

    await expect(run).rejects.toThrow(/model: the model URL carries credentials/);
    await expect(run).rejects.not.toThrow(/hunter2/);
    // Nothing started: the only line is the progress view's first phase, and no line shows the password.
    expect(lines).toEqual([expect.stringMatching(/checking the run input$/)]);
  });

  it('is refused by "Prepare run" when a run is started with it, and neither stored nor echoed', async () => {
    const result = await stack.execute({
      ...small,
      pool: 'creds',
      model: `openai-compatible:m@http://me:hunter2@${new URL(allowed.url).host}/v1`,
    });

    expect(result.error).toBe('RunInputInvalid');
    expect(result.cause).toMatch(/carries credentials/);
    expect(result.cause).not.toContain('hunter2');
    expect(JSON.stringify(await stack.pool.getRun(result.executionName))).not.toContain('hunter2');
  });
});

describe('the paths whose grants were once missing', () => {
  it('a price table under prices/ prices the run (read by "Prepare run" for the budget, by "Save iteration" for the cost)', async () => {
    const key = `${PRICE_TABLE_PREFIX}offline-at-a-price.json`;
    await stack.objects.put(
      key,
      JSON.stringify({ models: { offline: { inputPer1M: 1000, outputPer1M: 1000 } } }),
    );

    const result = await stack.execute({ ...small, pool: 'priced', priceTableKey: key, maxCostUsd: 1000 });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const run = await stack.pool.getRun(result.executionName);
    const { inputTokens = 0, outputTokens = 0 } = run?.usage ?? {};
    expect(run?.cost?.modelUsd).toBeCloseTo(((inputTokens + outputTokens) * 1000) / 1e6, 10);
    expect(inputTokens).toBeGreaterThan(0);
  });

  it('a failed run is marked FAILED with its real cause by "Record failure", which gives its pool back', async () => {
    // The model refuses the first call: the run fails in "Generate instructions", after it took the pool.
    allowed.reset();
    allowed.enqueue({ status: 400, message: 'this model does not take that parameter' });
    const model = `openai-compatible:m@${allowed.url}`;

    const failed = await stack.execute({ ...small, pool: 'given-back', model }, { retryIntervalMs: 10 });

    expect(failed.status).toBe('FAILED');
    expect(failed.error).toBe('ModelRequestFailed');
    const run = await stack.pool.getRun(failed.executionName);
    expect(run).toMatchObject({ status: 'FAILED', error: 'ModelRequestFailed', pool: 'given-back' });
    expect(run?.cause).toMatch(/HTTP 400: this model does not take that parameter/);
    const next = await stack.execute({ ...small, pool: 'given-back' });
    expect(next.status, next.cause).toBe('SUCCEEDED');
  });
});
