import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { verbNoun, verbNouns } from '../../functions/shared/engine/verb-noun.ts';
import { NotFound } from '../../functions/shared/errors.ts';
import { fromJsonLines, toJsonLines } from '../../functions/shared/json-lines.ts';
import { exportKeys, poolKeys, runKeys } from '../../functions/shared/keys.ts';
import { METHODS, RESPONSE_STYLES } from '../../functions/shared/methods.ts';
import type { RunRecord } from '../../functions/shared/ports.ts';
import type {
  GateRecord,
  IterationDiversity,
  IterationRecord,
  TaskLine,
} from '../../functions/shared/records.ts';
import type { SeedTask } from '../../functions/shared/schemas.ts';
import { histogram, lengthDistribution, niceBinWidth } from '../../infra/cli/report/histograms.ts';
import {
  CHART_IDS,
  chartIdsOf,
  escapeHtml,
  inlineScript,
  jsonForScript,
  renderReport,
} from '../../infra/cli/report/html.ts';
import { buildReport, reportKeys } from '../../infra/cli/report/report.ts';
import { ReportStats } from '../../infra/cli/report/schema.ts';
import {
  computeStats,
  countWords,
  nearDuplicateExamples,
  type ReportInput,
  verbNounStats,
  WITHHELD,
} from '../../infra/cli/report/stats.ts';
import { reportLocal } from '../../infra/cli/report.ts';
import { MemoryObjects, MemoryPool, runSummary } from './fakes.ts';

const SEEDS = [
  { instruction: 'Write a poem about cats' },
  { instruction: 'Summarize the article in one sentence.' },
  { instruction: 'Translate the sentence into French.' },
];

const usage = (calls: number, inputTokens: number, outputTokens: number) => ({
  calls,
  inputTokens,
  outputTokens,
  estimated: false,
});

const RUN: RunRecord = {
  runId: 'run-a',
  pool: 'demo',
  status: 'SUCCEEDED',
  startedAt: '2026-01-01T00:00:00.000Z',
  endedAt: '2026-01-01T00:01:00.000Z',
  stopReason: 'iteration cap reached',
  config: { profile: 'default', model: 'bedrock:demo', rougeThreshold: 0.7, target: 10, maxIterations: 2 },
  cost: { modelUsd: 0.03, awsUsd: 0.01, totalUsd: 0.04 },
  iterations: {
    '1': {
      counts: { generated: 4, accepted: 2, complete: 1 },
      usage: { 'generate-instructions': usage(1, 100, 50), 'generate-instances': usage(2, 200, 150) },
      tokensEstimated: false,
      cost: { modelUsd: 0.02, awsUsd: 0.005, totalUsd: 0.025, modelUsdByStage: {}, modelUnpriced: false },
    },
    '2': {
      counts: { generated: 2, accepted: 2, complete: 2 },
      usage: { 'generate-instructions': usage(1, 120, 60) },
      tokensEstimated: false,
      cost: { modelUsd: 0.01, awsUsd: 0.005, totalUsd: 0.015, modelUsdByStage: {}, modelUnpriced: false },
    },
  },
};

const decision = (instruction: string, fields: Partial<GateRecord> = {}): GateRecord => ({
  instruction,
  raw: instruction,
  status: 'accepted',
  reason: null,
  max_similarity: null,
  most_similar: null,
  avg_similarity_score: null,
  ...fields,
});

const task = (
  id: string,
  instruction: string,
  iteration: number,
  instances: TaskLine['instances'],
): TaskLine => ({
  id,
  name: id,
  instruction,
  instances,
  is_classification: false,
  source: 'machine',
  run_id: 'run-a',
  iteration,
});

/** Two iterations: 6 candidates, 2 rejected (a filter, ROUGE-L), 4 accepted, 1 dropped at instances. */
function smallInput(): ReportInput {
  return {
    run: RUN,
    seeds: SEEDS,
    poolSizeAfter: 6,
    instanceRejections: { t2: 'no-valid-instances' },
    gate: [
      {
        iteration: 1,
        decisions: [
          decision('Write a poem about cats today', {
            id: 't1',
            max_similarity: 10 / 11,
            most_similar: { 'Write a poem about cats': 10 / 11, 'Summarize the article in one sentence.': 0 },
          }),
          decision('Plan a trip to Rome for three days.', { id: 't2', max_similarity: 0.05 }),
          decision('Hi.', { status: 'rejected', reason: 'too-short' }),
          decision('Write a poem about the cats', {
            status: 'rejected',
            reason: 'rouge',
            max_similarity: 0.8,
            most_similar: { 'Write a poem about cats today': 0.8, a: 0.1, b: 0.2, c: 0.05 },
          }),
        ],
      },
      {
        iteration: 2,
        decisions: [
          decision('Describe your ideal vacation.', { id: 't3', max_similarity: 0.25 }),
          decision('What is the capital of France?', { id: 't4', max_similarity: 0.7 }),
        ],
      },
    ],
    tasks: [
      task('t1', 'Write a poem about cats today', 1, [{ input: '', output: 'Cats purr all day long' }]),
      task('t3', 'Describe your ideal vacation.', 2, [
        { input: 'beach or mountains', output: 'A quiet beach.' },
        { input: '', output: 'Mountains with snow and a small cabin by the lake' },
      ]),
      task('t4', 'What is the capital of France?', 2, [{ input: '', output: 'Paris' }]),
      { ...task('old', 'Plan a garden.', 1, [{ input: '', output: 'x' }]), run_id: 'an-earlier-run' },
    ],
  };
}

describe('histograms', () => {
  it('puts a value on an inner edge in the bin it opens and 1 in the last bin', () => {
    const { edges, counts } = histogram([0, 0.05, 0.1, 0.69, 0.7, 0.3, 0.999, 1], 0, 1, 10);
    expect(edges).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(counts).toEqual([2, 1, 0, 1, 0, 0, 1, 1, 0, 2]);
  });

  it('picks a bin width of 1, 2 or 5 times a power of ten, with at most 20 bins', () => {
    expect(niceBinWidth(0)).toBe(1);
    expect(niceBinWidth(19)).toBe(1);
    expect(niceBinWidth(20)).toBe(2);
    expect(niceBinWidth(99)).toBe(5);
    expect(niceBinWidth(150)).toBe(10);
  });

  it('counts words between whitespace and summarizes lengths', () => {
    expect(countWords('  Write a\tpoem\n about cats ')).toBe(5);
    expect(countWords('   ')).toBe(0);
    const lengths = lengthDistribution([1, 2, 2, 7]);
    expect(lengths).toMatchObject({ count: 4, median: 2, mean: 3, max: 7 });
    expect(lengths.histogram.counts).toEqual([0, 1, 2, 0, 0, 0, 0, 1]);
    expect(lengthDistribution([]).mean).toBeNull();
  });
});

describe('verb–noun structure', () => {
  it.each([
    ['Write a poem about the ocean.', 'write', 'poem'],
    ['Generate three ideas for a birthday party.', 'generate', 'idea'],
    ['Tell me a joke about programmers.', 'tell', 'joke'],
    ['Suggest some names for a new coffee shop.', 'suggest', 'name'],
    ['Describe your ideal vacation.', 'describe', 'vacation'],
    ['Given three side lengths, classify the triangle as equilateral or not.', 'classify', 'triangle'],
    ['Flatten the nested JSON object.', 'flatten', 'object'],
    ['Please write essays about cities.', 'write', 'essay'],
  ])('finds the root verb and its object in "%s"', (instruction, verb, noun) => {
    expect(verbNoun(instruction)).toEqual({ verb, noun });
  });

  it.each([
    'What is the capital of France?',
    'Is the following statement true or false?',
    'Explain why the sky is blue.',
    'In this task, you need to write a poem.',
    'You are given a list of numbers.',
  ])('finds no verb–noun structure in "%s"', (instruction) => {
    expect(verbNoun(instruction)).toBeUndefined();
  });

  it('keeps the top verbs, each with its top 4 nouns, and counts instructions without structure', () => {
    const stats = verbNounStats(
      [
        'Write a poem.',
        'Write a story.',
        'Write a poem about dogs.',
        'Write a letter.',
        'Write an essay.',
        'Write a song.',
        'Tell me a joke.',
        'What is love?',
      ]
        .map((instruction) => [instruction, verbNoun(instruction)] as const)
        .map(([instruction, pair], i) => ({
          id: `t${i}`,
          instruction,
          instances: [],
          root_verb: pair?.verb ?? null,
          direct_object: pair?.noun ?? null,
        })),
    );
    expect(stats).toMatchObject({ instructions: 8, withStructure: 7, withoutStructure: 1 });
    expect(stats.verbs.map((v) => [v.verb, v.count])).toEqual([
      ['write', 6],
      ['tell', 1],
    ]);
    expect(stats.verbs[0]?.nouns).toHaveLength(4);
    expect(stats.verbs[0]?.nouns[0]).toEqual({ noun: 'poem', count: 2 });
  });

  it('counts the structure each task was exported with (found when it completed)', () => {
    const stats = verbNounStats([
      // Whatever the tagger would say now, the stored structure counts.
      { root_verb: 'pen', direct_object: 'verse' }, // 'Compose a haiku.'
      { root_verb: null, direct_object: null }, // 'Write a poem.'
    ]);
    expect(stats).toMatchObject({ instructions: 2, withStructure: 1, withoutStructure: 1 });
    expect(stats.verbs.map((v) => [v.verb, v.nouns])).toEqual([['pen', [{ noun: 'verse', count: 1 }]]]);
  });

  it('finds the same structures when many instructions are tagged at once as one by one', () => {
    const seeds = fromJsonLines<SeedTask>(readFileSync('seeds/seed_tasks.jsonl', 'utf8')).map(
      (task) => task.instruction,
    );
    const instructions = [
      ...seeds,
      'Here is a list of numbers. Sort it in ascending order',
      'no punctuation at the end',
      'What is love?',
      '',
      'Given a table, find the largest value.',
    ];
    const batch = verbNouns(instructions);
    expect(batch).toHaveLength(instructions.length);
    expect(batch).toEqual(instructions.map((instruction) => verbNoun(instruction)));
    expect(batch.filter(Boolean).length).toBeGreaterThan(seeds.length / 2);
  }, 60_000);
});

describe('computeStats', () => {
  it('follows the pool growth of each iteration from the gate decisions and the export', () => {
    const stats = computeStats(smallInput());
    expect(
      stats.iterations.map(({ iteration, generated, rejected, accepted, added, poolSize }) => ({
        iteration,
        generated,
        rejected,
        accepted,
        added,
        poolSize,
      })),
    ).toEqual([
      {
        iteration: 1,
        generated: 4,
        rejected: { 'too-short': 1, rouge: 1 },
        accepted: 2,
        added: 1,
        poolSize: 4,
      },
      { iteration: 2, generated: 2, rejected: {}, accepted: 2, added: 2, poolSize: 6 },
    ]);
    expect(stats.iterations[0]?.droppedAtInstances).toEqual({ 'no-valid-instances': 1 });
    expect(stats.iterations[0]?.acceptanceRate).toBe(0.5);
    expect(stats.iterations[0]?.yieldRate).toBe(0.25);
    expect(stats.totals).toMatchObject({
      seeds: 3,
      generated: 6,
      accepted: 4,
      added: 3,
      poolSizeBefore: 3,
      poolSizeAfter: 6,
      instances: 4,
    });
  });

  it('ignores exported tasks of other runs of the pool', () => {
    const stats = computeStats(smallInput());
    expect(stats.lengths.instructions.count).toBe(3);
    expect(stats.samples.added.map((t) => t.instruction)).not.toContain('Plan a garden.');
  });

  it('bins the highest ROUGE-L to the seeds and to the pool by 0.1', () => {
    const { similarity } = computeStats(smallInput());
    // "Write a poem about cats today" vs the seed "Write a poem about cats": LCS 5, P 5/6, R 1, F 10/11;
    // "What is the capital of France?" shares "the" with "Translate the sentence into French.": F 2/11;
    // "Describe your ideal vacation." shares nothing.
    expect(similarity.toSeeds.histogram.counts).toEqual([1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(similarity.toSeeds.max).toBeCloseTo(10 / 11, 12);
    // The gate's scores: 10/11, 0.25 and 0.7 (kept: the gate rejects above it) added, 0.8 rejected.
    expect(similarity.toPool.added.histogram.counts).toEqual([0, 0, 1, 0, 0, 0, 0, 1, 0, 1]);
    expect(similarity.toPool.rejected.histogram.counts).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  });

  it('measures lengths of instructions, non-empty inputs and outputs in words', () => {
    const { lengths } = computeStats(smallInput());
    expect(lengths.instructions).toMatchObject({ count: 3, median: 6, max: 6 });
    expect(lengths.inputs).toMatchObject({ count: 1, median: 3 });
    expect(lengths.emptyInputs).toBe(3);
    expect(lengths.outputs).toMatchObject({ count: 4, max: 10 });
    expect(lengths.outputs.histogram.counts.reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('sums tokens and cost per iteration and per 1,000 added tasks', () => {
    const stats = computeStats(smallInput());
    expect(stats.iterations[0]?.usage).toEqual({ calls: 3, inputTokens: 300, outputTokens: 200 });
    expect(stats.iterations[0]?.per1000Added?.tokens).toBe(500_000);
    expect(stats.iterations[0]?.per1000Added?.usd).toBeCloseTo(25, 10);
    expect(stats.totals.usage).toEqual({ calls: 4, inputTokens: 420, outputTokens: 260 });
    expect(stats.totals.cost).toEqual({ modelUsd: 0.03, awsUsd: 0.01, totalUsd: 0.04, modelUnpriced: false });
    expect(stats.totals.per1000Added?.usd).toBeCloseTo(40 / 3, 10);
  });

  it('samples the same tasks for the same seed, with reasons, stages and the 3 nearest neighbours', () => {
    const first = computeStats(smallInput());
    const again = computeStats(smallInput());
    expect(again.samples).toEqual(first.samples);
    expect(first.samples.added).toHaveLength(3);
    expect(first.samples.rejected.map((t) => [t.reason, t.stage])).toEqual([
      ['no-valid-instances', 'instances'],
      ['rouge', 'gate'],
      ['too-short', 'filter'],
    ]);
    const rouge = first.samples.rejected.find((t) => t.reason === 'rouge');
    expect(rouge?.neighbours).toEqual([
      { instruction: 'Write a poem about cats today', score: 0.8 },
      { instruction: 'b', score: 0.2 },
      { instruction: 'a', score: 0.1 },
    ]);
    const small = computeStats({ ...smallInput(), sample: { accepted: 1, rejected: 2 } });
    expect(small.samples.added).toHaveLength(1);
    expect(small.samples.rejected).toHaveLength(2);
  });

  it('produces what the stats.json schema describes', () => {
    expect(ReportStats.safeParse(computeStats(smallInput())).success).toBe(true);
  });
});

const diversity = (newPairShare: number, newClusterShare: number | null): IterationDiversity => ({
  added: 10,
  distinctPairs: 10,
  newPairs: Math.round(newPairShare * 10),
  newPairShare,
  rougeHistogram: [0, 0, 0, 5, 5, 0, 0, 0, 0, 0],
  meanMaxRouge: 0.4,
  newClusterShare,
  meanNearestCosine: newClusterShare === null ? null : 0.8,
  acceptanceRate: 0.5,
});

const nearDuplicate = (instruction: string, nearest: string, cosine: number) =>
  decision(instruction, {
    status: 'rejected',
    reason: 'near-duplicate',
    max_similarity: 0.3,
    nearest_instruction: nearest,
    nearest_cosine: cosine,
  });

/**
 * `smallInput` with every quality check on: a judge, a lexicon that flagged two instructions and two
 * instances, three near-duplicates, and a plateau rule (new pairs below 20% once) that stopped the run
 * after iteration 2.
 */
function checkedInput(): ReportInput {
  const input = smallInput();
  const [first, second] = input.gate;
  first?.decisions.push(
    decision('Write a damn poem about cats.', { status: 'rejected', reason: 'unsafe-profanity' }),
  );
  second?.decisions.push(
    decision('Describe how to hurt someone.', { status: 'rejected', reason: 'unsafe-violence' }),
    nearDuplicate('Describe your perfect holiday.', 'Describe your ideal vacation.', 0.95),
    nearDuplicate('Tell me the capital of France.', 'What is the capital of France?', 0.97),
    nearDuplicate('Write a short poem about cats', 'Write a poem about cats', 0.92),
  );
  const records = RUN.iterations as Record<string, IterationRecord>;
  return {
    ...input,
    run: {
      ...RUN,
      stopReason:
        'diversity plateau: tasks with a new verb–noun pair below 20% of those added for 1 iterations in a row',
      config: {
        ...RUN.config,
        judgeModel: 'offline',
        minQuality: 2,
        embeddingModel: 'offline',
        embeddingThreshold: 0.9,
        safetyScreen: 'lexicon',
        diversityPlateau: { metric: 'new-pairs', floor: 0.2, iterations: 1 },
      },
      iterations: {
        '1': {
          ...(records['1'] as IterationRecord),
          counts: {
            generated: 5,
            accepted: 2,
            complete: 1,
            'unsafe-profanity': 1,
            'instance-unsafe-profanity': 2,
          },
          diversity: diversity(0.5, 0.4),
        },
        '2': { ...(records['2'] as IterationRecord), diversity: diversity(0.1, 0.3) },
      },
    },
    tasks: input.tasks.map((task) =>
      task.id === 't1'
        ? {
            ...task,
            quality_score: 4,
            instruction_valid: true,
            input_appropriate: true,
            output_correct: true,
          }
        : task.id === 't3'
          ? {
              ...task,
              quality_score: 2,
              instruction_valid: true,
              input_appropriate: false,
              output_correct: false,
            }
          : task,
    ),
    judgedRejected: [
      {
        iteration: 2,
        quality_score: 1,
        instruction_valid: false,
        input_appropriate: false,
        output_correct: false,
      },
    ],
  };
}

describe("the quality section's numbers", () => {
  it('counts what the safety screen flagged by category, instructions and instances apart', () => {
    const stats = computeStats(checkedInput());
    expect(stats.iterations.map((it) => it.safety)).toEqual([
      { instructions: { profanity: 1 }, instances: { profanity: 2 } },
      { instructions: { violence: 1 }, instances: {} },
    ]);
    expect(stats.totals.safety).toEqual({
      instructions: { profanity: 1, violence: 1 },
      instances: { profanity: 2 },
    });
    expect(stats.run.safetyScreen).toBe('lexicon');
  });

  it('keeps the flagged instructions out of the samples', () => {
    const stats = computeStats(checkedInput());
    const unsafe = stats.samples.rejected.filter((task) => task.reason?.startsWith('unsafe-'));
    expect(unsafe.map((task) => [task.reason, task.instruction])).toEqual([
      ['unsafe-profanity', WITHHELD],
      ['unsafe-violence', WITHHELD],
    ]);
    expect(JSON.stringify(stats)).not.toMatch(/damn|hurt someone/);
  });

  it('counts the near-duplicates and shows them with their nearest instruction and cosine', () => {
    const { nearDuplicates, totals } = computeStats(checkedInput());
    expect(nearDuplicates).toEqual({
      embeddingModel: 'offline',
      threshold: 0.9,
      count: 3,
      examples: [
        {
          iteration: 2,
          instruction: 'Tell me the capital of France.',
          nearestInstruction: 'What is the capital of France?',
          cosine: 0.97,
        },
        {
          iteration: 2,
          instruction: 'Describe your perfect holiday.',
          nearestInstruction: 'Describe your ideal vacation.',
          cosine: 0.95,
        },
        {
          iteration: 2,
          instruction: 'Write a short poem about cats',
          nearestInstruction: 'Write a poem about cats',
          cosine: 0.92,
        },
      ],
    });
    expect(totals.rejected['near-duplicate']).toBe(3);
  });

  it("draws the near-duplicate examples with the samples' seed: the same for the same seed", () => {
    const input = checkedInput();
    const first = nearDuplicateExamples(input.gate, 'seed-a', 2);
    expect(first.count).toBe(3);
    expect(first.examples).toHaveLength(2);
    expect(nearDuplicateExamples(input.gate, 'seed-a', 2)).toEqual(first);
    const drawn = new Set(
      ['seed-b', 'seed-c', 'seed-d', 'seed-e'].map((seed) =>
        JSON.stringify(nearDuplicateExamples(input.gate, seed, 2).examples.map((e) => e.cosine)),
      ),
    );
    expect(drawn.size).toBeGreaterThan(1);
  });

  it('marks the iterations below the plateau floor and the one the run stopped after', () => {
    const { plateau, iterations } = computeStats(checkedInput());
    expect(plateau).toEqual({
      metric: 'new-pairs',
      figure: 'newPairShare',
      floor: 0.2,
      iterations: 1,
      belowFloor: [2],
      stoppedAt: 2,
    });
    expect(iterations.map((it) => it.diversity?.newPairShare)).toEqual([0.5, 0.1]);
  });

  it('watches new clusters when the rule says so, and knows a run that stopped for another reason', () => {
    const input = checkedInput();
    const run = {
      ...input.run,
      stopReason: 'iteration cap reached',
      config: {
        ...input.run.config,
        diversityPlateau: { metric: 'new-clusters', floor: 0.35, iterations: 2 },
      },
    };
    expect(computeStats({ ...input, run }).plateau).toEqual({
      metric: 'new-clusters',
      figure: 'newClusterShare',
      floor: 0.35,
      iterations: 2,
      belowFloor: [2],
      stoppedAt: null,
    });
  });

  it('has no numbers for the checks a run turned off, or had before they existed', () => {
    const input = checkedInput();
    const off = {
      ...input.run,
      config: {
        ...input.run.config,
        judgeModel: 'none',
        embeddingModel: 'none',
        safetyScreen: 'none',
        diversityPlateau: false,
      },
    };
    for (const run of [off, RUN]) {
      const stats = computeStats({ ...input, run });
      expect(stats.run).toMatchObject({ judgeModel: null, embeddingModel: null, safetyScreen: null });
      expect(stats.totals.quality).toBeNull();
      expect(stats.totals.safety).toBeNull();
      expect(stats.iterations.map((it) => [it.quality, it.safety])).toEqual([
        [null, null],
        [null, null],
      ]);
      expect(stats.nearDuplicates).toBeNull();
      expect(stats.plateau).toBeNull();
    }
  });

  it('produces what the stats.json schema describes', () => {
    expect(ReportStats.safeParse(computeStats(checkedInput())).success).toBe(true);
  });
});

describe('batch mode in the report', () => {
  /** Iteration 1 ran a Bedrock job that failed 2 records; iteration 2 ran on demand, below the minimum. */
  function batchInput(): ReportInput {
    const input = smallInput();
    const iterations = input.run.iterations ?? {};
    const batch: Record<string, IterationRecord['batch']> = {
      '1': {
        provider: 'bedrock',
        jobId: 'arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/abc',
        planned: 120,
        sent: 120,
        served: 118,
        failed: 2,
        madeOnDemand: 2,
        belowMinimum: false,
      },
      '2': {
        provider: 'bedrock',
        planned: 40,
        sent: 0,
        served: 0,
        failed: 0,
        madeOnDemand: 0,
        belowMinimum: true,
        reason: '40 instance calls, below the bedrock minimum of 100 records per batch job: made on demand',
      },
    };
    const withBatch = Object.fromEntries(
      Object.entries(iterations).map(([n, record]) => [n, { ...record, batch: batch[n] }]),
    );
    return { ...input, run: { ...input.run, iterations: withBatch } };
  }

  it("keeps each iteration's batch figures in stats.json, as the run record has them", () => {
    const stats = computeStats(batchInput());
    expect(stats.iterations.map((it) => [it.batch?.sent, it.batch?.served, it.batch?.madeOnDemand])).toEqual([
      [120, 118, 2],
      [0, 0, 0],
    ]);
    expect(stats.iterations[1]?.batch).toMatchObject({ belowMinimum: true, reason: expect.any(String) });
    expect(ReportStats.safeParse(stats).success).toBe(true);
  });

  it('tabulates the records sent, served, failed and made on demand, and an iteration run on demand', () => {
    const rows = tableRows(renderReport(computeStats(batchInput())), 'batch');
    expect(rows).toEqual([
      [
        '1',
        'bedrock job arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/abc',
        '120',
        '120',
        '118',
        '2',
        '2',
      ],
      [
        '2',
        'on demand: 40 instance calls, below the bedrock minimum of 100 records per batch job: made on demand',
        '40',
        '0',
        '0',
        '0',
        '0',
      ],
    ]);
  });

  it('has no batch table for a run without batch mode', () => {
    const stats = computeStats(smallInput());
    expect(stats.iterations.map((it) => it.batch)).toEqual([null, null]);
    expect(renderReport(stats)).not.toContain('id="batch"');
  });
});

describe('the quality section of the page', () => {
  it("sets the judge's audit answers next to the paper's Table 2", () => {
    const stats = computeStats(checkedInput());
    // Scored: t1 (yes to all), t3 (valid only) and the low-quality one (no to all).
    expect(stats.totals.quality).toMatchObject({ judged: 4, instructionValid: 2 / 3, fullyValid: 1 / 3 });
    const audit = tableRows(renderReport(stats), 'audit');
    expect(audit).toEqual([
      ['Does the instruction describe a valid task?', '66.7%', '92.0%'],
      ['Is the input appropriate for the instruction?', '33.3%', '79.0%'],
      ['Is the output a correct and acceptable response to the instruction and input?', '33.3%', '58.0%'],
      ['All fields are valid', '33.3%', '54.0%'],
    ]);
  });

  it('tabulates the scores per iteration and for the run', () => {
    const rows = tableRows(renderReport(computeStats(checkedInput())), 'quality-scores-table');
    expect(rows).toEqual([
      ['1', '1', '0', '0', '0', '1', '0', '0', '4.00', '100.0%'],
      ['2', '3', '1', '1', '0', '0', '0', '1', '1.50', '0.0%'],
      ['run', '4', '1', '1', '0', '1', '0', '1', '2.33', '33.3%'],
    ]);
  });

  it('lists the safety flags by category and the near-duplicates with their nearest instruction', () => {
    const html = renderReport(computeStats(checkedInput()));
    expect(tableRows(html, 'safety')).toEqual([
      ['profanity', '1', '2'],
      ['violence', '1', '0'],
    ]);
    expect(tableRows(html, 'near-duplicates')).toEqual([
      ['1', '2', 'Tell me the capital of France.', 'What is the capital of France?', '0.970'],
      ['2', '2', 'Describe your perfect holiday.', 'Describe your ideal vacation.', '0.950'],
      ['3', '2', 'Write a short poem about cats', 'Write a poem about cats', '0.920'],
    ]);
    expect(html).not.toMatch(/damn|hurt someone/);
    expect(html).toContain('The run stopped after iteration 2 for a plateau');
  });

  it('draws every chart when every check ran', () => {
    const stats = computeStats(checkedInput());
    expect(chartIdsOf(stats)).toEqual([...CHART_IDS]);
    const html = renderReport(stats);
    for (const id of CHART_IDS) expect(html).toContain(`<div class="plot" id="${id}"`);
  });

  it('says "not measured" in one line for each check the run did not have, with no empty chart', () => {
    const input = checkedInput();
    const config = { ...input.run.config, judgeModel: 'none', embeddingModel: 'none', safetyScreen: 'none' };
    const stats = computeStats({ ...input, run: { ...input.run, config } });
    const html = renderReport(stats);
    expect(chartIdsOf(stats)).not.toContain('quality-scores');
    expect(html).not.toContain('id="quality-scores"');
    expect(html).not.toContain('id="audit"');
    // Once in the summary, once in the section (and the new clusters of the diversity chart).
    const lines = (option: string) => html.split(`not measured: ${option} none`).length - 1;
    expect([lines('judgeModel'), lines('safetyScreen'), lines('embeddingModel')]).toEqual([2, 2, 3]);
    // Without embeddings the diversity chart still shows the new verb–noun pairs.
    expect(chartIdsOf(stats)).toContain('diversity-curves');
  });
});

/** The cells' text of each body row of the table `id` (tags dropped, entities decoded). */
function tableRows(html: string, id: string): string[][] {
  const start = html.indexOf(`<table class="data${id === 'safety' ? ' narrow' : ''}" id="${id}">`);
  expect(start, id).toBeGreaterThanOrEqual(0);
  const body = html.slice(html.indexOf('<tbody>', start), html.indexOf('</tbody>', start));
  return [...body.matchAll(/<tr[^>]*>([\s\S]*?)<\/tr>/g)].map((row) =>
    [...(row[1] ?? '').matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((cell) =>
      (cell[1] ?? '')
        .replace(/<[^>]+>/g, '')
        .replace(/&#39;/g, "'")
        .replace(/&amp;/g, '&')
        .trim(),
    ),
  );
}

const PAYLOAD = 'Write a poem </script><script>window.__pwned = 1</script> about <b>cats</b> & "dogs"';

function craftedStats() {
  const input = smallInput();
  const [first] = input.gate;
  first?.decisions.push(
    decision(PAYLOAD, {
      status: 'rejected',
      reason: '<img src=x onerror="window.__pwned = 2">',
      max_similarity: 0.9,
      most_similar: { '<script>window.__pwned = 3</script>': 0.9 },
    }),
  );
  return computeStats(input);
}

/** The text of the page's element `<script …attributes>…</script>`. */
function scriptText(html: string, attributes: string): string {
  const open = `<script${attributes}>`;
  const start = html.indexOf(open);
  expect(start).toBeGreaterThanOrEqual(0);
  return html.slice(start + open.length, html.indexOf('</script>', start));
}

describe('the method the page names', () => {
  const page = (config: Record<string, unknown>) =>
    renderReport(computeStats({ ...smallInput(), run: { ...RUN, config: { ...RUN.config, ...config } } }));

  it('is Self-Instruct for a run without a method, in the registry’s words for the others', () => {
    expect(computeStats(smallInput()).run).toMatchObject({
      method: 'self-instruct',
      responseStyle: 'direct',
    });
    expect(page({})).toContain('the method follows Wang et al., 2022, <i>Self-Instruct</i>, section 3.</p>');
    for (const method of ['evol', 'backtranslate'] as const) {
      const { name, paper } = METHODS[method];
      expect(page({ method })).toContain(
        `the method follows ${paper.cite}, <i>${name}</i>, in the loop of Wang et al., 2022, <i>Self-Instruct</i>, section 3.</p>`,
      );
    }
    expect(page({ method: 'evol', responseStyle: 'explained' })).toContain(
      `section 3; the responses follow Mukherjee et al., 2023, <i>${escapeHtml(RESPONSE_STYLES.explained?.name ?? '')}</i>.</p>`,
    );
  });
});

describe('escaping untrusted text', () => {
  it('escapes HTML special characters', () => {
    expect(escapeHtml(`<script>alert("x")</script> & 'y'`)).toBe(
      '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;',
    );
  });

  it('keeps a JSON island closed whatever its strings hold', () => {
    const value = { text: '</script><script>alert(1)</script> <!-- & \u2028\u2029' };
    const island = jsonForScript(value);
    expect(island).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(island)).toEqual(value);
  });

  it('escapes "</script" in inlined code and refuses "<!--"', () => {
    expect(inlineScript('const s = "</script>";\r\n')).toBe('const s = "<\\/script>";\n');
    expect(() => inlineScript('x = 1 <!--y')).toThrow();
  });

  it('shows an instruction with a <script> as text, in the tables and in the JSON island', () => {
    const stats = craftedStats();
    const html = renderReport(stats);
    // Only the page's own three scripts: the JSON island, ECharts and the chart code.
    expect(html.match(/<script/gi)).toHaveLength(3);
    expect(html).not.toContain('<img src=x');
    expect(html).toContain(escapeHtml(PAYLOAD));
    expect(html).toContain('&lt;img src=x onerror=&quot;window.__pwned = 2&quot;&gt;');
    const island = scriptText(html, ' type="application/json" id="report-data"');
    expect(island).not.toContain('</script');
    expect(JSON.parse(island)).toEqual(stats);
  });

  it('allows exactly its two inline scripts in the Content-Security-Policy, and no requests', () => {
    const html = renderReport(computeStats(smallInput()));
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] ?? '';
    expect(csp).toContain("default-src 'none'");
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? '');
    expect(scripts).toHaveLength(2);
    for (const code of scripts) {
      expect(csp).toContain(`'sha256-${createHash('sha256').update(code).digest('base64')}'`);
    }
  });

  it('has a chart element for every chart it draws', () => {
    const stats = computeStats(smallInput());
    const html = renderReport(stats);
    for (const id of chartIdsOf(stats)) expect(html).toContain(`<div class="plot" id="${id}"`);
  });
});

describe('buildReport', () => {
  async function stores() {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    const input = smallInput();
    await pool.putRun(RUN);
    for (const { iteration, decisions } of input.gate) {
      await objects.put(runKeys('run-a', iteration).gate, toJsonLines(decisions));
    }
    await objects.put(poolKeys('demo').seeds, toJsonLines(SEEDS));
    return { objects, pool, input };
  }

  it('reads the run from the stores and writes report.html and stats.json next to the export', async () => {
    const { objects, pool, input } = await stores();
    await objects.put(exportKeys('run-a').tasks, toJsonLines(input.tasks));
    await objects.put(
      exportKeys('run-a').summary,
      JSON.stringify(runSummary({ runId: 'run-a', pool: 'demo', poolSize: 6 })),
    );

    const report = await buildReport(objects, pool, 'run-a');

    expect(report.keys).toEqual({
      html: 'exports/run-a/report.html',
      stats: 'exports/run-a/stats.json',
    });
    expect(await objects.getText(reportKeys('run-a').html)).toBe(report.html);
    expect(JSON.parse((await objects.getText(reportKeys('run-a').stats)) ?? '')).toEqual(report.stats);
    expect(report.stats.totals).toMatchObject({ generated: 6, added: 3, poolSizeAfter: 6, seeds: 3 });
  });

  it('takes the tasks from the pool when the run has no export', async () => {
    const { objects, pool } = await stores();
    await pool.putTaskIfAbsent({
      id: 't1',
      pool: 'demo',
      instruction: 'Write a poem about cats today',
      source: 'machine',
      status: 'complete',
      instances: [{ input: '', output: 'Purr.' }],
      runId: 'run-a',
      iteration: 1,
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    const { stats } = await buildReport(objects, pool, 'run-a');
    expect(stats.totals.added).toBe(1);
    expect(stats.iterations[0]?.droppedAtInstances).toEqual({ 'no-valid-instances': 1 });
    // Stored without its verb–noun structure: the report finds it.
    expect(stats.verbNoun.verbs).toEqual([{ verb: 'write', count: 1, nouns: [{ noun: 'poem', count: 1 }] }]);
  });

  it('fails with NotFound for a run that does not exist', async () => {
    const { objects, pool } = await stores();
    await expect(buildReport(objects, pool, 'run-nope')).rejects.toThrow(NotFound);
    await expect(buildReport(objects, pool, 'run-nope')).rejects.toThrow(/Run run-nope does not exist/);
  });

  it('says so when the local data folder does not exist', async () => {
    await expect(reportLocal('run-a', { out: 'out', dataDir: '/nonexistent/selfinstruct' })).rejects.toThrow(
      /No local data/,
    );
  });
});
