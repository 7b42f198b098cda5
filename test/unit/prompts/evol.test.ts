import { describe, expect, it } from 'vitest';
import {
  APOLOGY_MAX_WORDS,
  couldNotAnswer,
  evolResponseElimination,
  stopwordsOnly,
} from '../../../functions/generate-instances/evol.ts';
import {
  chooseOperation,
  copiesPrompt,
  drawParents,
  OPERATION_NAMES,
  parseEqualReply,
  parseEvolveReply,
  renderEqualRequest,
  renderEvolveRequest,
} from '../../../functions/generate-instructions/evol.ts';
import { SHIPPED_TEMPLATES } from '../../../functions/shared/prompt-templates.ts';
import { createRng } from '../../../functions/shared/random.ts';

describe('the evolving prompts', () => {
  it('renders the in-depth prompt with the operation’s sentence and the instruction, exactly', () => {
    const request = renderEvolveRequest('Name three fruits.', 'add-constraints', SHIPPED_TEMPLATES);

    expect(request).toMatchObject({
      stage: 'generate-instructions',
      format: 'evol/evolve',
      kind: 'chat',
      temperature: 1,
      topP: 0.95,
      maxTokens: 1024,
    });
    expect(request.prompt).toBe(
      `You rewrite prompts. Rewrite the prompt below into a more complex version that well-known AI assistants (ChatGPT, GPT-4) would find a bit harder to handle. The rewritten prompt must stay reasonable: a person must be able to understand it and answer it. Keep every non-text part of the prompt (tables, code) and keep its input.

Make it more complex this way:
Add one more constraint or requirement to #The Given Prompt#.

Keep the rewrite concise: add at most 10 to 20 words to the prompt. Do not write "#The Given Prompt#", "#Rewritten Prompt#", "given prompt" or "rewritten prompt" in the rewrite. Reply with the rewritten prompt only.

#The Given Prompt#:
Name three fruits.

#Rewritten Prompt#:`,
    );
  });

  it('renders the in-breadth prompt, exactly', () => {
    const request = renderEvolveRequest('Name three fruits.', 'breadth', SHIPPED_TEMPLATES);

    expect(request.prompt).toBe(
      `You create prompts. Take inspiration from the prompt below and create a brand-new prompt: it must belong to the same domain as the given one but be rarer, of similar length and complexity, and reasonable: a person must be able to understand it and answer it. Do not write "#Given Prompt#", "#Created Prompt#", "given prompt" or "created prompt" in the new prompt. Reply with the new prompt only.

#Given Prompt#:
Name three fruits.

#Created Prompt#:`,
    );
  });

  it('gives each in-depth operation its own sentence', () => {
    const sentences = OPERATION_NAMES.filter((operation) => operation !== 'breadth').map(
      (operation) =>
        /this way:\n(.*)\n/.exec(
          renderEvolveRequest('Name three fruits.', operation, SHIPPED_TEMPLATES).prompt,
        )?.[1],
    );

    expect(new Set(sentences).size).toBe(5);
    expect(sentences[3]).toBe(
      'If #The Given Prompt# can be solved with only a few simple steps of thinking, rewrite it to ask explicitly for reasoning in several steps.',
    );
  });

  it('renders a run’s own template of an operation', () => {
    const request = renderEvolveRequest('Name three fruits.', 'deepen', {
      'evol-depth.txt': 'Harder ({{method}}): {{instruction}}',
    });

    expect(request.prompt).toBe(
      'Harder (If #The Given Prompt# asks about a certain issue, increase the depth and breadth of the inquiry.): Name three fruits.',
    );
  });

  it('renders the information-gain question over numbered pairs, exactly', () => {
    const request = renderEqualRequest(
      [
        { parent: 'Name three fruits.', child: 'Name three tropical fruits that grow in Peru.' },
        { parent: 'Sort the list.', child: 'Please sort the list.' },
      ],
      SHIPPED_TEMPLATES,
    );

    expect(request).toMatchObject({ format: 'evol/equal', json: true, temperature: 0, maxTokens: 48 });
    expect(request.prompt).toBe(
      `Below are 2 pairs of instructions to an AI assistant. For each pair, decide whether the two instructions are equal, that is whether both:
1. have the same constraints and requirements, and
2. ask with the same depth and breadth.

Pair 1
First: Name three fruits.
Second: Name three tropical fruits that grow in Peru.

Pair 2
First: Sort the list.
Second: Please sort the list.

Reply with JSON only: {"verdicts": ["equal" or "not equal", one per pair, in order]}`,
    );
  });
});

describe('parsing the evolving replies', () => {
  it('takes the reply, trimmed and unquoted, as the evolved instruction', () => {
    expect(parseEvolveReply({ text: '  "Name three red fruits."\n', finish: 'stop' })).toEqual({
      instruction: 'Name three red fruits.',
    });
  });

  it('counts an empty reply as malformed and a cut one as truncated', () => {
    expect(parseEvolveReply({ text: '  \n', finish: 'stop' })).toEqual({ malformed: true });
    expect(parseEvolveReply({ text: 'Name three red', finish: 'length' })).toEqual({ truncated: true });
  });

  it('reads one verdict per pair; a missing or unknown verdict is null', () => {
    const reply = '```json\n{"verdicts": ["Equal", "not equal", "maybe"]}\n```';

    expect(parseEqualReply({ text: reply, finish: 'stop' }, 4)).toEqual([true, false, null, null]);
    expect(parseEqualReply({ text: 'They all differ.', finish: 'stop' }, 2)).toEqual([null, null]);
  });
});

describe('drawing the evolutions', () => {
  it('draws distinct parents while there are enough, then again from the whole pool', () => {
    const drawn = drawParents(['a', 'b', 'c'], 7, createRng('s'));

    expect(drawn).toHaveLength(7);
    expect(new Set(drawn.slice(0, 3)).size).toBe(3);
    expect(new Set(drawn.slice(3, 6)).size).toBe(3);
    expect(drawParents([], 4, createRng('s'))).toEqual([]);
  });

  it('draws every operation, the same ones for the same seed', () => {
    const draw = (seed: string) =>
      Array.from({ length: 300 }, (_, i) => chooseOperation(createRng(`${seed}${i}`)));

    expect(new Set(draw('x'))).toEqual(new Set(OPERATION_NAMES));
    expect(draw('x')).toEqual(draw('x'));
  });
});

describe('the elimination rules', () => {
  it('copied prompt words: eliminates an evolution that repeats the evolving prompt’s headings or words', () => {
    expect(copiesPrompt('#Rewritten Prompt#: Name three red fruits.')).toBe(true);
    expect(copiesPrompt('Name three red fruits, as the Given Prompt asks.')).toBe(true);
    expect(copiesPrompt('Here is the rewritten prompt: name three fruits.')).toBe(true);
    expect(copiesPrompt('Write a prompt for an image model that shows a given fruit.')).toBe(false);
  });

  it('could not answer: a response with "sorry" below 80 words; at 80 words it stands', () => {
    const padded = (words: number) => `Sorry, ${Array.from({ length: words - 1 }, () => 'word').join(' ')}`;

    expect(couldNotAnswer("Sorry, I can't provide that.")).toBe(true);
    expect(couldNotAnswer(padded(APOLOGY_MAX_WORDS - 1))).toBe(true);
    expect(couldNotAnswer(padded(APOLOGY_MAX_WORDS))).toBe(false);
    expect(couldNotAnswer('I cannot provide that.')).toBe(false);
  });

  it('stop words only: a response of punctuation and stop words; one word of content saves it', () => {
    expect(stopwordsOnly('... and the, of it?!')).toBe(true);
    expect(stopwordsOnly('-- ; !!')).toBe(true);
    expect(stopwordsOnly('... and the apple?')).toBe(false);
  });

  it('eliminates a task when any response fails a rule; a classification label is not a stop-word response', () => {
    const good = { input: '', output: 'Mangoes, papayas and guavas.' };

    expect(evolResponseElimination([good, { input: '', output: 'Sorry, no.' }], false)).toBe(
      'evol-could-not-answer',
    );
    expect(evolResponseElimination([good, { input: 'x', output: 'the ... and' }], false)).toBe(
      'evol-stopwords-only',
    );
    expect(evolResponseElimination([good], false)).toBeUndefined();
    expect(evolResponseElimination([{ input: 'Is it ripe?', output: 'No' }], true)).toBeUndefined();
    expect(evolResponseElimination([{ input: 'Is it ripe?', output: 'No' }], false)).toBe(
      'evol-stopwords-only',
    );
  });
});
