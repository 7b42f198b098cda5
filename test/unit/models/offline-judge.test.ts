/**
 * The offline model as a judge: deterministic verdicts with a realistic spread (mostly 3–5, some 1–2),
 * audit answers near the Self-Instruct paper's audit, lower scores for visible defects, and a few
 * verdicts the parser can't read.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseJudgeReply, renderJudgeRequest } from '../../../functions/generate-instances/judge.ts';
import { fromJsonLines } from '../../../functions/shared/json-lines.ts';
import { OfflineModel } from '../../../functions/shared/models/offline.ts';
import type { TaskQuality } from '../../../functions/shared/ports.ts';
import type { Instance, SeedTask } from '../../../functions/shared/schemas.ts';

const SEEDS = fromJsonLines<SeedTask>(readFileSync('seeds/seed_tasks.jsonl', 'utf8'));

/** Each seed task judged by `draws` offline models of different seeds: the verdicts, `null` when unparseable. */
async function judge(
  tasks: readonly { instruction: string; instances: Instance[] }[],
  { draws = 3, noise }: { draws?: number; noise?: number } = {},
): Promise<(TaskQuality | null)[]> {
  const verdicts: (TaskQuality | null)[] = [];
  for (let d = 0; d < draws; d++) {
    const model = new OfflineModel({ seed: `judge-${d}`, noise });
    for (const task of tasks) {
      const reply = await model.generate(renderJudgeRequest(task.instruction, task.instances));
      verdicts.push(parseJudgeReply(reply.text));
    }
  }
  return verdicts;
}

const share = (verdicts: readonly TaskQuality[], yes: (v: TaskQuality) => boolean) =>
  verdicts.filter(yes).length / verdicts.length;

describe('the offline judge', () => {
  it('gives the same verdict to the same task, and another model seed may differ', async () => {
    const request = renderJudgeRequest(SEEDS[0]?.instruction ?? '', SEEDS[0]?.instances ?? []);
    const a = await new OfflineModel({ seed: 'x' }).generate(request);
    const b = await new OfflineModel({ seed: 'x' }).generate(request);
    expect(a.text).toBe(b.text);
    const texts = new Set<string>();
    for (let i = 0; i < 20; i++)
      texts.add((await new OfflineModel({ seed: `s${i}` }).generate(request)).text);
    expect(texts.size).toBeGreaterThan(1);
  });

  it('scores mostly 3–5 and some 1–2, with audit answers near the paper’s audit', async () => {
    const verdicts = await judge(SEEDS, { noise: 0 });
    expect(verdicts).not.toContain(null);
    const scored = verdicts as TaskQuality[];
    const scores = new Set(scored.map((v) => v.score));
    expect([...scores].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(share(scored, (v) => v.score >= 3)).toBeGreaterThan(0.7);
    expect(share(scored, (v) => v.score <= 2)).toBeGreaterThan(0.05);
    // The paper: 92% valid instructions, 79% appropriate inputs, 58% correct outputs.
    expect(share(scored, (v) => v.instructionValid)).toBeCloseTo(0.92, 1);
    expect(share(scored, (v) => v.inputAppropriate)).toBeCloseTo(0.79, 1);
    expect(share(scored, (v) => v.outputCorrect)).toBeCloseTo(0.6, 1);
    // The score follows the answers: every yes gives 4 or 5, a no never more than 3.
    for (const v of scored) {
      const all = v.instructionValid && v.inputAppropriate && v.outputCorrect;
      expect(all ? v.score >= 4 : v.score <= 3, JSON.stringify(v)).toBe(true);
    }
  });

  it('scores lower a task whose examples leave out the input its instruction asks for', async () => {
    const wanting = SEEDS.filter(
      (task) => /\b(following|given)\b/i.test(task.instruction) && task.instances.some((i) => i.input !== ''),
    );
    expect(wanting.length).toBeGreaterThan(20);
    const withInput = (await judge(wanting, { noise: 0 })) as TaskQuality[];
    const without = (await judge(
      wanting.map((task) => ({
        instruction: task.instruction,
        instances: task.instances.map((i) => ({ ...i, input: '' })),
      })),
      { noise: 0 },
    )) as TaskQuality[];
    const mean = (vs: TaskQuality[]) => vs.reduce((sum, v) => sum + v.score, 0) / vs.length;
    expect(share(without, (v) => v.inputAppropriate)).toBeLessThan(0.45);
    expect(share(withInput, (v) => v.inputAppropriate)).toBeGreaterThan(0.7);
    expect(mean(without)).toBeLessThan(mean(withInput) - 0.3);
  });

  it('now and then writes a verdict the parser can’t read, at its default noise', async () => {
    const verdicts = await judge(SEEDS);
    const unparseable = verdicts.filter((v) => v === null).length / verdicts.length;
    expect(unparseable).toBeGreaterThan(0.01);
    expect(unparseable).toBeLessThan(0.08);
  });
});
