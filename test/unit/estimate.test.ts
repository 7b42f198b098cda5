import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JUDGE_PARAMETERS, renderJudgeRequest } from '../../functions/generate-instances/judge.ts';
import { renderInstancesRequest } from '../../functions/generate-instances/prompt.ts';
import { maxPolls } from '../../functions/shared/batch/jobs.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import { estimateTokens } from '../../functions/shared/models/usage.ts';
import { DEFAULT_USAGE_ASSUMPTIONS, iterationAwsUsage } from '../../functions/shared/pricing/aws-usage.ts';
import { shippedPrices } from '../../functions/shared/pricing/pricing.ts';
import { PROFILES } from '../../functions/shared/profiles.ts';
import { SeedTask } from '../../functions/shared/schemas.ts';
import {
  acceptanceAt,
  DEFAULT_ACCEPTANCE_CURVE,
  fitAcceptanceCurve,
} from '../../infra/cli/estimate/acceptance.ts';
import { calibrate, gateOutcomes, PROFILE_DEFAULTS } from '../../infra/cli/estimate/calibrate.ts';
import { measurePrompts } from '../../infra/cli/estimate/prompts.ts';
import {
  type Estimate,
  type EstimateInput,
  estimateRun,
  fmtInt,
  TokenQuotaTooLow,
} from '../../infra/cli/estimate/simulate.ts';
import {
  batchLooks,
  DEFAULT_TIME_ASSUMPTIONS,
  fitLatency,
  itemsAtOnce,
  iterationTime,
  projectWallTime,
} from '../../infra/cli/estimate/timing.ts';
import { estimateCommand } from '../../infra/cli/estimate.ts';
import { runSummary } from './fakes.ts';

const seeds = parseRecords(
  readFileSync('seeds/seed_tasks.jsonl', 'utf8'),
  SeedTask,
  'seeds/seed_tasks.jsonl',
);
const prices = shippedPrices();
const nova = 'bedrock:amazon.nova-micro-v1:0';

const estimate = (
  target: number,
  profile: 'self-instruct' | 'alpaca' | 'default' = 'default',
  model = nova,
  more: Partial<EstimateInput> = {},
) => estimateRun({ model, target, profile, prices, seeds, ...more });

describe('estimateRun', () => {
  it('costs more, in model and AWS, the more tasks the run adds', () => {
    const [small, medium, large] = [300, 3_000, 30_000].map((target) => estimate(target));

    for (const [a, b] of [
      [small, medium],
      [medium, large],
    ] as [Estimate, Estimate][]) {
      expect(b.run.instructionCalls).toBeGreaterThan(a.run.instructionCalls);
      expect(b.tokens.input).toBeGreaterThan(a.tokens.input);
      expect(b.summary.modelUsd).toBeGreaterThan(a.summary.modelUsd ?? Infinity);
      expect(b.summary.awsUsd).toBeGreaterThan(a.summary.awsUsd);
      expect(b.summary.totalUsd).toBeGreaterThan(a.summary.totalUsd ?? Infinity);
    }
  });

  it('plans a run that reaches the target, and says when a given iteration cap does not', () => {
    const reached = estimate(5_000);
    const capped = estimateRun({
      model: nova,
      target: 5_000,
      profile: 'default',
      prices,
      seeds,
      maxIterations: 2,
    });

    expect(reached.run.reachesTarget).toBe(true);
    expect(reached.run.addedTasks).toBeGreaterThanOrEqual(5_000);
    expect(reached.summary.perAcceptedTaskUsd).toBeCloseTo(
      (reached.summary.totalUsd ?? 0) / reached.run.addedTasks,
      12,
    );
    expect(capped.run.iterations).toBe(2);
    expect(capped.run.reachesTarget).toBe(false);
    expect(capped.run.addedTasks).toBeLessThan(5_000);
  });

  it('follows the profile: the paper classifies every task, Alpaca makes no instance call', () => {
    const paper = estimate(3_000, 'self-instruct');
    const alpaca = estimate(3_000, 'alpaca');
    const ours = estimate(3_000, 'default');
    const calls = (e: Estimate, stage: string) => e.stages.find((s) => s.stage === stage)?.calls ?? -1;

    expect(calls(paper, 'classify')).toBeCloseTo(paper.run.acceptedInstructions, 6);
    expect(calls(alpaca, 'classify')).toBe(0);
    expect(calls(alpaca, 'generate-instances')).toBe(0);
    expect(calls(ours, 'classify')).toBe(0);
    expect(calls(ours, 'generate-instances')).toBeGreaterThan(0);
    expect(new Set([paper, alpaca, ours].map((e) => e.summary.totalUsd)).size).toBe(3);
    expect(new Set([paper, alpaca, ours].map((e) => e.promptTokens['generate-instructions'])).size).toBe(3);
  });

  it('prices a dearer model higher for the same run, and the AWS part the same at the same reply times', () => {
    // The reply times and the quota are the model's own (they set what Lambda bills): the same for both here.
    const sameLatency = { firstTokenSeconds: 0.6, outputTokensPerSecond: 80 };
    const at = (model: string) =>
      estimate(3_000, 'default', model, {
        assumptions: sameLatency,
        timeAssumptions: { requestsPerMinute: 2_000 },
      });
    const cheap = at(nova);
    const dear = at('openai:gpt-4o');

    expect(dear.tokens).toEqual(cheap.tokens);
    expect(dear.summary.modelUsd).toBeGreaterThan(cheap.summary.modelUsd ?? Infinity);
    expect(dear.summary.awsUsd).toBeCloseTo(cheap.summary.awsUsd, 12);
    expect(dear.summary.awsShare).toBeLessThan(cheap.summary.awsShare ?? 0);
  });

  it('counts a verdict per task by default, none with judgeModel none, at the judge model its price', () => {
    const judged = estimate(3_000);
    const unjudged = estimateRun({
      model: nova,
      judgeModel: 'none',
      target: 3_000,
      profile: 'default',
      prices,
      seeds,
    });
    const dearJudge = estimateRun({
      model: nova,
      judgeModel: 'openai:gpt-4o',
      target: 3_000,
      profile: 'default',
      prices,
      seeds,
    });
    const judgeOf = (e: Estimate) => e.stages.find((st) => st.stage === 'judge');

    expect(judgeOf(judged)?.calls).toBeCloseTo(
      judged.run.acceptedInstructions * PROFILE_DEFAULTS.default.judgeCallsPerAccepted,
      9,
    );
    expect(judgeOf(judged)?.inputTokensPerCall).toBeGreaterThan(0);
    expect(judgeOf(unjudged)?.calls).toBe(0);
    expect(unjudged.summary.modelUsd).toBeLessThan(judged.summary.modelUsd ?? 0);
    expect(unjudged.summary.awsUsd).toBeLessThan(judged.summary.awsUsd);
    // The judge's tokens at gpt-4o's price, the rest at Nova Micro's.
    expect(judgeOf(dearJudge)?.cost.modelId).toBe('openai:gpt-4o');
    expect(dearJudge.tokens).toEqual(judged.tokens);
    expect(dearJudge.summary.modelUsd).toBeCloseTo(
      (unjudged.summary.modelUsd ?? 0) + (judgeOf(dearJudge)?.cost.usd ?? 0),
      12,
    );
  });

  it('counts a teacher call per instance kept for explained responses, at the teacher’s price, none for direct', () => {
    const direct = estimate(3_000);
    const explained = estimateRun({
      model: nova,
      responseStyle: 'explained',
      teacherModel: 'openai:gpt-4o',
      target: 3_000,
      profile: 'default',
      prices,
      seeds,
    });
    const teachOf = (e: Estimate) => e.stages.find((st) => st.stage === 'teach');
    const d = PROFILE_DEFAULTS.default;

    expect(teachOf(direct)).toBeUndefined();
    expect(teachOf(explained)?.calls).toBeCloseTo(
      explained.run.acceptedInstructions * d.completeShare * d.instancesPerTask,
      9,
    );
    expect(teachOf(explained)?.inputTokensPerCall).toBeGreaterThan(0);
    expect(teachOf(explained)?.outputTokensPerCall).toBe(d.outputTokensPerCall.teach);
    expect(teachOf(explained)?.cost.modelId).toBe('openai:gpt-4o');
    // The model cost grows by the teacher's calls and by the judge reading their longer replies.
    const judgeOf = (e: Estimate) => e.stages.find((st) => st.stage === 'judge');
    expect(explained.summary.modelUsd).toBeCloseTo(
      (direct.summary.modelUsd ?? 0) +
        (teachOf(explained)?.cost.usd ?? 0) +
        (judgeOf(explained)?.cost.usd ?? 0) -
        (judgeOf(direct)?.cost.usd ?? 0),
      12,
    );
    expect(explained.assumptions.join('\n')).toMatch(
      /Teacher \(explained responses\): openai:gpt-4o, one call per instance/,
    );
  });

  it('counts the judge of an explained run reading the teacher’s replies on every instance of a task', () => {
    const direct = estimate(3_000);
    const explained = estimate(3_000, 'default', nova, { responseStyle: 'explained' });
    const judgeOf = (e: Estimate) => e.stages.find((st) => st.stage === 'judge');
    const d = PROFILE_DEFAULTS.default;
    const perInstance = explained.promptTokens.judgeExplainedPerInstance ?? 0;

    // The teacher's replies (136 tokens) are longer than the seeds' direct outputs they replace.
    expect(perInstance).toBeGreaterThan(d.outputTokensPerCall.teach / 2);
    expect(perInstance).toBeLessThan(d.outputTokensPerCall.teach);
    expect(judgeOf(explained)?.inputTokensPerCall).toBeCloseTo(
      (judgeOf(direct)?.inputTokensPerCall ?? 0) + d.instancesPerTask * perInstance,
      9,
    );
    // An offline explained run recorded 599 input tokens per verdict (README, Explanation traces).
    expect(judgeOf(explained)?.inputTokensPerCall).toBeGreaterThan(540);
    expect(judgeOf(explained)?.calls).toBe(judgeOf(direct)?.calls);
    expect(judgeOf(explained)?.cost.usd).toBeGreaterThan(judgeOf(direct)?.cost.usd ?? Infinity);
    expect(direct.promptTokens.judgeExplainedPerInstance).toBeUndefined();
    expect(explained.assumptions.join('\n')).toMatch(
      /each explained output adding \d+ tokens over the direct one \(the teacher's 136 output tokens\) on 2\.35 instances per task/,
    );
  });

  it('prices the gate in shards, its steps, Maps and shard Lambdas, for the iterations past shardGateAbove', () => {
    const inProcess = estimate(3_000);
    const sharded = estimate(3_000, 'default', nova, { shardGateAbove: 1_000, gateShards: 8 });
    const [before, after] = [inProcess, sharded].map((e) => e.aws.usage);
    const n = sharded.run.shardedIterations;

    // The same run: only the iterations whose pool starts at 1,000 tasks or more gate in shards.
    expect(sharded.run.iterations).toBe(inProcess.run.iterations);
    expect(inProcess.run.shardedIterations).toBe(0);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(sharded.run.iterations);
    // Per sharded iteration: 5 states instead of Filter's one, and each of 8 shards an item of both Maps
    // (each a child execution: its start and its state).
    expect(after?.stateTransitions).toBe((before?.stateTransitions ?? 0) + n * (4 + 2 * 2 * 8));
    expect(after?.lambdaRequests).toBe((before?.lambdaRequests ?? 0) + n * (2 + 2 * 8));
    expect(after?.s3Puts).toBe((before?.s3Puts ?? 0) + n * (2 + 2 * 8));
    expect(after?.dynamodbWriteUnits).toBe(before?.dynamodbWriteUnits);
    expect(sharded.aws.usd).toBeGreaterThan(inProcess.aws.usd);
    expect(sharded.summary.awsShare).toBeGreaterThan(inProcess.summary.awsShare ?? 1);
    expect(sharded.modelCost.usd).toBe(inProcess.modelCost.usd);
    expect(sharded.assumptions.join('\n')).toMatch(
      new RegExp(
        `Gate in shards: from a pool of 1,000 tasks \\(shardGateAbove\\): ${n} iterations of ${sharded.run.iterations} \\(from iteration \\d+\\) gate in 8 shard Lambdas`,
      ),
    );
    expect(inProcess.assumptions.join('\n')).toMatch(
      /Gate in shards: from a pool of 1,000,000 tasks \(shardGateAbove\); no iteration starts at such a pool/,
    );
  });

  it('names the unpriced model when the judge is another model than the run’s', () => {
    const e = estimateRun({
      model: 'offline',
      judgeModel: 'bedrock:vendor.unpriced-v1:0',
      target: 300,
      profile: 'default',
      prices,
      seeds,
    });
    const assumptions = e.assumptions.join('\n');

    expect(e.modelCost.priced).toBe(false);
    expect(assumptions).toMatch(/Model price: offline at \$0 \/ \$0 per million/);
    expect(assumptions).toMatch(/Model price: NONE for bedrock:vendor\.unpriced-v1:0/);
  });

  it('flags a model without a price and leaves the totals unknown', () => {
    const e = estimate(300, 'default', 'bedrock:vendor.unpriced-v1:0');

    expect(e.modelCost.priced).toBe(false);
    expect(e.summary.modelUsd).toBeUndefined();
    expect(e.summary.totalUsd).toBeUndefined();
    expect(e.summary.awsUsd).toBeGreaterThan(0);
    expect(e.assumptions.join('\n')).toMatch(/NONE for bedrock:vendor\.unpriced-v1:0/);
  });
});

describe('measurePrompts', () => {
  it('counts a rendered prompt as ceil(characters / 4) of its system and user messages', () => {
    const task = seeds.find((t) => !t.is_classification) as SeedTask;
    const request = renderInstancesRequest('default', task.instruction, false);

    const measured = measurePrompts('default', [task]);

    expect(measured['generate-instances']).toBe(estimateTokens((request.system ?? '') + request.prompt));
    expect(measured.classificationShare).toBe(0);
  });

  it('renders the judge of explained responses with each output replaced by a reply of the teacher’s length', () => {
    const task = {
      ...(seeds.find((t) => !t.is_classification) as SeedTask),
      instances: [
        { input: '', output: 'Short.' },
        { input: 'x', output: 'Also short.' },
      ],
    };
    const tokens = (instances: SeedTask['instances']) => {
      const request = renderJudgeRequest(task.instruction, instances);
      return estimateTokens((request.system ?? '') + request.prompt);
    };
    const reply = 'x'.repeat(400); // 100 tokens
    const added = (tokens(task.instances.map((i) => ({ ...i, output: reply }))) - tokens(task.instances)) / 2;

    const measured = measurePrompts('default', [task], {
      explained: { outputTokens: 100, instancesPerTask: 3 },
    });

    expect(added).toBeGreaterThan(90);
    expect(measured.judgeExplainedPerInstance).toBe(added);
    expect(measured.judge).toBe(tokens(task.instances) + 3 * added);
    expect(measurePrompts('default', [task]).judge).toBe(tokens(task.instances));
  });

  it('shows the paper profile more demonstrations than Alpaca, and longer instructions cost more', () => {
    const long = seeds.map((t) => ({ ...t, instruction: `${t.instruction} ${t.instruction}` }));

    expect(measurePrompts('alpaca', seeds)['generate-instructions']).toBeGreaterThan(0);
    expect(measurePrompts('self-instruct', long).classify).toBeGreaterThan(
      measurePrompts('self-instruct', seeds).classify,
    );
  });
});

describe('calibrate', () => {
  const summary = {
    profile: 'default' as const,
    model: 'bedrock:amazon.nova-micro-v1:0',
    counts: { prompts: 10, generated: 100, accepted: 80, complete: 60 },
    usage: { calls: 90, inputTokens: 50_000, outputTokens: 10_000 },
    exportedTasks: 60,
    exportedRecords: 180,
  };

  it('reads the yields from a summary and scales the output tokens to its total', () => {
    const c = calibrate('default', [summary], undefined, 'test');
    const d = PROFILE_DEFAULTS.default.outputTokensPerCall;
    // 10 instruction calls and 80 instance calls produced 10,000 tokens.
    const scale = 10_000 / (10 * d['generate-instructions'] + 80 * d['generate-instances']);

    expect(c.candidatesPerCall).toBe(10);
    expect(c.acceptanceRate).toBe(0.8);
    expect(c.completeShare).toBe(0.75);
    expect(c.instanceCallsPerAccepted).toBe(1);
    expect(c.instancesPerTask).toBe(3);
    expect(c.outputTokensPerCall['generate-instances']).toBeCloseTo(d['generate-instances'] * scale, 9);
  });

  it('takes output tokens per step from call records when it has them', () => {
    const c = calibrate(
      'default',
      [summary],
      {
        'generate-instructions': { calls: 10, outputTokens: 3_000 },
        classify: { calls: 0, outputTokens: 0 },
        'generate-instances': { calls: 80, outputTokens: 7_000 },
        judge: { calls: 64, outputTokens: 2_560 },
        teach: { calls: 120, outputTokens: 18_000 },
      },
      'test',
    );

    expect(c.outputTokensPerCall).toEqual({
      'generate-instructions': 300,
      classify: 0,
      'generate-instances': 87.5,
      judge: 40,
      teach: 150,
    });
    expect(c.judgeCallsPerAccepted).toBe(64 / 80);
  });

  it("counts a judged summary's judge calls apart from the instance calls", () => {
    // 10 instruction calls, 80 instance calls and one verdict for each of the 60 complete and 4
    // low-quality tasks.
    const judged = {
      ...summary,
      config: { judgeModel: 'bedrock:amazon.nova-micro-v1:0' },
      counts: { ...summary.counts, 'low-quality': 4 },
      usage: { ...summary.usage, calls: 154 },
    };
    const c = calibrate('default', [judged], undefined, 'test');

    expect(c.instanceCallsPerAccepted).toBe(1);
    expect(c.judgeCallsPerAccepted).toBe(64 / 80);
  });

  it('assumes a verdict per task with valid instances when the runs had no judge', () => {
    const c = calibrate('default', [summary], undefined, 'test');

    expect(c.judgeCallsPerAccepted).toBe(c.completeShare);
  });

  it('refuses a run with nothing accepted', () => {
    expect(() =>
      calibrate(
        'default',
        [{ ...summary, counts: { prompts: 3, generated: 5, accepted: 0 } }],
        undefined,
        'x',
      ),
    ).toThrow(/no accepted instruction/);
  });
});

describe('selfinstruct estimate', () => {
  let dir: string;
  let stdout: string[];
  let stderr: string[];
  const run = (...args: string[]) =>
    estimateCommand({
      stdout: { write: (text: string) => stdout.push(text) },
      stderr: { write: (text: string) => stderr.push(text) },
    }).parseAsync(args, { from: 'user' });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'estimate-'));
    stdout = [];
    stderr = [];
  });
  afterEach(() => {
    process.exitCode = undefined;
  });

  it('prints the estimate as JSON', async () => {
    await run('--model', nova, '--target', '2000', '--profile', 'self-instruct', '--json');
    const e = JSON.parse(stdout.join('')) as Estimate;

    expect(e.profile).toBe('self-instruct');
    expect(e.target).toBe(2000);
    expect(e.run.addedTasks).toBeGreaterThanOrEqual(2000);
    expect(e.summary.totalUsd).toBeCloseTo((e.summary.modelUsd ?? 0) + e.summary.awsUsd, 12);
    expect(Object.keys(e.aws.breakdown)).toHaveLength(8);
    expect(e.assumptions.length).toBeGreaterThan(5);
  });

  it('takes the sharded gate’s settings as a run does', async () => {
    await run(
      '--model',
      nova,
      '--target',
      '2000',
      '--shard-gate-above',
      '500',
      '--gate-shards',
      '4',
      '--json',
    );
    const e = JSON.parse(stdout.join('')) as Estimate;

    expect(e.run.shardedIterations).toBeGreaterThan(0);
    expect(e.assumptions.join('\n')).toMatch(/from a pool of 500 tasks .* gate in 4 shard Lambdas/);
  });

  it("takes the model's quotas as flags, and carries them in its JSON", async () => {
    await run(
      ...['--model', nova, '--target', '500', '--json'],
      ...['--requests-per-minute', '1000', '--tokens-per-minute', '300000', '--tokens-per-day', '100000000'],
    );
    const e = JSON.parse(stdout.join('')) as Estimate;

    expect(e.time.assumptions).toMatchObject({
      requestsPerMinute: 1_000,
      tokensPerMinute: 300_000,
      tokensPerDay: 100_000_000,
    });
    expect(e.time.tokens?.tokensPerDay).toBe(100_000_000);
    expect(e.assumptions.join('\n')).toMatch(/Token quotas: 300,000 tokens\/min \(given\)/);
    expect(e.assumptions.join('\n')).toMatch(/Tokens per day: 100,000,000 \(given\)/);
  });

  it("names the token quota as the bottleneck when it binds, and prints the run's tokens", async () => {
    await run('--model', nova, '--target', '500', '--tokens-per-minute', '100000');
    const text = stdout.join('');

    expect(text).toMatch(
      /^Projected wall time \(deployed\): .*bottleneck: .*, limited by the model's quota of 100,000 tokens\/min \(input \+ output used\)$/m,
    );
    expect(text).toMatch(
      /^ {2}model tokens: [\d,]+ \(input \+ output of the run's model's on-demand calls\), [\d,]+ reserved at call starts \(input \+ maxTokens\); the token quota binds below [\d,]+ tokens\/min \([\d,]+ without the request quota\); quota 100,000 tokens\/min \(given\), 144,000,000 tokens\/day \(does not bind\)$/m,
    );
  });

  it('refuses a quota flag that is not a positive integer, naming it', async () => {
    for (const flag of ['--tokens-per-minute', '--tokens-per-day', '--requests-per-minute']) {
      for (const value of ['0', '-5', '1.5', 'lots']) {
        const errors: string[] = [];
        const command = estimateCommand({ stdout: { write: () => true }, stderr: { write: () => true } })
          .exitOverride()
          .configureOutput({ writeErr: (text) => errors.push(text) });

        await expect(
          command.parseAsync(['--model', nova, '--target', '10', flag, value], { from: 'user' }),
        ).rejects.toThrow(`${flag} must be a positive integer`);
        expect(errors.join('')).toBe(
          `error: option '${flag} <n>' argument '${value}' is invalid. ${flag} must be a positive integer\n`,
        );
      }
    }
    expect(stdout).toEqual([]);
  });

  it('prints a table with the per-task figures and the assumptions', async () => {
    await run('--model', nova, '--target', '500');
    const text = stdout.join('');

    expect(text).toMatch(/per 1,000 tasks\s+\$\d/);
    expect(text).toMatch(/% of the total\)/);
    expect(text).toMatch(/Assumptions\n {2}- Prices: table/);
  });

  it('prices a model from a prices file, and calibrates from a run summary', async () => {
    const pricesFile = join(dir, 'prices.json');
    writeFileSync(
      pricesFile,
      JSON.stringify({ models: { 'bedrock:my.model': { inputPer1M: 1, outputPer1M: 2 } } }),
    );
    const summaryFile = join(dir, 'summary.json');
    writeFileSync(
      summaryFile,
      JSON.stringify(
        runSummary({
          runId: 'run-1',
          profile: 'default',
          model: 'bedrock:my.model',
          counts: { prompts: 10, generated: 50, accepted: 25, complete: 20 },
          usage: { calls: 35, inputTokens: 9_000, outputTokens: 6_000 },
        }),
      ),
    );

    await run(
      '--model',
      'bedrock:my.model',
      '--target',
      '1000',
      '--prices',
      pricesFile,
      '--from-run',
      summaryFile,
      '--json',
    );
    const e = JSON.parse(stdout.join('')) as Estimate;

    expect(e.modelCost.priced).toBe(true);
    expect(e.prices.version).toMatch(/\+override$/);
    expect(e.calibration.candidatesPerCall).toBe(5);
    expect(e.calibration.acceptanceRate).toBe(0.5);
    expect(e.calibration.source).toMatch(/summary\.json/);
  });

  it('refuses a summary of another profile', async () => {
    const summaryFile = join(dir, 'summary.json');
    writeFileSync(
      summaryFile,
      JSON.stringify(
        runSummary({
          profile: 'alpaca',
          model: 'offline',
          counts: { prompts: 1, generated: 1, accepted: 1, complete: 1 },
          usage: { calls: 1, inputTokens: 1, outputTokens: 1 },
        }),
      ),
    );

    await expect(run('--model', nova, '--target', '100', '--from-run', summaryFile)).rejects.toThrow(
      /alpaca run/,
    );
  });

  it('exits with an error when the model has no price', async () => {
    await run('--model', 'bedrock:vendor.unpriced-v1:0', '--target', '100');
    await run('--model', 'bedrock:vendor.unpriced-v1:0', '--target', '100', '--json');
    const json = JSON.parse(stdout.slice(1).join('')) as Estimate;

    expect(stdout[0]).toMatch(/model\s+unknown/);
    expect(json.summary.totalUsd).toBeNull();
    expect(json.modelCost.priced).toBe(false);
    expect(stderr.join('')).toMatch(/No price for model "bedrock:vendor\.unpriced-v1:0"/);
    expect(process.exitCode).toBe(1);
  });
});

describe('acceptance that falls with the pool', () => {
  const callsPerTask = (e: Estimate) => e.run.instructionCalls / e.run.addedTasks;

  it('makes each added task cost more instruction calls the larger the target', () => {
    const [small, medium, large] = [1_000, 10_000, 30_000].map((target) => estimate(target)) as [
      Estimate,
      Estimate,
      Estimate,
    ];

    expect(callsPerTask(medium)).toBeGreaterThan(callsPerTask(small) * 1.5);
    expect(callsPerTask(large)).toBeGreaterThan(callsPerTask(medium) * 1.5);
    expect(large.summary.per1000TasksUsd).toBeGreaterThan(small.summary.per1000TasksUsd ?? Infinity);
    expect(large.run.acceptance.end).toBeLessThan(large.run.acceptance.start / 4);
    expect(large.run.acceptance.poolAtEnd).toBeGreaterThan(25_000);
  });

  it('is what makes the difference: a flat curve keeps the calls per task flat', () => {
    const flat = {
      ...PROFILE_DEFAULTS.default,
      acceptanceCurve: { ...DEFAULT_ACCEPTANCE_CURVE, rate: 0.5, maxRate: 0.5, exponent: 0 },
    };
    const [small, large] = [1_000, 30_000].map((target) =>
      estimate(target, 'default', nova, { calibration: flat }),
    ) as [Estimate, Estimate];

    expect(large.run.acceptance.end).toBe(0.5);
    expect(callsPerTask(large)).toBeCloseTo(callsPerTask(small), 1);
  });

  it('reads the curve at the pool each iteration starts from, capped at the highest rate measured', () => {
    const curve = {
      rate: 0.2,
      atPool: 1_000,
      exponent: 1,
      maxRate: 0.6,
      fittedPools: [100, 5_000] as [number, number],
    };

    expect(acceptanceAt(curve, 1_000)).toBeCloseTo(0.2, 12);
    expect(acceptanceAt(curve, 2_000)).toBeCloseTo(0.1, 12);
    expect(acceptanceAt(curve, 100)).toBe(0.6);
  });
});

describe('calibrating the acceptance curve from a recorded run', () => {
  // A run record's iterations as "Save iteration" stores them, drawn from a known curve:
  // acceptance 0.5 × (pool / 1,000)^-0.6, each iteration 1,000 candidates, the rate read where the
  // middle of the batch meets the pool (as the fit reads it).
  const truth = { rate: 0.5, atPool: 1_000, exponent: 0.6 };
  const rateAt = (pool: number) => truth.rate * (pool / truth.atPool) ** -truth.exponent;
  const iterations: Record<string, { counts: Record<string, number> }> = {};
  let pool = 1_000;
  for (let n = 1; n <= 12; n++) {
    let accepted = 1_000 * rateAt(pool);
    for (let step = 0; step < 20; step++) accepted = 1_000 * rateAt(pool + accepted / 2);
    accepted = Math.round(accepted);
    iterations[String(n)] = { counts: { generated: 1_000, accepted, rouge: 1_000 - accepted } };
    pool += accepted;
  }

  it('follows the pool from iteration to iteration, leaving out the surplus past the target', () => {
    const outcomes = gateOutcomes(
      { ...iterations, '13': { counts: { generated: 500, accepted: 10, surplus: 400 } } },
      1_000,
    );

    expect(outcomes[0]).toEqual({
      poolAtStart: 1_000,
      candidates: 1_000,
      accepted: iterations['1']?.counts.accepted,
    });
    expect(outcomes[1]?.poolAtStart).toBe(1_000 + (iterations['1']?.counts.accepted ?? 0));
    expect(outcomes.at(-1)).toMatchObject({ candidates: 100, accepted: 10 });
  });

  it('recovers the curve the run followed', () => {
    const summary = {
      counts: { prompts: 1_200, generated: 12_000, accepted: pool - 1_000, complete: pool - 1_000 },
      usage: { calls: 1_200, inputTokens: 1, outputTokens: 1 },
      exportedTasks: pool - 1_000,
      exportedRecords: pool - 1_000,
    };
    const c = calibrate('default', [summary], undefined, 'run-x', {
      outcomes: gateOutcomes(iterations, 1_000),
    });

    expect(c.acceptanceSource).toMatch(/fitted to 12 iterations' gate outcomes of run-x/);
    // Accepted counts are rounded and read at the batch's middle: close, not exact.
    expect(c.acceptanceCurve.exponent).toBeCloseTo(truth.exponent, 2);
    expect(acceptanceAt(c.acceptanceCurve, 3_000)).toBeCloseTo(rateAt(3_000), 3);
    expect(c.acceptanceCurve.maxRate).toBeCloseTo((iterations['1']?.counts.accepted ?? 0) / 1_000, 9);
  });

  it('without per-iteration outcomes, puts the default shape through the run’s overall rate', () => {
    const run = runSummary({
      poolSize: 5_200,
      added: 5_000,
      counts: { prompts: 3, generated: 30, accepted: 14 },
    });
    const c = calibrate('default', [run], undefined, 'run-y');
    const rate = 14 / 30;

    expect(c.acceptanceSource).toMatch(/default curve's shape/);
    expect(c.acceptanceCurve.exponent).toBe(DEFAULT_ACCEPTANCE_CURVE.exponent);
    // The run started from 200 tasks and accepted 14: its middle candidate met a pool of 207.
    expect(acceptanceAt(c.acceptanceCurve, 207)).toBeCloseTo(rate, 9);
  });

  it('is left undefined by fewer than two pool sizes', () => {
    expect(fitAcceptanceCurve([{ poolAtStart: 100, candidates: 50, accepted: 20 }])).toBeUndefined();
  });
});

describe('wall time', () => {
  // A hand-computed iteration: functions and calls of known length, no CPU work.
  const usage = {
    ...DEFAULT_USAGE_ASSUMPTIONS,
    callConcurrency: 8,
    firstTokenSeconds: 0.5,
    outputTokensPerSecond: 100,
    invocationOverheadSeconds: 0.2,
    gatePairsPerSecond: 1_000_000,
    dynamodbWriteSeconds: 0.01,
    // CPU work besides the calls (stretched by memory): counted in test/unit/pricing.test.ts. The
    // sharded gate's decisions only count in shards (none in the first test's iteration).
    instructionCpuSecondsPerCall: 0,
    instructionCpuSecondsPerPoolInstruction: 0,
    chunkCpuSecondsPerCall: 0,
    gateDecisionCpuSecondsPerPair: 0,
  };
  const time = {
    mapConcurrency: 10,
    maxModelCallsInFlight: 320,
    stateTransitionSeconds: 0.1,
    coldStartSeconds: 1,
  };
  const shape = {
    instructionCalls: 40, // 2 batches of 20 at once, each 3 rounds of 8
    instructionBatches: 2,
    instructionOutputTokens: 40 * 300, // 3.5 s each: 0.5 + 300 / 100
    candidates: 200,
    acceptedInstructions: 100, // 7 rounds of 16 puts
    mapItems: 25, // 3 waves of 10
    mapCalls: 25 * 16, // 2 rounds of 8 per item
    mapOutputTokens: 25 * 16 * 150, // 2 s each
    poolInstructions: 5_000, // 1 M pairs
  };

  it('adds the functions of an iteration one after the other, the Map in waves (hand-computed)', () => {
    const t = iterationTime(shape, usage, time, false);

    // Plan and Collect (0.2 each), then one wave of the two batches.
    expect(t.generate).toBeCloseTo(0.4 + 0.2 + 3 * 3.5, 9);
    expect(t.filter).toBeCloseTo(0.2 + 1 + 7 * 0.01, 9);
    expect(t.map).toBeCloseTo(3 * (0.2 + 2 * 2), 9);
    expect(t.save).toBeCloseTo(0.2, 9);
    // 7 states, 1 wave of batches, 3 waves of chunks.
    expect(t.workflow).toBeCloseTo((7 + 1 + 3) * 0.1, 9);
    expect(t.total).toBeCloseTo(11.1 + 1.27 + 12.6 + 0.2 + 1.1, 9);
    expect(t.limits).toEqual({ generate: 'concurrency', map: 'concurrency' });
    // The first iteration pays five cold starts.
    expect(iterationTime(shape, usage, time, true).workflow).toBeCloseTo(1.1 + 5, 9);

    const run = projectWallTime([shape, shape], usage, time, 2);
    expect(run.onceSeconds).toBeCloseTo(4 * 0.1 + 2 * (1 + 0.2) + 2, 9);
    expect(run.totalSeconds).toBeCloseTo(run.onceSeconds + 2 * t.total + 5, 9);
    expect(run.bottleneck).toEqual({
      step: 'map',
      share: expect.closeTo((2 * t.map) / run.totalSeconds, 9),
      limit: 'concurrency',
      limitedBy: '10 Map items at once × 8 calls each',
    });

    // The model's quota: 600 requests a minute take the Map's 400 calls 40 s, longer than its waves.
    const quota = iterationTime(shape, usage, { ...time, requestsPerMinute: 600 }, false);
    expect(quota.generate).toBeCloseTo(t.generate, 9); // 40 calls: 4 s at the quota's pace, less than a wave
    expect(quota.map).toBeCloseTo(40, 9);
    expect(quota.limits).toEqual({ generate: 'concurrency', map: 'requests' });
    expect(projectWallTime([shape], usage, { ...time, requestsPerMinute: 600 }, 0).bottleneck).toMatchObject({
      step: 'map',
      limit: 'requests',
      limitedBy: "the model's quota of 600 requests/min",
    });

    // The operator's caps: 16 calls in flight at 8 per function leave 2 Map items at once.
    const capped = { ...time, maxModelCallsInFlight: 16 };
    expect(itemsAtOnce(capped, 8)).toBe(2);
    expect(itemsAtOnce({ ...time, modelFunctionConcurrency: 4 }, 8)).toBe(4);
    const narrow = iterationTime(shape, usage, capped, false);
    expect(narrow.generate).toBeCloseTo(t.generate, 9); // still one wave of 2 batches
    expect(narrow.map).toBeCloseTo(13 * (0.2 + 2 * 2), 9);
  });

  it("spreads an iteration's instruction calls over batches: more batches at once, less time", () => {
    const one = estimate(10_000, 'default', nova, { instructionBatchSize: 1000 });
    const many = estimate(10_000, 'default', nova, { instructionBatchSize: 20 });

    expect(many.time.iterations.reduce((s, it) => s + it.generate, 0)).toBeLessThan(
      one.time.iterations.reduce((s, it) => s + it.generate, 0) / 2,
    );
    expect(many.time.totalSeconds).toBeLessThan(one.time.totalSeconds);
  });

  it('projects a longer run for a larger target, and less time with more calls at once', () => {
    const small = estimate(1_000);
    const large = estimate(10_000);
    const wide = estimate(10_000, 'default', nova, { callConcurrency: 32 });

    expect(large.time.totalSeconds).toBeGreaterThan(small.time.totalSeconds * 5);
    expect(wide.time.totalSeconds).toBeLessThan(large.time.totalSeconds);
    expect(large.time.iterations).toHaveLength(large.run.iterations);
    expect(large.time.assumptions).toEqual({
      ...DEFAULT_TIME_ASSUMPTIONS,
      mapConcurrency: 10,
      requestsPerMinute: 2_000,
    });
  });

  it("takes the model's reply time from recorded calls: first token and tokens a second", () => {
    // 0.4 s + tokens / 200, exactly.
    const calls = Array.from({ length: 20 }, (_, i) => ({
      outputTokens: 50 + 20 * i,
      seconds: 0.4 + (50 + 20 * i) / 200,
    }));
    const latency = fitLatency(calls, 'test');

    expect(latency?.firstTokenSeconds).toBeCloseTo(0.4, 9);
    expect(latency?.outputTokensPerSecond).toBeCloseTo(200, 6);
    expect(fitLatency(calls.slice(0, 9), 'test')).toBeUndefined();
  });

  it("waits on the sharded gate's extra states and its two shard Maps, and the shard function's first cold start (hand-computed)", () => {
    const inProcess = iterationTime(shape, usage, time, false);
    const sharded = { ...shape, gateShards: 4 };

    const t = iterationTime(sharded, usage, time, false);

    // The Filter's three steps (0.2 each, the decisions' CPU 0 here, 7 rounds of puts) and one shard's two
    // scans of a quarter of the 1 M pairs at 1.5× the CPU (each 0.2 + 0.375 s; the shards run at once).
    expect(t.filter).toBeCloseTo(3 * 0.2 + 7 * 0.01 + 2 * 0.2 + 0.375, 9);
    // 4 more states (5 instead of Filter's one), and a wave of each shard Map: a child's start and its state.
    expect(t.workflow).toBeCloseTo(inProcess.workflow + (4 + 2 * 2) * 0.1, 9);
    expect(iterationTime(sharded, usage, time, false, true).workflow).toBeCloseTo(t.workflow + 1, 9);
    // The shard function starts cold in the first iteration gated in shards only.
    const run = projectWallTime([shape, sharded, sharded], usage, time, 0);
    expect(run.iterations.map((it) => it.workflow)).toEqual([
      expect.closeTo(inProcess.workflow + 5, 9),
      expect.closeTo(t.workflow + 1, 9),
      expect.closeTo(t.workflow, 9),
    ]);
  });

  it('waits for a batch job: the submit, then a look every batchPollSeconds until the assumed turnaround (hand-computed)', () => {
    // A look after each Wait, the last the first at or past the turnaround, at most the 24 h window's.
    expect(batchLooks(3_600, 60)).toBe(60);
    expect(batchLooks(3_601, 60)).toBe(61);
    expect(batchLooks(10, 60)).toBe(1);
    expect(batchLooks(48 * 3_600, 60)).toBe(maxPolls(60));
    const batched = { ...shape, batchLooks: 60 };
    const poll = { ...time, batchPollSeconds: 60, batchTurnaroundSeconds: 3_600 };
    const onDemand = iterationTime(shape, usage, poll, false);

    const t = iterationTime(batched, usage, poll, false);

    // The submit and 60 checks (0.2 s each), 60 Waits of 60 s.
    expect(t.batch).toBeCloseTo(61 * 0.2 + 60 * 60, 9);
    expect(onDemand.batch).toBe(0);
    // The submit and its Choice, then each look's Wait, check and Choice.
    expect(t.workflow).toBeCloseTo(onDemand.workflow + (2 + 3 * 60) * 0.1, 9);
    expect(t.total).toBeCloseTo(onDemand.total + t.batch + (2 + 3 * 60) * 0.1, 9);
    // Billed: those states and invocations (the Waits are not), one object each way.
    const [before, after] = [shape, batched].map((s) => iterationAwsUsage(s, usage));
    expect(after?.stateTransitions).toBe((before?.stateTransitions ?? 0) + 2 + 3 * 60);
    expect(after?.lambdaRequests).toBe((before?.lambdaRequests ?? 0) + 61);
    expect(after?.lambdaGbSeconds).toBeCloseTo((before?.lambdaGbSeconds ?? 0) + 0.5 * 61 * 0.2, 9);
    expect([after?.s3Puts, after?.s3Gets]).toEqual([(before?.s3Puts ?? 0) + 1, (before?.s3Gets ?? 0) + 1]);
  });

  it("bills a Map's functions for as long as the model's quota holds their calls back (hand-computed)", () => {
    const free = iterationAwsUsage(shape, usage);

    const held = iterationAwsUsage(shape, { ...usage, requestsPerMinute: 600, itemsAtOnce: 10 });

    // The Map's 400 calls take 40 s at 600 a minute, its 3 waves of 4.2 s 12.6 s: each of its 25 items
    // (512 MB) runs 40 / 12.6 times longer. The 40 instruction calls (4 s) fit within their wave (10.7 s).
    expect(held.lambdaGbSeconds - free.lambdaGbSeconds).toBeCloseTo(0.5 * 25 * 4.2 * (40 / 12.6 - 1), 9);
    expect(iterationAwsUsage(shape, { ...usage, requestsPerMinute: 6_000, itemsAtOnce: 10 })).toEqual(free);
  });

  // The fixture's calls as the token quota counts them: instruction calls of 500 input tokens (maxTokens
  // 1,000), Map calls of 200 (maxTokens 300): 32,000 + 140,000 tokens used, in 26.27 s without a quota.
  const withTokens = {
    ...shape,
    instructionQuotaTokens: { calls: 40, input: 40 * 500, output: 40 * 300, reservedOutput: 40 * 1_000 },
    mapQuotaTokens: { calls: 400, input: 400 * 200, output: 400 * 150, reservedOutput: 400 * 300 },
  };

  it('stretches an iteration to its tokens at a low tokens-per-minute quota, and not at a high one (hand-computed)', () => {
    const free = iterationTime(withTokens, usage, time, false);
    expect(free.total).toBeCloseTo(26.27, 9);

    const low = iterationTime(withTokens, usage, { ...time, tokensPerMinute: 200_000 }, false);
    const high = iterationTime(withTokens, usage, { ...time, tokensPerMinute: 400_000 }, false);

    // 172,000 tokens at 200,000 a minute take 51.6 s: the two steps of model calls stretch by the 25.33 s
    // missing, in proportion to their tokens (the reservations, 60,000 × 3.5 s and 200,000 × 2 s over
    // 200,000, fit within their waves of 10.7 and 12.6 s).
    expect(low.total).toBeCloseTo(51.6, 9);
    expect(low.generate).toBeCloseTo(11.1 + (25.33 * 32_000) / 172_000, 9);
    expect(low.map).toBeCloseTo(12.6 + (25.33 * 140_000) / 172_000, 9);
    expect(low.limits).toEqual({ generate: 'tokens', map: 'tokens' });
    expect(
      projectWallTime([withTokens], usage, { ...time, tokensPerMinute: 200_000 }, 0).bottleneck,
    ).toMatchObject({
      step: 'map',
      limit: 'tokens',
      limitedBy: "the model's quota of 200,000 tokens/min (input + output used)",
    });
    // At 400,000 a minute they take 25.8 s, within the iteration's 26.27 s.
    expect(high).toEqual(free);
    // The least quota that does not bind: 172,000 tokens a minute over 26.27 s.
    expect(free.tokensPerMinuteNotBinding.atConcurrency).toBeCloseTo((172_000 * 60) / 26.27, 6);
    expect(free.tokensPerMinuteNotBinding.withRequests).toBeCloseTo((172_000 * 60) / 26.27, 6);
    // Without quota tokens in its shape (an account of a finished run) no token quota applies.
    expect(iterationTime(shape, usage, { ...time, tokensPerMinute: 1 }, false).total).toBeCloseTo(26.27, 9);
  });

  it('holds no more calls in flight than the tokens-per-minute quota has reservations for (hand-computed)', () => {
    // The Map's calls reserve input 50 + maxTokens 4,000 each and use 200: 400 × 4,050 reserved.
    const reserving = {
      ...shape,
      mapQuotaTokens: { calls: 400, input: 400 * 50, output: 400 * 150, reservedOutput: 400 * 4_000 },
    };
    const quota = { ...time, tokensPerMinute: 200_000 };

    const t = iterationTime(reserving, usage, quota, false);

    // 200,000 / 4,050 = 49.4 calls of 2 s in flight: 400 calls take 16.2 s, longer than the 12.6 s of
    // waves; the 80,000 tokens used need 24 s, less than the iteration's 29.87 s.
    expect(t.map).toBeCloseTo(16.2, 9);
    expect(t.limits).toEqual({ generate: 'concurrency', map: 'reservations' });
    expect(t.total).toBeCloseTo(11.1 + 1.27 + 16.2 + 0.2 + 1.1, 9);
    expect(projectWallTime([reserving], usage, quota, 0).bottleneck).toMatchObject({
      step: 'map',
      limit: 'reservations',
      limitedBy:
        "the model's quota of 200,000 tokens/min (reserved at once: input + maxTokens, 4,050 a call, 49 calls in flight)",
    });
    // The quota at which the reservations fit the waves: 400 × 4,050 × 2 s over 12.6 s.
    expect(iterationTime(reserving, usage, time, false).tokensPerMinuteNotBinding.atConcurrency).toBeCloseTo(
      (400 * 4_050 * 2) / 12.6,
      6,
    );
  });

  it('makes a run last the days its tokens need at the daily quota, by default tokens per minute × 1,440 (hand-computed)', () => {
    // One iteration (the first: 5 cold starts) and the run's own states: 2.8 + 31.27 s.
    const quota = { ...time, tokensPerMinute: 400_000 };
    const projected = projectWallTime([withTokens], usage, quota, 0);
    expect(projected.totalSeconds).toBeCloseTo(2.8 + 31.27, 9);
    expect(projected.tokens).toMatchObject({ used: 172_000, tokensPerDay: 576_000_000, dailyWaitSeconds: 0 });

    // 86,400 tokens a day: the run's 172,000 tokens take 172,000 s.
    const daily = projectWallTime([withTokens], usage, { ...quota, tokensPerDay: 86_400 }, 0);

    expect(daily.totalSeconds).toBeCloseTo(172_000, 9);
    expect(daily.tokens?.dailyWaitSeconds).toBeCloseTo(172_000 - 34.07, 9);
    expect(daily.bottleneck).toEqual({
      step: 'daily-tokens',
      share: expect.closeTo((172_000 - 34.07) / 172_000, 9),
      limitedBy: "its quota of 86,400 tokens/day for the run's 172,000 tokens",
    });
    // The daily quota alone, without one per minute.
    expect(
      projectWallTime([withTokens], usage, { ...time, tokensPerDay: 86_400 }, 0).totalSeconds,
    ).toBeCloseTo(172_000, 9);
  });

  it('bills the functions for as long as the token quota holds their calls back (hand-computed)', () => {
    const free = iterationAwsUsage(withTokens, { ...usage, itemsAtOnce: 10 });

    const held = iterationAwsUsage(withTokens, { ...usage, tokensPerMinute: 200_000, itemsAtOnce: 10 });

    // The functions' 25.17 s (Plan and Collect 0.4, the batches' wave 10.7, Filter 1.27, the Map's waves
    // 12.6, Save 0.2; transitions are not timed here) against the 51.6 s the tokens need: 26.43 s more,
    // 32/172 of it on the batches' wave (2 batches of 512 MB), 140/172 on the Map's (25 items of 4.2 s
    // over 12.6 s).
    const [generate, map] = [(26.43 * 32) / 172, (26.43 * 140) / 172];
    expect(held.lambdaGbSeconds - free.lambdaGbSeconds).toBeCloseTo(
      0.5 * (2 * generate + ((25 * 4.2) / 12.6) * map),
      9,
    );
    // At 420,000 a minute the tokens need 24.57 s: within the functions' time, no stretch.
    expect(iterationAwsUsage(withTokens, { ...usage, tokensPerMinute: 420_000, itemsAtOnce: 10 })).toEqual(
      free,
    );
  });

  it("counts the run's tokens against the token quota with the maxTokens the stages send, and binds only below the printed threshold", () => {
    const free = estimate(3_000);
    const threshold = free.time.tokens?.tokensPerMinuteNotBinding.withRequests ?? 0;
    const at = (tokensPerMinute: number) =>
      estimate(3_000, 'default', nova, { timeAssumptions: { tokensPerMinute } });

    // Each call reserves its input + the maxTokens its stage sends.
    expect(free.promptTokens.maxTokens).toMatchObject({
      'generate-instructions': PROFILES.default.parameters.instructions.maxTokens,
      'generate-instances': PROFILES.default.parameters.instances.maxTokens,
      judge: JUDGE_PARAMETERS.maxTokens,
    });
    const steps = free.stages.filter((st) => st.calls > 0);
    expect(free.time.tokens?.used).toBeCloseTo(
      steps.reduce((sum, st) => sum + st.inputTokens + st.outputTokens, 0),
      3,
    );
    expect(free.time.tokens?.reserved).toBeCloseTo(
      steps.reduce(
        (sum, st) => sum + st.inputTokens + st.calls * (free.promptTokens.maxTokens[st.stage] ?? 0),
        0,
      ),
      3,
    );
    // A judge on another model counts against that model's quota.
    const otherJudge = estimate(3_000, 'default', nova, { judgeModel: 'openai:gpt-4o' });
    const judge = free.stages.find((st) => st.stage === 'judge');
    expect(otherJudge.time.tokens?.used).toBeCloseTo(
      (free.time.tokens?.used ?? 0) - (judge?.inputTokens ?? 0) - (judge?.outputTokens ?? 0),
      3,
    );
    // Just above the threshold nothing changes; below it the run takes longer, bound by the token quota.
    expect(threshold).toBeGreaterThan(0);
    expect(at(Math.ceil(threshold) + 1).time.totalSeconds).toBeCloseTo(free.time.totalSeconds, 9);
    const bound = at(Math.floor(threshold / 4));
    expect(bound.time.totalSeconds).toBeGreaterThan(free.time.totalSeconds * 2);
    expect(bound.time.bottleneck.limitedBy).toBe(
      `the model's quota of ${fmtInt(Math.floor(threshold / 4))} tokens/min (input + output used)`,
    );
    expect(bound.summary.awsUsd).toBeGreaterThan(free.summary.awsUsd);
  });

  it('refuses a tokens-per-minute quota below what one call reserves', () => {
    // An instruction call reserves its ~490 input tokens and maxTokens 1,024.
    expect(() => estimate(300, 'default', nova, { timeAssumptions: { tokensPerMinute: 1_000 } })).toThrow(
      TokenQuotaTooLow,
    );
    expect(() => estimate(300, 'default', nova, { timeAssumptions: { tokensPerMinute: 1_000 } })).toThrow(
      /1,000 tokens per minute is below what one generate-instructions call reserves at its start \(about \d+ input tokens \+ maxTokens 1,024\)/,
    );
  });

  it("batch mode: a job for each iteration with at least Bedrock's 100 instance records, waited for as assumed; the rest on demand", () => {
    const onDemand = estimate(52_000);
    const batch = estimate(52_000, 'default', nova, { batch: true });
    const sooner = estimate(52_000, 'default', nova, { batch: true, batchTurnaroundSeconds: 1_800 });
    const instances = (e: Estimate) => e.stages.find((s) => s.stage === 'generate-instances')?.cost.usd ?? 0;
    const jobs = batch.time.iterations.filter((it) => it.batch > 0).length;

    // 812 iterations: 3 executions of 389 on demand; one batch iteration (1,441 looks at worst) an execution.
    expect(onDemand.run).toMatchObject({ iterations: 812, executions: 3, iterationsPerExecution: 389 });
    expect(batch.run).toMatchObject({ executions: 812, iterationsPerExecution: 1 });
    // Acceptance falls with the pool: the late iterations accept too few for a job.
    expect(jobs).toBeGreaterThan(0);
    expect(jobs).toBeLessThan(batch.run.iterations);
    expect(instances(batch)).toBeGreaterThan(instances(onDemand) / 2);
    expect(instances(batch)).toBeLessThan(instances(onDemand));
    const line =
      /(\d+) iterations? of 812 submits? one \(the others have fewer than Bedrock's 100 records a job/.exec(
        batch.assumptions.join('\n'),
      );
    expect(Number(line?.[1])).toBe(jobs);
    // Half the turnaround: 30 looks fewer a job, each a Wait (60 s), a check (0.3 s) and 3 transitions.
    expect(batch.time.totalSeconds - sooner.time.totalSeconds).toBeCloseTo(jobs * 30 * (60 + 0.3 + 0.3), 6);
    // A small run's iterations all make jobs: every instance call at half the price.
    const small = estimate(3_000, 'default', nova, { batch: true });
    expect(small.time.iterations.every((it) => it.batch > 0)).toBe(true);
    expect(instances(small)).toBeCloseTo(instances(estimate(3_000)) / 2, 9);
  });
});
