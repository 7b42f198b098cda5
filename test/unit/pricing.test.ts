import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  addAwsUsage,
  gateShardsFor,
  type IterationShape,
  iterationAwsUsage,
  iterationSeconds,
  iterationShapeFromCounts,
  runAwsUsage,
  runOnceAwsUsage,
  type UsageAssumptions,
} from '../../functions/shared/pricing/aws-usage.ts';
import {
  type AwsUsage,
  awsCost,
  modelCost,
  type PriceTable,
  PriceTableInvalid,
  parsePriceTable,
  shippedPrices,
  summarizeCost,
  withOverride,
} from '../../functions/shared/pricing/pricing.ts';

const shippedJson = () =>
  JSON.parse(readFileSync(new URL('../../functions/shared/pricing/prices.json', import.meta.url), 'utf8'));

/** A table with round prices, so the expected figures can be worked out by hand. */
const table: PriceTable = parsePriceTable({
  version: 'test',
  date: '2026-11-24',
  source: ['https://example.com/prices'],
  currency: 'USD',
  models: {
    'test:model': { inputPer1M: 2, outputPer1M: 8 },
    'test:other': { inputPer1M: 1, outputPer1M: 1 },
  },
  aws: {
    region: 'us-east-1',
    stepFunctionsPerStateTransition: 0.00002,
    lambdaPerGbSecond: 0.00001,
    lambdaPerRequest: 0.0000002,
    dynamodbPerWriteRequestUnit: 0.000001,
    dynamodbPerReadRequestUnit: 0.0000002,
    s3PerPutRequest: 0.000005,
    s3PerGetRequest: 0.0000004,
  },
});

describe('the shipped price table', () => {
  it('validates, in USD, with its sources and the date it was checked', () => {
    const prices = parsePriceTable(shippedJson());

    expect(prices.currency).toBe('USD');
    expect(prices.source.length).toBeGreaterThan(0);
    expect(prices.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(shippedPrices()).toEqual(prices);
  });

  it('prices every model the issue names, by the id a user writes, and the offline model at 0', () => {
    const ids = [
      'bedrock:amazon.nova-micro-v1:0',
      'bedrock:amazon.nova-lite-v1:0',
      'bedrock:amazon.nova-pro-v1:0',
      'bedrock:anthropic.claude-3-haiku-20240307-v1:0',
      'bedrock:anthropic.claude-3-5-haiku-20241022-v1:0',
      'bedrock:meta.llama3-1-8b-instruct-v1:0',
      'bedrock:meta.llama3-1-70b-instruct-v1:0',
      'openai:gpt-4o-mini',
      'openai:gpt-4o',
      'openai:gpt-4.1-mini',
      'openai:gpt-4.1-nano',
    ];
    const prices = shippedPrices();

    for (const id of ids) {
      expect(prices.models[id]?.inputPer1M, id).toBeGreaterThan(0);
      expect(prices.models[id]?.outputPer1M, id).toBeGreaterThan(0);
    }
    expect(prices.models.offline).toMatchObject({ inputPer1M: 0, outputPer1M: 0 });
  });

  it('rejects a table with a negative price or a missing AWS price, naming the field', () => {
    const bad = shippedJson();
    bad.models['openai:gpt-4o'].outputPer1M = -1;
    delete bad.aws.s3PerGetRequest;

    expect(() => parsePriceTable(bad)).toThrow(PriceTableInvalid);
    expect(() => parsePriceTable(bad)).toThrow(/models\.openai:gpt-4o\.outputPer1M/);
    expect(() => parsePriceTable(bad)).toThrow(/aws\.s3PerGetRequest/);
  });
});

describe('withOverride', () => {
  it('replaces a model entry whole, adds new models and AWS prices one by one, and records both versions', () => {
    const merged = withOverride(table, {
      version: 'mine',
      source: ['https://example.com/my-bill'],
      models: {
        'test:model': { inputPer1M: 3, outputPer1M: 9, notes: 'negotiated' },
        'bedrock:my.custom-model': { inputPer1M: 0.5, outputPer1M: 1.5 },
      },
      aws: { lambdaPerGbSecond: 0.00002 },
    });

    expect(merged.version).toBe('test+mine');
    expect(merged.models['test:model']).toEqual({ inputPer1M: 3, outputPer1M: 9, notes: 'negotiated' });
    expect(merged.models['test:other']).toEqual(table.models['test:other']);
    expect(merged.models['bedrock:my.custom-model']).toEqual({ inputPer1M: 0.5, outputPer1M: 1.5 });
    expect(merged.aws.lambdaPerGbSecond).toBe(0.00002);
    expect(merged.aws.s3PerPutRequest).toBe(table.aws.s3PerPutRequest);
    expect(merged.source).toEqual(['https://example.com/prices', 'https://example.com/my-bill']);
  });

  it('rejects an override with an unknown field or a bad price, and leaves the table as it was', () => {
    expect(() => withOverride(table, { modles: {} })).toThrow(PriceTableInvalid);
    expect(() => withOverride(table, { models: { x: { inputPer1M: 'cheap', outputPer1M: 1 } } })).toThrow(
      /models\.x\.inputPer1M/,
    );
    expect(table.models['test:model']).toEqual({ inputPer1M: 2, outputPer1M: 8 });
  });
});

describe('modelCost', () => {
  it('prices input and output tokens per million', () => {
    // 250,000 × $2/M + 125,000 × $8/M = $0.50 + $1.00
    const cost = modelCost(table, 'test:model', { inputTokens: 250_000, outputTokens: 125_000 });

    expect(cost.priced).toBe(true);
    expect(cost.usd).toBeCloseTo(1.5, 12);
    expect(cost.priced && [cost.inputUsd, cost.outputUsd]).toEqual([0.5, 1]);
  });

  it('flags a model the table does not know instead of pricing it at 0', () => {
    const cost = modelCost(table, 'bedrock:unknown.model-v1:0', { inputTokens: 1000, outputTokens: 1000 });

    expect(cost.priced).toBe(false);
    expect(cost.usd).toBeUndefined();
    expect(!cost.priced && cost.flag).toBe('unknown-model');
    expect(!cost.priced && cost.message).toMatch(/bedrock:unknown\.model-v1:0.*--prices/);
  });

  it('does not guess a cross-region profile from its base model', () => {
    expect(modelCost(table, 'us.test:model', { inputTokens: 1, outputTokens: 1 }).priced).toBe(false);
  });

  it('charges nothing for the offline model and replays, which call no provider', () => {
    for (const id of ['offline', 'offline:noisy', 'replay:run-1']) {
      expect(modelCost(table, id, { inputTokens: 1e6, outputTokens: 1e6 })).toMatchObject({
        priced: true,
        usd: 0,
      });
    }
  });
});

describe('awsCost', () => {
  it('prices each item of the usage and sums them', () => {
    const usage: AwsUsage = {
      stateTransitions: 1000,
      lambdaGbSeconds: 500,
      lambdaRequests: 10_000,
      lambdaEphemeralGbSeconds: 1000,
      dynamodbWriteUnits: 2000,
      dynamodbReadUnits: 5000,
      s3Puts: 100,
      s3Gets: 1000,
    };

    const cost = awsCost(table, usage);

    expect(cost.breakdown.stateTransitions).toEqual({ quantity: 1000, unitUsd: 0.00002, usd: 0.02 });
    expect(cost.breakdown.lambdaGbSeconds.usd).toBeCloseTo(0.005, 12);
    expect(cost.breakdown.lambdaRequests.usd).toBeCloseTo(0.002, 12);
    // A table without an ephemeral storage price gets us-east-1's, $0.0000000309 per GB-second.
    expect(cost.breakdown.lambdaEphemeralGbSeconds.usd).toBeCloseTo(0.0000309, 12);
    expect(cost.breakdown.dynamodbWriteUnits.usd).toBeCloseTo(0.002, 12);
    expect(cost.breakdown.dynamodbReadUnits.usd).toBeCloseTo(0.001, 12);
    expect(cost.breakdown.s3Puts.usd).toBeCloseTo(0.0005, 12);
    expect(cost.breakdown.s3Gets.usd).toBeCloseTo(0.0004, 12);
    expect(cost.usd).toBeCloseTo(0.0309 + 0.0000309, 12);
  });
});

describe('summarizeCost', () => {
  const aws = awsCost(table, { ...addAwsUsage(), stateTransitions: 25_000 }); // $0.50

  it('adds model and AWS costs and divides them over the accepted tasks', () => {
    const summary = summarizeCost({
      models: [modelCost(table, 'test:model', { inputTokens: 250_000, outputTokens: 125_000 })], // $1.50
      aws,
      acceptedTasks: 400,
      estimated: true,
    });

    expect(summary.modelUsd).toBeCloseTo(1.5, 12);
    expect(summary.awsUsd).toBeCloseTo(0.5, 12);
    expect(summary.totalUsd).toBeCloseTo(2, 12);
    expect(summary.perAcceptedTaskUsd).toBeCloseTo(0.005, 12);
    expect(summary.per1000TasksUsd).toBeCloseTo(5, 12);
    expect(summary.awsShare).toBeCloseTo(0.25, 12);
    expect(summary.estimated).toBe(true);
    expect(summary.unpriced).toEqual([]);
  });

  it('leaves the totals unknown, not low, when a model could not be priced', () => {
    const summary = summarizeCost({
      models: [
        modelCost(table, 'test:model', { inputTokens: 1000, outputTokens: 0 }),
        modelCost(table, 'mystery', { inputTokens: 1000, outputTokens: 0 }),
      ],
      aws,
      acceptedTasks: 400,
      estimated: false,
    });

    expect(summary.modelUsd).toBeUndefined();
    expect(summary.totalUsd).toBeUndefined();
    expect(summary.perAcceptedTaskUsd).toBeUndefined();
    expect(summary.awsUsd).toBeCloseTo(0.5, 12);
    expect(summary.unpriced).toHaveLength(1);
    expect(summary.unpriced[0]).toMatch(/mystery/);
  });

  it('has no per-task figure for a run that accepted nothing', () => {
    const summary = summarizeCost({ models: [], aws, acceptedTasks: 0, estimated: false });

    expect(summary.totalUsd).toBeCloseTo(0.5, 12);
    expect(summary.perAcceptedTaskUsd).toBeUndefined();
  });
});

describe('the AWS usage model', () => {
  const assumptions: UsageAssumptions = {
    callConcurrency: 8,
    firstTokenSeconds: 1,
    outputTokensPerSecond: 100,
    invocationOverheadSeconds: 0.5,
    gatePairsPerSecond: 1_000_000,
    gateShardCpuRatio: 2,
    gateDecisionCpuSecondsPerPair: 0.00001,
    instructionCpuSecondsPerCall: 0.01,
    instructionCpuSecondsPerPoolInstruction: 0.001,
    chunkCpuSecondsPerCall: 0.05,
    fullCpuMemoryMb: 2048,
    dynamodbWriteSeconds: 0.016,
    exportSecondsPerItem: 0.001,
    pendingTaskWriteUnits: 1,
    finishedTaskWriteUnits: 2,
    runItemWriteUnits: 2,
    taskItemKb: 2,
  };
  const iteration: IterationShape = {
    instructionCalls: 16,
    instructionBatches: 1,
    instructionOutputTokens: 16 * 400,
    candidates: 100,
    acceptedInstructions: 80,
    mapItems: 2,
    mapCalls: 80,
    mapOutputTokens: 80 * 200,
    poolInstructions: 200,
  };

  it('counts a hand-worked iteration', () => {
    const usage = iterationAwsUsage(iteration, assumptions);

    // 9 states of the loop (the gate's choice, batch mode's choice and the instructions Map included) + 2 per batch and per
    // Map item (each a Distributed Map's child execution: its start and its one state).
    expect(usage.stateTransitions).toBe(15);
    // Plan and Collect instructions, Filter, Save iteration + 1 per batch and per Map item.
    expect(usage.lambdaRequests).toBe(7);
    // Generate: 0.5 GB × (Plan 0.5 + Collect 0.5 + the batch: 0.5 + 2 waves × (1 + 400/100) + CPU
    // (16 × 0.01 + 200 × 0.001) × 2048/512) = 6.47
    // Filter: 3008/1024 GB × (0.5 + 100 × 200 / 1e6 + 5 × 0.016) = 2.9375 × 0.6 = 1.7625
    // Map items: 2 × 0.5 GB × (0.5 + 5 waves × (1 + 200/100) + CPU 40 × 0.05 × 4) = 23.5
    // Save: 1 GB × 0.5
    expect(usage.lambdaGbSeconds).toBeCloseTo(6.47 + 1.7625 + 23.5 + 0.5, 9);
    // 80 pending puts × 1 + 80 finished puts × 2 + run item 2 + pool META 1
    expect(usage.dynamodbWriteUnits).toBe(243);
    // 80 items batch-read at 0.5 + the pool count 0.5
    expect(usage.dynamodbReadUnits).toBe(40.5);
    // the batch: seeds, index; Collect: its result, candidates, raw; Filter: candidates, index + 2 chunk files
    expect(usage.s3Gets).toBe(9);
    // the batch's candidates, raw, result; Collect's candidates, raw; gate, index + 2 chunk files + 2
    // chunk raw files + snapshot, index copy
    expect(usage.s3Puts).toBe(13);
  });

  it('counts the gate in shards of an iteration past shardGateAbove: its steps, Maps and shard Lambdas', () => {
    const config = { shardGateAbove: 200, gateShards: 4 };
    expect([199, 200, 1_000_000].map((pool) => gateShardsFor(config, pool))).toEqual([0, 4, 4]);
    expect(gateShardsFor({ gateShards: 4 }, 1_000_000)).toBe(0); // a run from before the sharded gate
    expect(gateShardsFor({ shardGateAbove: 1, gateShards: 4 }, 3)).toBe(3); // one range per instruction

    const inProcess = iterationAwsUsage(iteration, assumptions);
    const sharded = iterationAwsUsage({ ...iteration, gateShards: 4 }, assumptions);

    // Plan, Map, Decide, Map again, Merge instead of Filter (+4), each shard an item of both Maps, each
    // item a child execution: its start and its state (+16).
    expect(sharded.stateTransitions).toBe(inProcess.stateTransitions + 4 + 2 * 2 * 4);
    expect(sharded.lambdaRequests).toBe(inProcess.lambdaRequests + 2 + 2 * 4);
    // Filter: 3008/1024 GB × (3 × 0.5 + decisions 2 × 100² × 1e-5 + 5 × 0.016) = 2.9375 × 1.78
    // Shards: 4 × 1769/1024 GB × (2 × 0.5 + 100 × 200 / 4 × 2 / 1,000,000 pairs/s × 2048/1769)
    //   = 4 × (1769/1024 + 0.01 × 2) (the in-process Filter's 1.7625 no longer billed)
    const filter = 2.9375 * 1.78;
    const shards = 4 * (1769 / 1024 + 0.02);
    expect(sharded.lambdaGbSeconds).toBeCloseTo(inProcess.lambdaGbSeconds - 1.7625 + filter + shards, 9);
    // The loop waits on the Filter's steps and one shard's two (the shards run at once).
    const seconds = iterationSeconds({ ...iteration, gateShards: 4 }, assumptions);
    expect(seconds.filterSteps).toBeCloseTo(1.78, 12);
    expect(seconds.gateShard).toBeCloseTo(1 + (0.01 * 2048) / 1769, 12);
    expect(seconds.filter).toBeCloseTo(seconds.filterSteps + seconds.gateShard, 12);
    // GETs: 2 per Filter step more, survivors each shard, highest ×2 and scores, sizes ×2 per shard.
    expect(sharded.s3Gets).toBe(inProcess.s3Gets + 5 + 6 * 4);
    // PUTs: survivors, sizes, and each shard's highest and scores.
    expect(sharded.s3Puts).toBe(inProcess.s3Puts + 2 + 2 * 4);
    expect(sharded.dynamodbWriteUnits).toBe(inProcess.dynamodbWriteUnits);
    // Priced: the AWS cost of the iteration includes the shards' transitions, invocations and GB-seconds.
    const { aws } = table;
    expect(awsCost(table, sharded).usd - awsCost(table, inProcess).usd).toBeCloseTo(
      20 * aws.stepFunctionsPerStateTransition +
        10 * aws.lambdaPerRequest +
        (filter + shards - 1.7625) * aws.lambdaPerGbSecond +
        10 * aws.s3PerPutRequest +
        29 * aws.s3PerGetRequest,
      12,
    );
  });

  it('writes no raw file for chunks that make no model call', () => {
    const usage = iterationAwsUsage({ ...iteration, mapCalls: 0, mapOutputTokens: 0 }, assumptions);

    expect(usage.s3Puts).toBe(11);
    expect(usage.lambdaGbSeconds).toBeCloseTo(6.47 + 1.7625 + 2 * 0.5 * 0.5 + 0.5, 9);
  });

  it('counts what a run does once, seeding a new pool, and adds it to its iterations', () => {
    const once = runOnceAwsUsage({ seedTasksAdded: 10, poolItemsAtExport: 100 }, assumptions);

    expect(once.stateTransitions).toBe(4);
    expect(once.lambdaRequests).toBe(2);
    // Prepare 1 GB × 0.5 + Export 2 GB × (0.5 + 100 × 0.001)
    expect(once.lambdaGbSeconds).toBeCloseTo(0.5 + 1.2, 9);
    // Export's 1,536 MB of /tmp, 1 GB above the free 512 MB, × 0.6 s
    expect(once.lambdaEphemeralGbSeconds).toBeCloseTo(0.6, 9);
    // run item twice + 10 seeds × 2 + META 1
    expect(once.dynamodbWriteUnits).toBe(25);
    // pool count 0.5 + run 0.5 + Query of 100 × 2 KB = 50 × 4 KB, eventually consistent
    expect(once.dynamodbReadUnits).toBe(26);
    expect([once.s3Gets, once.s3Puts]).toEqual([3, 6]);

    const run = runAwsUsage(
      [iteration, iteration],
      { seedTasksAdded: 10, poolItemsAtExport: 100 },
      assumptions,
    );
    expect(run.stateTransitions).toBe(4 + 2 * 15);
    expect(run.dynamodbWriteUnits).toBe(25 + 2 * 243);
  });

  it('reads the shape of a finished iteration from its counts and usage per model step', () => {
    const shape = iterationShapeFromCounts(
      { prompts: 16, generated: 100, accepted: 80, complete: 70, rouge: 20 },
      {
        'generate-instructions': { calls: 16, outputTokens: 6400 },
        classify: { calls: 80, outputTokens: 160 },
        'generate-instances': { calls: 80, outputTokens: 15_840 },
      },
      { chunkSize: 40, instructionBatchSize: 20, poolInstructions: 200 },
    );

    expect(shape).toEqual({ ...iteration, mapCalls: 160 });
  });

  it('charges nothing for seeding a pool that already has its seeds', () => {
    const once = runOnceAwsUsage({ seedTasksAdded: 0, poolItemsAtExport: 100 }, assumptions);

    expect(once.dynamodbWriteUnits).toBe(4);
    expect([once.s3Gets, once.s3Puts]).toEqual([2, 4]);
  });
});
