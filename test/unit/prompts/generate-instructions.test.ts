import { describe, expect, it } from 'vitest';
import {
  type DemoTask,
  MachineDemonstrations,
  parseInstructionReply,
  renderInstructionRequest,
  selectDemonstrations,
} from '../../../functions/generate-instructions/prompt.ts';
import { createRng } from '../../../functions/shared/random.ts';

const seeds: DemoTask[] = Array.from({ length: 12 }, (_, i) => ({ instruction: `Seed task ${i}.` }));
const machine: DemoTask[] = Array.from({ length: 5 }, (_, i) => ({ instruction: `Machine task ${i}.` }));
const fromMachine = (demos: DemoTask[]) => demos.filter((d) => d.instruction.startsWith('Machine')).length;

describe('diversity-aware machine demonstrations', () => {
  // A pool of 900 "Write …" tasks and 10 each of nine rarer verbs.
  const verbs = ['Classify', 'Translate', 'Summarize', 'List', 'Explain', 'Rewrite', 'Find', 'Sort', 'Name'];
  const pool: DemoTask[] = [
    ...Array.from({ length: 900 }, (_, i) => ({ instruction: `Write story ${i}.` })),
    ...verbs.flatMap((verb) =>
      Array.from({ length: 10 }, (_, i) => ({ instruction: `${verb}: item ${i}.` })),
    ),
  ];
  const shareOfWrite = (draw: (rng: ReturnType<typeof createRng>) => DemoTask[]) => {
    let write = 0;
    let all = 0;
    for (let i = 0; i < 2000; i++) {
      for (const demo of draw(createRng(`d${i}`))) {
        all++;
        if (demo.instruction.startsWith('Write')) write++;
      }
    }
    return write / all;
  };

  it('shows each leading verb about equally often, where uniform sampling shows the majority verb', () => {
    const diverse = new MachineDemonstrations(pool);
    const diverseShare = shareOfWrite((rng) =>
      selectDemonstrations('default', seeds, diverse, rng).filter((d) => !d.instruction.startsWith('Seed')),
    );
    const uniformShare = shareOfWrite((rng) =>
      selectDemonstrations('default', seeds, pool, rng).filter((d) => !d.instruction.startsWith('Seed')),
    );

    // Ten verbs, two distinct ones per prompt: "Write" in 1 of 10 picks; uniformly, in 9 of 10.
    expect(diverseShare).toBeGreaterThan(0.08);
    expect(diverseShare).toBeLessThan(0.12);
    expect(uniformShare).toBeGreaterThan(0.85);
  });

  it('takes two tasks of distinct verbs, the same for the same seed', () => {
    const diverse = new MachineDemonstrations(pool);
    const demos = diverse.sample(2, createRng('x'));
    expect(new Set(demos.map((d) => d.instruction.split(' ')[0])).size).toBe(2);
    expect(diverse.sample(2, createRng('x'))).toEqual(demos);
    expect(new MachineDemonstrations(pool.slice(0, 3)).sample(2, createRng('x'))).toHaveLength(1);
  });
});

describe('selectDemonstrations', () => {
  it('takes 2 machine tasks and 6 seeds for self-instruct, all distinct', () => {
    const demos = selectDemonstrations('self-instruct', seeds, machine, createRng('a'));

    expect(demos).toHaveLength(8);
    expect(fromMachine(demos)).toBe(2);
    expect(new Set(demos.map((d) => d.instruction)).size).toBe(8);
  });

  it('fills up with seeds while the machine pool is smaller than 2', () => {
    expect(
      fromMachine(selectDemonstrations('self-instruct', seeds, machine.slice(0, 1), createRng('a'))),
    ).toBe(1);
    expect(selectDemonstrations('self-instruct', seeds, machine.slice(0, 1), createRng('a'))).toHaveLength(8);
    expect(selectDemonstrations('self-instruct', seeds, [], createRng('a'))).toHaveLength(8);
  });

  it('shuffles the machine tasks in among the seeds', () => {
    const firstPositions = new Set(
      Array.from({ length: 20 }, (_, i) =>
        selectDemonstrations('self-instruct', seeds, machine, createRng(`s${i}`)).findIndex((d) =>
          d.instruction.startsWith('Machine'),
        ),
      ),
    );

    expect(firstPositions.size).toBeGreaterThan(2);
  });

  it('is reproducible from the random seed', () => {
    expect(selectDemonstrations('default', seeds, machine, createRng('x'))).toEqual(
      selectDemonstrations('default', seeds, machine, createRng('x')),
    );
  });

  it('takes 3 seeds and no machine task for alpaca', () => {
    const demos = selectDemonstrations('alpaca', seeds, machine, createRng('a'));

    expect(demos).toHaveLength(3);
    expect(fromMachine(demos)).toBe(0);
  });

  it('takes 2 machine tasks and 6 seeds for the default profile', () => {
    const demos = selectDemonstrations('default', seeds, machine, createRng('b'));

    expect(demos).toHaveLength(8);
    expect(fromMachine(demos)).toBe(2);
  });
});

const demos: DemoTask[] = [
  { instruction: '  Give me a  list\nof fruits::  ', input: '', output: 'Apple, pear.' },
  { instruction: 'Fix the grammar of the sentence.', input: 'She go home.', output: 'She goes home.' },
  { instruction: 'Is this number even?', input: '42', output: 'Yes' },
];

describe('renderInstructionRequest', () => {
  it('renders the paper’s encode_prompt for self-instruct', () => {
    expect(renderInstructionRequest('self-instruct', demos)).toEqual({
      stage: 'generate-instructions',
      format: 'instructions/self-instruct',
      kind: 'completion',
      prompt:
        'Come up with a series of tasks:\n' +
        '1. Give me a list of fruits\n' +
        '2. Fix the grammar of the sentence.\n' +
        '3. Is this number even?\n' +
        '4.',
      temperature: 0.7,
      topP: 0.5,
      maxTokens: 1024,
      stop: ['\n\n', '\n16', '16.', '16 .'],
    });
  });

  it('renders Alpaca’s requirements and ### blocks, with <noinput> for an empty input', () => {
    expect(renderInstructionRequest('alpaca', demos)).toEqual({
      stage: 'generate-instructions',
      format: 'instructions/alpaca',
      kind: 'completion',
      prompt: `You are asked to come up with a set of 20 diverse task instructions. The instructions will be given to a language model, and we will evaluate how well the model completes them.

Here are the requirements:
1. Vary the verbs: try not to start two instructions with the same one.
2. Vary the wording as well: mix questions with imperative instructions.
3. Vary the kinds of task: open-ended generation, classification, editing, rewriting, question answering, brainstorming, reasoning, and so on.
4. A text-only language model must be able to complete every instruction. Do not ask for visual or audio output, and do not ask the model to act in the world, such as setting a reminder or browsing a website.
5. Write the instructions in English.
6. Each instruction is 1 to 2 sentences long: an imperative sentence or a question.
7. When an instruction needs an input, write one: a specific, realistic example, not a placeholder, with enough substance to make the task challenging, ideally under 100 words.
8. Not every instruction needs an input. When it asks for general knowledge, such as "what is the largest ocean on Earth?", write "<noinput>" in the input field.
9. The output is a fitting response to the instruction and the input, in fewer than 100 words.

List of 20 tasks:
###
1. Instruction: Give me a list of fruits
1. Input:
<noinput>
1. Output:
Apple, pear.
###
2. Instruction: Fix the grammar of the sentence.
2. Input:
She go home.
2. Output:
She goes home.
###
3. Instruction: Is this number even?
3. Input:
42
3. Output:
Yes
###
4. Instruction:`,
      temperature: 1,
      topP: 1,
      maxTokens: 3072,
      stop: ['\n20', '20.', '20.'],
    });
  });

  it('renders a chat request for a JSON list of tasks for the default profile', () => {
    expect(renderInstructionRequest('default', demos)).toEqual({
      stage: 'generate-instructions',
      format: 'instructions/default',
      kind: 'chat',
      system:
        'You write tasks for a dataset that teaches an AI assistant to follow instructions. Every task is a clear, self-contained instruction that a text-only language model can carry out. You reply with one JSON object and nothing else.',
      prompt: `Here are some existing tasks:
1. Give me a list of fruits
2. Fix the grammar of the sentence.
3. Is this number even?

Write 10 new tasks that differ from these and from each other in topic, verb and kind of task: open-ended writing, rewriting, classification, extraction, question answering, reasoning, math, coding, advice, brainstorming.

Rules for each instruction:
- One or two sentences in English, at least five words, starting with a letter.
- Self-contained: when the task works on an input (a text, a sentence, a list, a table), say so in the instruction ("Given a product review, ..."), but do not include the input itself.
- Only text in, text out: nothing that needs images, graphs, maps, drawings, files, audio or video, and no actions in the world such as browsing, sending messages or setting reminders. Do not start with "Write a program".
- Set "is_classification" to true when every correct answer is one of a small, fixed set of labels (such as yes/no, true/false, or positive/negative/neutral), and name the labels in the instruction.

Reply with JSON only, in this shape:
{"tasks": [{"instruction": "...", "is_classification": false}]}`,
      temperature: 0.7,
      topP: 0.9,
      maxTokens: 1024,
      json: true,
    });
  });
});

describe('parseInstructionReply for self-instruct', () => {
  it('splits on "\\n<number>. " so the first piece continues the item the prompt opened', () => {
    const text =
      ' Name three rivers in Europe\n10. Translate the sentence into French\n11 . Suggest a title for a poem';

    expect(parseInstructionReply('self-instruct', { text, finish: 'stop' })).toEqual({
      candidates: [
        { instruction: 'Name three rivers in Europe' },
        { instruction: 'Translate the sentence into French' },
        { instruction: 'Suggest a title for a poem' },
      ],
      malformed: 0,
      droppedByTruncation: 0,
    });
  });

  it('leaves an item whose number has no ". " after it glued to the one before, and skips empty items', () => {
    const text = ' First task is here\n10.Second task glued\n11. \n12. Third task';

    expect(parseInstructionReply('self-instruct', { text, finish: 'stop' }).candidates).toEqual([
      { instruction: 'First task is here\n10.Second task glued' },
      { instruction: 'Third task' },
    ]);
  });

  it('keeps what the filter stage must judge: short, banned and lower-case items', () => {
    const text = ' draw a graph of sales\n10. Go\n11. - Explain recursion';

    expect(
      parseInstructionReply('self-instruct', { text, finish: 'stop' }).candidates.map((c) => c.instruction),
    ).toEqual(['draw a graph of sales', 'Go', '- Explain recursion']);
  });

  it('drops the whole reply when it was cut by the token limit', () => {
    const text = ' Name three rivers in Europe\n10. Translate the sentence into French\n11. Suggest a ti';

    expect(parseInstructionReply('self-instruct', { text, finish: 'length' })).toEqual({
      candidates: [],
      malformed: 0,
      droppedByTruncation: 3,
    });
  });
});

describe('parseInstructionReply for alpaca', () => {
  const reply = [
    ' Give an example of a metaphor.',
    '4. Input:',
    '<NoInput>',
    '4. Output:',
    'Time is a thief.',
    '###',
    '5. Instruction: Fix the grammar of the sentence.',
    '5. Input:',
    'She go home.',
    '5. Output:',
    'She goes home.',
    '###',
    '6. Instruction: A block that lost its input line.',
    '6. Output:',
    'Something.',
    '###',
    '9. Instruction: A block with the wrong number.',
    '9. Input:',
    '<noinput>',
    '9. Output:',
    'Something.',
    '###',
  ].join('\n');

  it('reads instruction, input and output of each block, <noinput> in any case as an empty input', () => {
    expect(parseInstructionReply('alpaca', { text: reply, finish: 'stop' }).candidates).toEqual([
      { instruction: 'Give an example of a metaphor.', input: '', output: 'Time is a thief.' },
      { instruction: 'Fix the grammar of the sentence.', input: 'She go home.', output: 'She goes home.' },
    ]);
  });

  it('counts a block that does not split into 7 parts (a missing field, a wrong number) as malformed', () => {
    expect(parseInstructionReply('alpaca', { text: reply, finish: 'stop' })).toMatchObject({
      malformed: 2,
      droppedByTruncation: 0,
    });
  });

  it('drops only the last block when the reply was cut by the token limit', () => {
    const cut = `${reply}\n10. Instruction: Write a poem about`;

    expect(parseInstructionReply('alpaca', { text: cut, finish: 'length' })).toMatchObject({
      candidates: [
        { instruction: 'Give an example of a metaphor.' },
        { instruction: 'Fix the grammar of the sentence.' },
      ],
      malformed: 2,
      droppedByTruncation: 1,
    });
  });

  it('counts an unfinished last block as malformed when the model stopped by itself', () => {
    const cut = `${reply}\n10. Instruction: Write a poem about`;

    expect(parseInstructionReply('alpaca', { text: cut, finish: 'stop' })).toMatchObject({
      malformed: 3,
      droppedByTruncation: 0,
    });
  });

  it('numbers the blocks after the demonstrations the prompt showed', () => {
    const text = ' Name a prime number.\n3. Input:\n<noinput>\n3. Output:\n7\n###';

    expect(
      parseInstructionReply('alpaca', { text, finish: 'stop' }, { demonstrations: 2 }).candidates,
    ).toEqual([{ instruction: 'Name a prime number.', input: '', output: '7' }]);
    expect(parseInstructionReply('alpaca', { text, finish: 'stop' }).malformed).toBe(1);
  });
});

describe('parseInstructionReply for the default profile', () => {
  it('reads each task with its classification flag', () => {
    const text =
      '{"tasks": [{"instruction": "Summarize the given article in two sentences.", "is_classification": false},' +
      ' {"instruction": "Tell whether the review is positive or negative.", "is_classification": true}]}';

    expect(parseInstructionReply('default', { text, finish: 'stop' })).toEqual({
      candidates: [
        { instruction: 'Summarize the given article in two sentences.', isClassification: false },
        { instruction: 'Tell whether the review is positive or negative.', isClassification: true },
      ],
      malformed: 0,
      droppedByTruncation: 0,
    });
  });

  it('finds the object inside a ```json fence with prose around it', () => {
    const text =
      'Here you go:\n```json\n{"tasks": [{"instruction": "List three uses of vinegar."}]}\n```\nEnjoy!';

    expect(parseInstructionReply('default', { text, finish: 'stop' }).candidates).toEqual([
      { instruction: 'List three uses of vinegar.' },
    ]);
  });

  it('keeps the complete tasks of a reply cut by the token limit and counts the cut one', () => {
    const text =
      '{"tasks": [\n  {"instruction": "List three uses of vinegar.", "is_classification": false},\n' +
      '  {"instruction": "Explain why {braces} and \\"quotes\\" matter.", "is_classification": false},\n' +
      '  {"instruction": "Describe the water cy';

    expect(parseInstructionReply('default', { text, finish: 'length' })).toEqual({
      candidates: [
        { instruction: 'List three uses of vinegar.', isClassification: false },
        { instruction: 'Explain why {braces} and "quotes" matter.', isClassification: false },
      ],
      malformed: 0,
      droppedByTruncation: 1,
    });
  });

  it('counts invalid and unparseable items as malformed and keeps the others', () => {
    const text =
      '{"tasks": [{"task": "No instruction key."}, {"instruction": "Good task here.", "is_classification": false},' +
      ' {"instruction": "Bad flag.", "is_classification": "yes"}, {"instruction": "Broken", "is_classification": tru},' +
      ' {"instruction": "   "}, "a bare string",]}';

    expect(parseInstructionReply('default', { text, finish: 'stop' })).toEqual({
      candidates: [{ instruction: 'Good task here.', isClassification: false }],
      malformed: 5,
      droppedByTruncation: 0,
    });
  });

  it('counts a reply without the JSON object as one malformed reply', () => {
    expect(
      parseInstructionReply('default', { text: '1. Write a poem.\n2. Tell a joke.', finish: 'stop' }),
    ).toEqual({
      candidates: [],
      malformed: 1,
      droppedByTruncation: 0,
    });
  });

  it('counts a reply cut before its list as one truncated reply', () => {
    expect(parseInstructionReply('default', { text: '{"ta', finish: 'length' })).toEqual({
      candidates: [],
      malformed: 0,
      droppedByTruncation: 1,
    });
  });
});
