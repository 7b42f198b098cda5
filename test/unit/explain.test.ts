/**
 * Explanation traces (`responseStyle: "explained"`): the system message chosen per task type, the exact
 * teacher request, the replies that can't be used, and the step inside "Generate instances" on in-memory
 * ports (explained outputs stored with their system message, unusable replies dropped and counted, lost
 * teacher calls, a teacher of another model billed under its own step and priced at its own price).
 */
import { describe, expect, it } from 'vitest';
import {
  explainInstances,
  parseTeacherReply,
  renderTeacherRequest,
  SYSTEM_MESSAGE_OF_TYPE,
  SYSTEM_MESSAGES,
  systemMessageFor,
  TASK_TYPES,
  taskType,
} from '../../functions/generate-instances/explain.ts';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { ModelThrottled } from '../../functions/shared/errors.ts';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import { explainedAnswer } from '../../functions/shared/models/offline-replies.ts';
import type { ModelReply, ModelRequest, TextModel } from '../../functions/shared/ports.ts';
import { createRng } from '../../functions/shared/random.ts';
import { groupCounts } from '../../infra/cli/counts.ts';
import { iterationToInstances, useFastRetries } from '../support/stage-iteration.ts';

const EXPLANATION =
  'Step 1: The task asks for the sentiment of the review.\nStep 2: The review praises the food.\n\nSo the answer is: Positive';

describe('the system message of a task', () => {
  it('is chosen by task type, in order: classification, translation, explanation, input, question', () => {
    const short = [{ input: 'The food was great.', output: 'Positive' }];
    const long = [
      { input: 'Some text.', output: 'A rewritten version of the text with many more words '.repeat(3) },
    ];
    const none = [{ input: '', output: 'An answer.' }];
    expect(taskType('Is the review positive or negative?', true, short)).toBe('classification');
    expect(taskType('Translate the sentence into French.', false, short)).toBe('translation');
    expect(taskType('Explain how tides work.', false, none)).toBe('explanation');
    expect(taskType('Why is the sky blue?', false, none)).toBe('explanation');
    expect(taskType('Find the year mentioned in the text.', false, short)).toBe('closed-qa');
    expect(taskType('Rewrite the text in a formal tone.', false, long)).toBe('input-rewriting');
    expect(taskType('What is the capital of Peru?', false, none)).toBe('open-qa');
    expect(taskType('Name three rivers in Europe?', false, none)).toBe('open-qa');
    expect(taskType('Write a poem about autumn.', false, none)).toBe('open-generation');
  });

  it('is the table’s message of the type, and every type has one of the set', () => {
    expect(systemMessageFor('Is the review positive or negative?', true, [])).toEqual({
      type: 'classification',
      id: 'justify-answer',
      text: 'You are an AI assistant. You should describe the task and explain your answer. While answering a multiple choice question, first output the correct answer(s). Then explain why other answers are wrong. You might need to use additional knowledge to answer the question.',
    });
    expect(systemMessageFor('Explain how tides work.', false, []).text).toBe(
      'You are a helpful assistant, who always provide explanation. Think like you are answering to a five year old.',
    );
    for (const type of TASK_TYPES) expect(SYSTEM_MESSAGES[SYSTEM_MESSAGE_OF_TYPE[type]]).toBeTruthy();
  });
});

describe('the teacher request', () => {
  it('is the system message, then the instruction and the input after a blank line', () => {
    const request = renderTeacherRequest('SYSTEM', 'Classify the review.', {
      input: 'The food was great.',
      output: 'Positive',
    });
    expect(request).toEqual({
      stage: 'teach',
      format: 'teach/explained',
      kind: 'chat',
      temperature: 0.3,
      topP: 1,
      maxTokens: 1024,
      system: 'SYSTEM',
      prompt: 'Classify the review.\n\nThe food was great.',
    });
  });

  it('is the instruction alone when the instance has no input (the direct output is never shown)', () => {
    const request = renderTeacherRequest('SYSTEM', 'Write a haiku.', { input: ' ', output: 'Old pond' });
    expect(request.prompt).toBe('Write a haiku.');
    expect(JSON.stringify(request)).not.toContain('Old pond');
  });
});

describe('a teacher reply', () => {
  const stop = (text: string) => parseTeacherReply({ text, finish: 'stop' }, 10_000);
  it('is the explained output when it reasons and answers', () => {
    expect(stop(`  ${EXPLANATION}\n`)).toEqual({ output: EXPLANATION });
  });
  it('is unusable when empty, cut, a refusal, a bare answer or too long', () => {
    expect(stop('  ')).toEqual({ unusable: 'empty' });
    expect(parseTeacherReply({ text: EXPLANATION, finish: 'length' }, 10_000)).toEqual({
      unusable: 'truncated',
    });
    expect(stop("I'm sorry, but I can't help with that request.")).toEqual({ unusable: 'refusal' });
    expect(stop('As an AI language model, I cannot answer this.')).toEqual({ unusable: 'refusal' });
    expect(stop('Positive')).toEqual({ unusable: 'no-explanation' });
    expect(parseTeacherReply({ text: EXPLANATION, finish: 'stop' }, 20)).toEqual({ unusable: 'too-long' });
  });
});

describe('the offline teacher', () => {
  it('reasons step by step then answers, with a label of the instruction for a classification task', () => {
    const text = explainedAnswer(
      'Is the review positive, negative, or neutral?\n\nThe food was great.',
      createRng('t'),
      0,
    );
    expect(text).toMatch(/^Step 1: First, I read the task: "Is the review positive, negative, or neutral\?"/);
    expect(text).toContain('Step 2: Next, I look at the input: "The food was great.".');
    expect(text).toMatch(/\n\nSo the answer is: (Positive|Negative|Neutral)$/);
    expect(stopParse(text)).toHaveProperty('output');
  });

  it('makes each unusable reply now and then with noise', () => {
    const reasons = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const parsed = stopParse(explainedAnswer('Write a poem about autumn.', createRng(`n${i}`), 1));
      if ('unusable' in parsed) reasons.add(parsed.unusable);
    }
    expect([...reasons].sort()).toEqual(['empty', 'no-explanation', 'refusal']);
  });
});

const stopParse = (text: string) => parseTeacherReply({ text, finish: 'stop' }, 32_000);

describe('explainInstances', () => {
  const task = { id: 't1', instruction: 'Classify the review.', isClassification: true };
  const instances = [
    { input: 'Great food.', output: 'Positive' },
    { input: 'Cold soup.', output: 'Negative' },
    { input: 'Fine.', output: 'Neutral' },
  ];
  const reply = (text: string): ModelReply => ({
    text,
    finish: 'stop',
    usage: { inputTokens: 1, outputTokens: 1, estimated: false },
    latencyMs: 1,
    model: 'm',
  });

  it('replaces each output with its explanation, drops and counts an unusable one', async () => {
    const keys: string[] = [];
    const explained = await explainInstances(
      task,
      instances,
      {
        call: async (request: ModelRequest, key: string) => {
          keys.push(key);
          return reply(request.prompt.endsWith('Fine.') ? 'Neutral' : `${EXPLANATION} (${request.prompt})`);
        },
      },
      32_000,
    );
    expect(keys).toEqual(['t1/teach-0', 't1/teach-1', 't1/teach-2']);
    expect(explained).toEqual({
      instances: [
        { input: 'Great food.', output: `${EXPLANATION} (Classify the review.\n\nGreat food.)` },
        { input: 'Cold soup.', output: `${EXPLANATION} (Classify the review.\n\nCold soup.)` },
      ],
      systemMessage: SYSTEM_MESSAGES['justify-answer'],
      counts: { 'teach-no-explanation': 1 },
    });
  });

  it('names the call lost after its retries', async () => {
    const explained = await explainInstances(
      task,
      instances,
      {
        call: async (_request: ModelRequest, key: string) =>
          key === 't1/teach-1' ? undefined : reply(EXPLANATION),
      },
      32_000,
    );
    expect(explained.lost).toBe('t1/teach-1');
    expect(explained.instances).toEqual([]);
  });
});

/** A teacher that answers teacher requests with `answer(prompt)` and counts them; nothing else. */
class ScriptedTeacher implements TextModel {
  taught = 0;
  readonly systems = new Set<string>();
  constructor(
    readonly id: string,
    private readonly answer: (prompt: string) => string | Error,
  ) {}
  async generate(request: ModelRequest): Promise<ModelReply> {
    if (request.stage !== 'teach') throw new Error(`the teacher got a ${request.stage} request`);
    this.systems.add(request.system ?? '');
    const text = this.answer(request.prompt);
    if (text instanceof Error) throw text;
    this.taught++;
    return {
      text,
      finish: 'stop',
      usage: { inputTokens: 50, outputTokens: 80, estimated: false },
      latencyMs: 1,
      model: this.id,
    };
  }
}

useFastRetries();

/** One iteration up to "Generate instances" of a small explained run, with `teacher` as the deps' teacher. */
const explainedIteration = (input: Record<string, unknown>, teacher?: TextModel) =>
  iterationToInstances(
    { judgeModel: 'none', safetyScreen: 'none', responseStyle: 'explained', ...input },
    { model: new OfflineModel({ seed: 'explain-stage', noise: 0 }), teacher },
  );

describe('the teacher step of Generate instances', () => {
  it('stores the explained outputs with the task’s system message, drops unusable ones and counts them', async () => {
    // Every third instance (by its input's length) gets a bare answer.
    const teacher = new ScriptedTeacher('openai:gpt-4o', (prompt) =>
      prompt.length % 3 === 0 ? 'Yes' : `${EXPLANATION}\n[${prompt}]`,
    );
    const { tasks, instances, save, pool } = await explainedIteration(
      { teacherModel: 'openai:gpt-4o' },
      teacher,
    );
    const complete = tasks.filter((task) => task.status === 'complete');
    expect(complete.length).toBeGreaterThan(5);
    for (const task of complete) {
      expect(task.responseStyle).toBe('explained');
      const { text } = systemMessageFor(task.instruction, task.isClassification ?? false, []);
      if (task.isClassification) expect(task.systemMessage).toBe(text);
      expect(Object.values(SYSTEM_MESSAGES)).toContain(task.systemMessage);
      for (const instance of task.instances) {
        const prompt =
          instance.input.trim() === '' ? task.instruction : `${task.instruction}\n\n${instance.input}`;
        expect(instance.output).toBe(`${EXPLANATION}\n[${prompt}]`);
      }
    }
    const dropped = instances.reduce((sum, chunk) => sum + (chunk.counts['teach-no-explanation'] ?? 0), 0);
    expect(dropped).toBeGreaterThan(0);
    const kept = tasks.reduce((sum, task) => sum + task.instances.length, 0);
    expect(teacher.taught).toBe(kept + dropped);
    expect(groupCounts({ 'teach-no-explanation': dropped }).replies).toEqual([
      ['teach-no-explanation', dropped],
    ]);
    // Billed under its own step, at the teacher's price.
    await save();
    const record = pool.runs.get('run-1');
    expect(record?.stageUsage?.['teach:calls']).toBe(teacher.taught);
    const cost = (await pool.getIterations('run-1'))[1]?.cost;
    expect(cost?.modelUsdByStage.teach).toBeCloseTo((teacher.taught * (50 * 2.5 + 80 * 10)) / 1e6, 9);
  });

  it('rejects a task whose teacher call is lost, as the instance calls do', async () => {
    // The first request the teacher gets fails on every attempt; the others are answered.
    let failing: string | undefined;
    const teacher = new ScriptedTeacher('openai:gpt-4o', (prompt) => {
      failing ??= prompt;
      return prompt === failing ? new ModelThrottled('slow down') : EXPLANATION;
    });
    const { tasks, instances } = await explainedIteration({ teacherModel: 'openai:gpt-4o' }, teacher);
    const lost = tasks.filter((task) => task.rejectReason === 'model-call-failed');
    expect(lost).toHaveLength(1);
    expect(failing?.startsWith(lost[0]?.instruction ?? '?')).toBe(true);
    expect(lost[0]?.instances).toEqual([]);
    expect(instances.reduce((sum, chunk) => sum + (chunk.counts['model-call-failed'] ?? 0), 0)).toBe(1);
  });

  it('makes no teacher call for a direct run, and the run’s model teaches by default', async () => {
    expect(parseRunInput({}, 'r').teacherModel).toBeUndefined();
    expect(parseRunInput({ responseStyle: 'explained' }, 'r').teacherModel).toBe('offline');
    expect(parseRunInput({ responseStyle: 'explained', model: 'openai:gpt-4o-mini' }, 'r').teacherModel).toBe(
      'openai:gpt-4o-mini',
    );
    expect(() => parseRunInput({ responseStyle: 'explained', teacherModel: 'gpt-4' }, 'r')).toThrow(
      /teacherModel/,
    );
    const teacher = new ScriptedTeacher('openai:gpt-4o', () => EXPLANATION);
    const { tasks } = await explainedIteration(
      { responseStyle: 'direct', teacherModel: 'openai:gpt-4o' },
      teacher,
    );
    expect(teacher.taught).toBe(0);
    expect(tasks.some((task) => task.responseStyle !== undefined)).toBe(false);
  });
});
