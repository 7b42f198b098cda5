/**
 * The judge step of "Generate instances", on in-memory ports: verdicts stored on the tasks, `minQuality`
 * rejecting through the same conditional finish as every other outcome, unreadable verdicts and lost
 * judge calls kept unscored and counted, a judge of another model billed under its own step.
 */
import { describe, expect, it } from 'vitest';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { ModelThrottled } from '../../functions/shared/errors.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import type { ModelReply, ModelRequest, TextModel } from '../../functions/shared/ports.ts';
import { groupCounts } from '../../infra/cli/counts.ts';
import { type JudgedTask, qualityStats } from '../../infra/cli/report/stats.ts';
import { iterationToInstances, useFastRetries } from '../support/stage-iteration.ts';
import { SEED_TASKS } from './fakes.ts';

/** A model that answers judge prompts with `verdict(instruction)` and counts them; other prompts offline. */
class ScriptedJudge implements TextModel {
  readonly id: string;
  judged = 0;
  others = 0;
  /** The temperature of each judge request. */
  readonly temperatures = new Set<number>();
  private readonly offline = new OfflineModel({ seed: 'judge-stage' });
  constructor(
    id: string,
    private readonly verdict: (instruction: string) => string | Error,
  ) {
    this.id = id;
  }
  async generate(request: ModelRequest): Promise<ModelReply> {
    if (request.stage !== 'judge') {
      this.others++;
      return this.offline.generate(request);
    }
    this.temperatures.add(request.temperature);
    const text = this.verdict(/^Instruction: (.*)$/m.exec(request.prompt)?.[1] ?? '');
    if (text instanceof Error) throw text;
    this.judged++;
    const usage = { inputTokens: 100, outputTokens: 20, estimated: false };
    return { text, finish: 'stop', usage, latencyMs: 1, model: this.id };
  }
}

const verdict = (score: number) =>
  `{"instruction_valid": true, "input_appropriate": ${score > 2}, "output_correct": ${score > 3}, "score": ${score}, "reason": "Scored ${score}."}`;
/** A score from the instruction's length: a spread of 1–5 over any batch. */
const scoreOf = (instruction: string) => 1 + (instruction.length % 5);

useFastRetries();

/** One iteration up to "Generate instances", with `input` over a small run's, and `judge` as the deps' judge. */
const judgedIteration = (input: Record<string, unknown>, model: TextModel, judge?: TextModel) =>
  iterationToInstances(input, { model, judge });

describe('the judge step', () => {
  it('stores each verdict on its task and rejects those below minQuality as low-quality, instances kept', async () => {
    const model = new ScriptedJudge('offline', (instruction) => verdict(scoreOf(instruction)));
    const { tasks, pool, save } = await judgedIteration({ minQuality: 3 }, model);
    const judged = tasks.filter((task) => task.quality !== undefined);
    expect(judged.length).toBeGreaterThan(5);
    expect(model.judged).toBe(judged.length);
    for (const task of judged) {
      const score = scoreOf(task.instruction);
      expect(task.quality).toEqual({
        score,
        instructionValid: true,
        inputAppropriate: score > 2,
        outputCorrect: score > 3,
        reason: `Scored ${score}.`,
      });
      expect(task.status).toBe(score < 3 ? 'rejected' : 'complete');
      expect(task.rejectReason).toBe(score < 3 ? 'low-quality' : undefined);
      expect(task.instances.length).toBeGreaterThan(0);
    }
    const low = judged.filter((task) => task.rejectReason === 'low-quality');
    expect(low.length).toBeGreaterThan(0);
    expect(low.length).toBeLessThan(judged.length);
    // Committed as every other rejection: counted by reason, never in the pool.
    await save();
    expect(pool.runs.get('run-1')?.counts?.['low-quality']).toBe(low.length);
    expect(await pool.countComplete('demo')).toBe(SEED_TASKS.length + judged.length - low.length);
  });

  it('keeps a task whose verdict can’t be read, unscored, and counts it', async () => {
    const model = new ScriptedJudge('offline', (instruction) =>
      scoreOf(instruction) === 1 ? 'I would give it a 1.' : verdict(scoreOf(instruction)),
    );
    const { tasks, instances, save, pool } = await judgedIteration({ minQuality: 2 }, model);
    const unreadable = tasks.filter((task) => task.outcome?.['judge-unparseable'] === 1);
    expect(unreadable.length).toBeGreaterThan(0);
    for (const task of unreadable) {
      expect(task.status).toBe('complete');
      expect(task.quality).toBeUndefined();
    }
    const counted = instances.reduce((sum, result) => sum + (result.counts['judge-unparseable'] ?? 0), 0);
    expect(counted).toBe(unreadable.length);
    await save();
    expect(pool.runs.get('run-1')?.counts?.['judge-unparseable']).toBe(unreadable.length);
  });

  it('judges greedily whatever temperature the run gives its generation calls', async () => {
    const model = new ScriptedJudge('offline', () => verdict(4));
    await judgedIteration({ temperature: 1.2 }, model);
    expect(model.judged).toBeGreaterThan(0);
    expect([...model.temperatures]).toEqual([0]);
  });

  it('makes no judge call when judgeModel is none', async () => {
    const model = new ScriptedJudge('offline', () => verdict(5));
    const { tasks } = await judgedIteration({ judgeModel: 'none', minQuality: 5 }, model);
    expect(model.judged).toBe(0);
    expect(tasks.some((task) => task.status === 'complete')).toBe(true);
    expect(tasks.every((task) => task.quality === undefined && task.rejectReason !== 'low-quality')).toBe(
      true,
    );
  });

  it('sends judge calls to a judge of another model, billed and recorded under the judge step', async () => {
    const model = new ScriptedJudge('offline', () => new Error('the run’s model must not judge'));
    const judge = new ScriptedJudge('openai:gpt-4o-mini', () => verdict(4));
    const { tasks, instances, pool, save } = await judgedIteration(
      { judgeModel: 'openai:gpt-4o-mini' },
      model,
      judge,
    );
    expect(model.judged).toBe(0);
    expect(judge.others).toBe(0);
    expect(judge.judged).toBe(tasks.filter((task) => task.quality?.score === 4).length);
    expect(judge.judged).toBeGreaterThan(0);
    const usage = instances.reduce((sum, result) => sum + (result.usage.judge?.calls ?? 0), 0);
    expect(usage).toBe(judge.judged);
    const recorded = (await pool.listCalls('run-1', '')).filter((call) => call.stage === 'judge');
    expect(recorded.map((call) => call.model)).toEqual(new Array(judge.judged).fill('openai:gpt-4o-mini'));
    await save();
    expect(pool.runs.get('run-1')?.stageUsage?.['judge:calls']).toBe(judge.judged);
  });

  it('keeps a task whose judge call stays throttled unscored, counted as lost', async () => {
    let unlucky: string | undefined;
    const model = new ScriptedJudge('offline', (instruction) => {
      unlucky ??= instruction;
      return instruction === unlucky ? new ModelThrottled('slow down') : verdict(4);
    });
    const { tasks, pool, save } = await judgedIteration({}, model);
    const lost = tasks.filter((task) => task.outcome?.['judge-call-failed'] === 1);
    expect(lost.map((task) => task.instruction)).toEqual([unlucky]);
    expect(lost[0]?.status).toBe('complete');
    expect(lost[0]?.quality).toBeUndefined();
    await save();
    expect(pool.runs.get('run-1')?.counts).toMatchObject({ 'judge-call-failed': 1, lost: 1 });
  });

  it('gives the stage up, for the state machine’s Retry, when more judge calls are lost than a stage may lose', async () => {
    const throttled = new ScriptedJudge('offline', () => new ModelThrottled('slow down'));
    await expect(judgedIteration({}, throttled)).rejects.toThrow(ModelThrottled);
  });
});

describe('the judge in the run input', () => {
  it('is the run’s model by default, none turns it off, and a bad id is refused naming judgeModel', () => {
    expect(parseRunInput({}, 'r').judgeModel).toBe('offline');
    expect(parseRunInput({ model: 'openai:gpt-4o-mini' }, 'r').judgeModel).toBe('openai:gpt-4o-mini');
    expect(parseRunInput({ judgeModel: 'none' }, 'r').judgeModel).toBe('none');
    expect(() => parseRunInput({ judgeModel: 'gpt-4' }, 'r')).toThrow(/judgeModel/);
    expect(() => parseRunInput({ minQuality: 6 }, 'r')).toThrow(/minQuality/);
  });
});

describe('the quality section of stats.json', () => {
  it('counts scores 1–5 and the unscored, and the share of scored tasks answering yes to each audit question', () => {
    const task = (score: number | undefined, valid = true, input = true, output = true): JudgedTask => ({
      iteration: 1,
      quality_score: score,
      ...(score === undefined
        ? {}
        : { instruction_valid: valid, input_appropriate: input, output_correct: output }),
    });
    const stats = qualityStats([
      task(5),
      task(4),
      task(3, true, true, false),
      task(2, true, false, false),
      task(1, false, false, false),
      task(undefined),
    ]);
    expect(stats).toEqual({
      judged: 6,
      scores: { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, unscored: 1 },
      meanScore: 3,
      instructionValid: 4 / 5,
      inputAppropriate: 3 / 5,
      outputCorrect: 2 / 5,
      fullyValid: 2 / 5,
    });
    expect(qualityStats([task(undefined)])).toMatchObject({ meanScore: null, fullyValid: null });
  });
});

describe('the judge in a run’s counts', () => {
  it('shows low-quality among the tasks dropped and missing verdicts among the unusable replies', () => {
    const groups = groupCounts({
      complete: 5,
      'low-quality': 2,
      'judge-unparseable': 1,
      'judge-call-failed': 1,
      'judge-not-recorded': 1,
      rouge: 3,
    });
    expect(groups.tasks).toEqual([['low-quality', 2]]);
    expect(groups.replies.map(([key]) => key).sort()).toEqual([
      'judge-call-failed',
      'judge-not-recorded',
      'judge-unparseable',
    ]);
    expect(groups.instructions).toEqual([['rouge', 3]]);
  });
});
