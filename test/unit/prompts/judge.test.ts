import { describe, expect, it } from 'vitest';
import {
  MAX_JUDGED_FIELD_CHARS,
  MAX_REASON_CHARS,
  MAX_VERDICT_CHARS,
  parseJudgeReply,
  renderJudgeRequest,
} from '../../../functions/generate-instances/judge.ts';

const verdict = (fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    instruction_valid: true,
    input_appropriate: true,
    output_correct: false,
    score: 3,
    reason: 'The second output is wrong.',
    ...fields,
  });

describe('the judge prompt', () => {
  it('shows the instruction and its examples, and asks the three audit questions and a score', () => {
    const request = renderJudgeRequest('  Add up the numbers. ', [
      { input: '1, 2, 3', output: '6' },
      { input: '', output: '0' },
    ]);
    expect(request).toMatchObject({
      stage: 'judge',
      format: 'judge/default',
      kind: 'chat',
      json: true,
      temperature: 0,
      maxTokens: 256,
    });
    expect(request.system).toBe(
      'You review machine-generated tasks of a dataset that teaches an AI assistant to follow instructions, as a strict and fair auditor. You reply with one JSON object and nothing else.',
    );
    expect(request.prompt).toBe(
      `Instruction: Add up the numbers.

Examples (2):
Example 1
Input: 1, 2, 3
Output: 6

Example 2
Input: (none)
Output: 0

Audit this task by answering three questions:
1. instruction_valid: does the instruction describe a valid task, one a text-only assistant can do?
2. input_appropriate: is every input appropriate for the instruction (an empty input only where the instruction needs none)?
3. output_correct: is every output a correct and acceptable response to the instruction and its input?
Then rate the task as a training example from 1 (unusable) to 5 (excellent), and say why in one sentence.

Reply with JSON only, in this shape:
{"instruction_valid": true, "input_appropriate": true, "output_correct": true, "score": 4, "reason": "<one sentence>"}`,
    );
  });

  it('shows a long input or output cut, marked, and a template-looking text as it is', () => {
    const long = 'x'.repeat(MAX_JUDGED_FIELD_CHARS + 500);
    const { prompt } = renderJudgeRequest('Echo it.', [{ input: '{{instruction}}', output: long }]);
    expect(prompt).toContain('Input: {{instruction}}\n');
    expect(prompt).toContain(`Output: ${'x'.repeat(MAX_JUDGED_FIELD_CHARS)} […]\n`);
    expect(prompt).not.toContain('x'.repeat(MAX_JUDGED_FIELD_CHARS + 1));
  });
});

describe('a judge reply', () => {
  it('is read into the score, the three audit answers and the reason', () => {
    expect(parseJudgeReply(verdict())).toEqual({
      score: 3,
      instructionValid: true,
      inputAppropriate: true,
      outputCorrect: false,
      reason: 'The second output is wrong.',
    });
  });

  it('is found inside a code fence or a sentence', () => {
    expect(parseJudgeReply(`Here is my verdict:\n\`\`\`json\n${verdict({ score: 5 })}\n\`\`\``)?.score).toBe(
      5,
    );
  });

  it('keeps a reason as one line, cut to its bound', () => {
    const reason = `Fine.\n\n  ${'word '.repeat(200)}`;
    const parsed = parseJudgeReply(verdict({ reason }));
    expect(parsed?.reason).toHaveLength(MAX_REASON_CHARS);
    expect(parsed?.reason.startsWith('Fine. word word')).toBe(true);
    expect(parsed?.reason.endsWith('…')).toBe(true);
    expect(parsed?.reason).not.toContain('\n');
  });

  it.each([
    ['prose', 'Overall this task deserves a 4 out of 5. It is fine.'],
    ['a score out of range', verdict({ score: 7 })],
    ['a score of 0', verdict({ score: 0 })],
    ['a fractional score', verdict({ score: 3.5 })],
    ['a score as text', verdict({ score: '4' })],
    ['an audit answer as text', verdict({ output_correct: 'yes' })],
    ['a missing audit answer', verdict({ input_appropriate: undefined })],
    ['an empty reason', verdict({ reason: '   ' })],
    ['JSON cut short', verdict().slice(0, 60)],
    ['an empty reply', ''],
  ])('with %s is unparseable (null)', (_, text) => {
    expect(parseJudgeReply(text)).toBeNull();
  });

  it('longer than a verdict can be is not parsed at all', () => {
    const padded = `${verdict()}${' '.repeat(MAX_VERDICT_CHARS)}`;
    expect(parseJudgeReply(padded)).toBeNull();
    expect(parseJudgeReply(padded.trimEnd())).not.toBeNull();
  });
});
