/**
 * End to end, through the state machine on the local stack (IAM enforced): the judge scores every task
 * that kept valid instances, `minQuality` rejects those below it, `stats.json` carries the verdicts per
 * iteration, `export --min-quality 4` writes only tasks scored 4 or more, and a judge provider that
 * throttles and garbles its replies leaves a completed run with every billed judge call counted and every
 * unreadable verdict counted.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JUDGE_STAGE } from '../../functions/shared/ports.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { buildReport } from '../../infra/cli/report/report.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { exportJsonl } from '../support/export-jsonl.ts';
import { exportedTasks } from '../support/local-stack.ts';
import { MALFORMED_TEXT, type StandIn } from '../support/model-servers.ts';
import { type StandInStack, startStandInStack } from '../support/stand-in-stack.ts';

let judgeRequests = 0;
let world: StandInStack;
let stack: LocalStack;
let openai: StandIn;
let work: string;
const run = (input: Record<string, unknown>) => world.run(input);
const tasksOf = async (runId: string) =>
  (await exportedTasks(stack, runId)).filter((task) => task.run_id === runId);

beforeAll(async () => {
  world = await startStandInStack('judge', {
    apiKey: 'sk-test-judge',
    noise: 0,
    // The judge's requests (model `stand-in-judge`): one in three throttled, one in five garbled.
    fault: (request) => {
      if (request.model !== 'stand-in-judge') return undefined;
      const n = judgeRequests++;
      if (n % 3 === 0) return { status: 429 };
      return n % 5 === 1 ? { malformedText: true } : undefined;
    },
  });
  ({ stack, openai, work } = world);
}, 120_000);

afterAll(() => world?.close());

describe('the judge', { timeout: 240_000 }, () => {
  let summary: RunSummary;
  beforeAll(async () => {
    summary = await run({
      pool: 'judged',
      // A fixed seed (by default the run id's, random): the offline model's replies are the same each time.
      seed: 'judge-e2e',
      target: 1000,
      maxIterations: 2,
      promptsPerIteration: 4,
      minQuality: 3,
    });
  }, 240_000);

  it('scores the tasks by default with the run’s model, and minQuality rejects those below it', async () => {
    expect(summary.config.judgeModel).toBe('offline');
    const exported = await tasksOf(summary.runId);
    expect(exported.length).toBe(summary.added);
    const scored = exported.filter((task) => task.quality_score !== undefined);
    expect(scored.length).toBeGreaterThan(exported.length * 0.8);
    for (const task of scored) {
      expect(task.quality_score).toBeGreaterThanOrEqual(3);
      expect(typeof task.instruction_valid).toBe('boolean');
      expect(task.quality_reason?.length).toBeGreaterThan(0);
    }
    // Unscored tasks (an unreadable verdict) are kept, and counted.
    expect(exported.length - scored.length).toBe(summary.counts['judge-unparseable'] ?? 0);
    // The rejected ones are in the pool, rejected, with the verdict that rejected them.
    const low: { id: string; score: number }[] = [];
    for await (const task of stack.pool.listTasks('judged')) {
      if (task.rejectReason === 'low-quality') low.push({ id: task.id, score: task.quality?.score ?? 0 });
    }
    expect(low.length).toBeGreaterThan(0);
    expect(summary.counts['low-quality']).toBe(low.length);
    for (const { score } of low) expect(score).toBeLessThan(3);
    // Every judge call is billed and counted under its own step.
    const record = await stack.pool.getRun(summary.runId);
    expect(record?.stageUsage?.[`${JUDGE_STAGE}:calls`]).toBe(
      scored.length + low.length + (summary.counts['judge-unparseable'] ?? 0),
    );
  });

  it('puts the score histogram and the audit rates of each iteration in stats.json', async () => {
    const { stats } = await buildReport(stack.objects, stack.pool, summary.runId);
    expect(stats.iterations).toHaveLength(2);
    const total = stats.totals.quality;
    expect(total).not.toBeNull();
    const scores = total?.scores ?? { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, unscored: 0 };
    // Scores 1–2 are the rejected tasks, 3–5 and unscored the added ones.
    expect(scores[1] + scores[2]).toBe(summary.counts['low-quality']);
    expect(scores[3] + scores[4] + scores[5] + scores.unscored).toBe(summary.added);
    expect(stats.iterations.reduce((sum, it) => sum + (it.quality?.judged ?? 0), 0)).toBe(total?.judged);
    for (const rate of [total?.instructionValid, total?.inputAppropriate, total?.outputCorrect]) {
      expect(rate).toBeGreaterThan(0.3);
      expect(rate).toBeLessThan(1);
    }
  });

  it('lets export --min-quality 4 write only the tasks scored 4 or more', async () => {
    const { records } = await exportJsonl(
      { runId: summary.runId, bucket: stack.bucketName, out: path.join(work, 'export-4') },
      ['--min-quality', '4'],
    );
    const expected = (await tasksOf(summary.runId)).filter((task) => (task.quality_score ?? 0) >= 4);
    expect(expected.length).toBeGreaterThan(0);
    expect(new Set(records.map((record) => record.task_id))).toEqual(
      new Set(expected.map((task) => task.id)),
    );
    for (const record of records) expect(record.quality_score).toBeGreaterThanOrEqual(4);
  });
});

describe('a judge that throttles and garbles its replies', { timeout: 240_000 }, () => {
  it('leaves a completed run, every billed judge call counted and every unreadable verdict counted', async () => {
    openai.reset();
    judgeRequests = 0;
    const summary = await run({
      pool: 'throttled',
      seed: 'judge-e2e',
      target: 1000,
      maxIterations: 1,
      promptsPerIteration: 3,
      model: `openai-compatible:stand-in-chat@${openai.url}`,
      judgeModel: `openai-compatible:stand-in-judge@${openai.url}`,
      embeddingModel: 'none',
    });
    const judge = openai.requests.filter((request) => request.model === 'stand-in-judge');
    const billed = judge.filter((request) => request.reply?.status === 200);
    const garbled = billed.filter((request) => request.reply?.text === MALFORMED_TEXT);
    expect(judge.filter((request) => request.reply?.status === 429).length).toBeGreaterThan(0);
    expect(garbled.length).toBeGreaterThan(0);
    expect(billed.length).toBeGreaterThan(garbled.length);

    const record = await stack.pool.getRun(summary.runId);
    expect(record?.stageUsage?.[`${JUDGE_STAGE}:calls`]).toBe(billed.length);
    expect(summary.counts['judge-unparseable']).toBe(garbled.length);
    const chat = openai.requests.filter(
      (request) => request.model === 'stand-in-chat' && request.reply?.status === 200,
    );
    expect(summary.usage.calls).toBe(chat.length + billed.length);
    // No judge call was lost: every task with instances has its verdict or is counted unreadable.
    const tasks = await tasksOf(summary.runId);
    expect(tasks.filter((task) => task.quality_score === undefined)).toHaveLength(garbled.length);
    expect(summary.counts['judge-call-failed'] ?? 0).toBe(0);
  });
});
