/**
 * End to end, through the state machine on the local stack (IAM enforced): a small offline run with
 * `responseStyle: "explained"` and a fixed seed. Every exported output is the reply of a teacher call
 * recorded in the run's ledger, made under the system message its task records; `export` writes that
 * system message into the `messages` and `bedrock` records and the card; `jsonl` records the style and the
 * message. Then a teacher on another model (the OpenAI protocol stand-in): its calls go to it, are billed
 * under their own step, and the teacher's replies are what the run exports.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_MESSAGES } from '../../functions/generate-instances/explain.ts';
import { parseExportFile, userContent } from '../../functions/shared/exports/formats.ts';
import { fromJsonLines } from '../../functions/shared/json-lines.ts';
import type { CallRecord } from '../../functions/shared/model-calls.ts';
import { TEACH_STAGE } from '../../functions/shared/ports.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { exportCli } from '../support/export-jsonl.ts';
import { exportedTasks } from '../support/local-stack.ts';
import type { StandIn } from '../support/model-servers.ts';
import { type StandInStack, startStandInStack } from '../support/stand-in-stack.ts';

let world: StandInStack;
let stack: LocalStack;
let openai: StandIn;
let work: string;

const tasksOf = async (runId: string) =>
  (await exportedTasks(stack, runId)).filter((task) => task.run_id === runId);

/** The run's teacher calls, from its raw call records. */
async function teacherCalls(runId: string): Promise<CallRecord[]> {
  const calls: CallRecord[] = [];
  for (const key of await stack.objects.list(`runs/${runId}/`)) {
    if (!/\/raw\/[^/]+\.jsonl$/.test(key)) continue;
    const records = fromJsonLines<CallRecord>(await stack.objects.getText(key));
    calls.push(...records.filter((record) => record.stage === TEACH_STAGE));
  }
  return calls;
}

beforeAll(async () => {
  world = await startStandInStack('explained', { apiKey: 'sk-test-teacher', noise: 0.15 });
  ({ stack, openai, work } = world);
}, 120_000);

afterAll(() => world?.close());

describe('explained responses (offline)', { timeout: 240_000 }, () => {
  let summary: RunSummary;
  beforeAll(async () => {
    summary = await world.run({
      pool: 'explained',
      // A fixed seed (by default the run id's, random): the offline model's replies are the same each time.
      seed: 'explained-e2e',
      target: 1000,
      maxIterations: 1,
      promptsPerIteration: 4,
      responseStyle: 'explained',
    });
  }, 240_000);

  it('exports only outputs the teacher wrote, each under the system message its task records', async () => {
    expect(summary.config).toMatchObject({ responseStyle: 'explained', teacherModel: 'offline' });
    const tasks = await tasksOf(summary.runId);
    expect(tasks.length).toBe(summary.added);
    expect(tasks.length).toBeGreaterThan(5);
    const calls = await teacherCalls(summary.runId);
    const replies = new Map(calls.map((call) => [`${call.system}\u0000${call.prompt}`, call.reply.trim()]));
    const messages = new Set<string>(Object.values(SYSTEM_MESSAGES));
    for (const task of tasks) {
      expect(task.response_style).toBe('explained');
      expect(messages.has(task.system_message ?? '')).toBe(true);
      if (task.is_classification) expect(task.system_message).toBe(SYSTEM_MESSAGES['justify-answer']);
      for (const instance of task.instances) {
        const prompt = userContent({ instruction: task.instruction, input: instance.input });
        expect(replies.get(`${task.system_message}\u0000${prompt}`)).toBe(instance.output);
        expect(instance.output).toMatch(/So the answer is: /);
      }
    }
    // More than one task type in the run: the system message follows the task.
    expect(new Set(tasks.map((task) => task.system_message)).size).toBeGreaterThan(1);
    // Every teacher call is billed under its own step; unusable replies are counted.
    const record = await stack.pool.getRun(summary.runId);
    expect(record?.stageUsage?.[`${TEACH_STAGE}:calls`]).toBe(calls.length);
    const unusable = Object.entries(summary.counts).filter(([key]) => key.startsWith('teach-'));
    expect(unusable.length).toBeGreaterThan(0);
    const exported = tasks.reduce((sum, task) => sum + task.instances.length, 0);
    expect(calls.length).toBeGreaterThanOrEqual(exported + unusable.reduce((sum, [, n]) => sum + n, 0));
  });

  it('writes the system message into the messages and bedrock records and the card, and jsonl records it', async () => {
    const out = path.join(work, 'export');
    // Every format (the default): each in its own folder.
    await exportCli(summary.runId, '--validation', '0', '--bucket', stack.bucketName, '--out', out);
    const read = <F extends 'jsonl' | 'messages' | 'bedrock'>(format: F) =>
      parseExportFile(format, readFileSync(path.join(out, format, 'train.jsonl'), 'utf8'), format);
    const jsonl = read('jsonl');
    const messages = read('messages');
    const bedrock = read('bedrock');
    expect(jsonl.length).toBeGreaterThan(5);
    expect(messages).toHaveLength(jsonl.length);
    expect(bedrock).toHaveLength(jsonl.length);
    jsonl.forEach((record, i) => {
      expect(record.response_style).toBe('explained');
      const system = record.system_message ?? '';
      expect(Object.values(SYSTEM_MESSAGES)).toContain(system);
      expect(messages[i]?.messages).toEqual([
        { role: 'system', content: system },
        { role: 'user', content: userContent(record) },
        { role: 'assistant', content: record.output },
      ]);
      expect(bedrock[i]?.system).toEqual([{ text: system }]);
      expect(bedrock[i]?.messages[1].content[0].text).toBe(record.output);
    });
    const card = readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain('## Explanation traces');
    expect(card).toMatch(/\| responses \| explained by `offline` \(\d+ tasks; see Explanation traces\) \|/);
    for (const system of new Set(jsonl.map((record) => record.system_message))) {
      expect(card).toContain(`| ${system} |`);
    }
  });
});

describe('a teacher on another model', { timeout: 240_000 }, () => {
  it('gets every teacher call, billed under its own step, and its replies are the exported outputs', async () => {
    openai.reset();
    const summary = await world.run({
      pool: 'taught',
      seed: 'explained-e2e',
      target: 1000,
      maxIterations: 1,
      promptsPerIteration: 2,
      responseStyle: 'explained',
      teacherModel: `openai-compatible:stand-in-teacher@${openai.url}`,
    });
    const taught = openai.requests.filter((request) => request.model === 'stand-in-teacher');
    expect(taught.length).toBeGreaterThan(0);
    expect(openai.requests.length).toBe(taught.length);
    const record = await stack.pool.getRun(summary.runId);
    expect(record?.stageUsage?.[`${TEACH_STAGE}:calls`]).toBe(taught.length);
    const replies = new Set(taught.map((request) => request.reply?.text?.trim()));
    const tasks = await tasksOf(summary.runId);
    expect(tasks.length).toBeGreaterThan(0);
    for (const task of tasks) {
      for (const instance of task.instances) expect(replies.has(instance.output)).toBe(true);
    }
  });
});
