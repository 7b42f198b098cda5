import { describe, expect, it } from 'vitest';
import {
  parseClassifyReply,
  parseInstancesReply,
  renderClassifyRequest,
  renderInstancesRequest,
} from '../../../functions/generate-instances/prompt.ts';

const CLASSIFY_FEW_SHOT = `Can the following task be regarded as a classification task with finite output labels?

Task: Given a movie review, tell whether the reviewer liked the film.
Is it classification? Yes

Task: Write a short poem about the first snowfall of the year.
Is it classification? No

Task: Decide if the given number is even or odd.
Is it classification? Yes

Task: Summarize the news article below in two sentences.
Is it classification? No

Task: Is the following email spam or not spam?
Is it classification? Yes

Task: Translate the sentence into German.
Is it classification? No

Task: Label the tone of a tweet as angry, happy, sad, or neutral.
Is it classification? Yes

Task: Suggest a few questions to ask at the end of a job interview.
Is it classification? No

Task: Does the second sentence follow from the first? Answer entailment, contradiction, or neutral.
Is it classification? Yes

Task: Sort the given words in alphabetical order.
Is it classification? No

Task: Tell me if the following statement about history is true or false.
Is it classification? Yes

Task: Explain why the sky looks blue during the day.
Is it classification? No

Task:`;

const OUTPUT_FIRST = `Given the classification task definition and the class labels, generate an input that corresponds to each of the class labels. If the task doesn't require input, just generate possible class labels.

Task: Decide whether a review of a kitchen appliance is positive or negative.
Class label: Positive
Review: The blender crushes ice in seconds and takes a minute to clean. Best thing I bought this year.
Class label: Negative
Review: The lid cracked after a week and the motor smells like burning plastic.

Task: Does the second sentence follow from the first? Answer entailment, contradiction, or neutral.
Class label: Entailment
Sentence 1: All the guests arrived before seven.
Sentence 2: Nobody arrived after seven.
Class label: Contradiction
Sentence 1: The museum is closed on Mondays.
Sentence 2: You can visit the museum any day of the week.
Class label: Neutral
Sentence 1: Maria bought a new bicycle.
Sentence 2: Maria rides to work.

Task: Which of these is not a prime number? (a) 2 (b) 9 (c) 13 (d) 29
Class label: (b)

Task: Identify the language of the sentence: English, French, or Spanish.
Class label: French
Sentence: Je voudrais un café, s'il vous plaît.
Class label: Spanish
Sentence: ¿Dónde está la estación de tren?
Class label: English
Sentence: The train leaves at noon.

Task: Tell whether an email asks the reader to do something. Answer "Request" or "No request".
Class label: Request
Email: Hi Sam, could you send me the slides from Tuesday's meeting before Friday? Thanks, Priya
Class label: No request
Email: Hi Sam, the slides from Tuesday's meeting are now in the shared folder. Priya

Task: Is the number divisible by 3? Answer yes or no.
Class label: Yes
Number: 4,512
Class label: No
Number: 1,024

Task:`;

const INPUT_FIRST = `Come up with examples for the following tasks. Try to generate multiple examples when possible. If the task doesn't require additional input, you can generate the output directly.

Task: Suggest three names for a bakery that specializes in sourdough bread.
Output:
- Rise & Crumb
- The Wild Yeast
- Slow Dough Bakery

Task: Summarize the paragraph in one sentence.
Example 1
Paragraph: The city council voted on Tuesday to extend the bike lane network by twelve miles over the next two years. Supporters said the plan would cut traffic and improve safety, while some shop owners worried about losing parking spaces.
Output: The council approved a twelve-mile, two-year bike lane expansion despite shop owners' worries about parking.
Example 2
Paragraph: Researchers found that students who slept at least eight hours before an exam scored higher on average than those who stayed up late to study, even when both groups had studied for the same total time.
Output: Students who slept well before an exam outscored those who studied late, given equal study time.

Task: Convert 5 miles to kilometers.
Output: 5 miles is about 8.05 kilometers.

Task: Rewrite the sentence in the passive voice.
Example 1
Sentence: The chef prepared a five-course dinner.
Output: A five-course dinner was prepared by the chef.
Example 2
Sentence: Volunteers planted two hundred trees along the river.
Output: Two hundred trees were planted along the river by volunteers.

Task: Find the largest number in the list.
Example 1
List: [3, 17, -2, 9, 17.5]
Output: 17.5
Example 2
Input: [-8, -3, -11]
Output: -3

Task: Write a short, polite reply declining a meeting invitation.
Output: Thank you for the invitation. Unfortunately, I have a prior commitment at that time and won't be able to attend. I'd be glad to catch up on the notes afterward.

Task: Give the opposite of the word.
Example 1
Word: generous
Output: stingy
Example 2
Word: ancient
Output: modern
Example 3
Word: fragile
Output: sturdy

Task:`;

const instruction = '  Classify the sentiment of the tweet as positive or negative.\n';

describe('renderClassifyRequest', () => {
  it('appends " <instruction>\\nIs it classification?" to the few-shot template for self-instruct', () => {
    expect(renderClassifyRequest('self-instruct', instruction)).toEqual({
      stage: 'classify',
      format: 'classify/self-instruct',
      kind: 'completion',
      prompt: `${CLASSIFY_FEW_SHOT} Classify the sentiment of the tweet as positive or negative.\nIs it classification?`,
      temperature: 0,
      topP: 0,
      maxTokens: 3,
      stop: ['\n', 'Task'],
    });
  });

  it('uses the same prompt with Alpaca’s parameters for alpaca', () => {
    expect(renderClassifyRequest('alpaca', instruction)).toEqual({
      stage: 'classify',
      format: 'classify/self-instruct',
      kind: 'completion',
      prompt: `${CLASSIFY_FEW_SHOT} Classify the sentiment of the tweet as positive or negative.\nIs it classification?`,
      temperature: 0,
      topP: 0,
      maxTokens: 3,
      stop: ['\n'],
    });
  });

  it('asks a chat model for {"is_classification": boolean} for the default profile', () => {
    expect(renderClassifyRequest('default', instruction)).toEqual({
      stage: 'classify',
      format: 'classify/default',
      kind: 'chat',
      system: 'You label tasks of an instruction dataset. You reply with one JSON object and nothing else.',
      prompt: `Task: Classify the sentiment of the tweet as positive or negative.

Is this a classification task, that is, is every correct answer one of a small, finite set of labels (such as yes/no, true/false, positive/negative, or a fixed list of categories)?
Reply with JSON only: {"is_classification": true} or {"is_classification": false}`,
      temperature: 0,
      topP: 1,
      maxTokens: 8,
      json: true,
    });
  });
});

describe('parseClassifyReply', () => {
  it('reads "Yes" after trimming as classification, as the paper does, in its three spellings', () => {
    expect(parseClassifyReply('self-instruct', ' Yes')).toBe(true);
    expect(parseClassifyReply('self-instruct', 'yes\n')).toBe(true);
    expect(parseClassifyReply('alpaca', 'YES')).toBe(true);
  });

  it('reads "No" as not classification', () => {
    expect(parseClassifyReply('self-instruct', ' No')).toBe(false);
    expect(parseClassifyReply('alpaca', 'no')).toBe(false);
  });

  it('returns null for anything else, which the paper would count as "No"', () => {
    expect(parseClassifyReply('self-instruct', ' Yes.')).toBeNull();
    expect(parseClassifyReply('self-instruct', ' Maybe')).toBeNull();
    expect(parseClassifyReply('self-instruct', '')).toBeNull();
  });

  it('reads the JSON flag for the default profile, fenced or not', () => {
    expect(parseClassifyReply('default', '{"is_classification": true}')).toBe(true);
    expect(parseClassifyReply('default', '```json\n{"is_classification": false}\n```')).toBe(false);
  });

  it('returns null for a default reply without a boolean flag', () => {
    expect(parseClassifyReply('default', 'Yes')).toBeNull();
    expect(parseClassifyReply('default', '{"is_classification": "yes"}')).toBeNull();
    expect(parseClassifyReply('default', '{"is_classification": tr')).toBeNull();
  });
});

describe('renderInstancesRequest', () => {
  it('uses the output-first template for a classification task, as generate_instances.py', () => {
    expect(renderInstancesRequest('self-instruct', instruction, true)).toEqual({
      stage: 'generate-instances',
      format: 'instances/self-instruct-classification',
      kind: 'completion',
      prompt: `${OUTPUT_FIRST} Classify the sentiment of the tweet as positive or negative.\n`,
      temperature: 0,
      topP: 0,
      maxTokens: 300,
      stop: ['Example 16', 'Task:'],
    });
  });

  it('uses the input-first template for any other task', () => {
    expect(
      renderInstancesRequest('self-instruct', ' Rewrite the sentence in plain English. ', false),
    ).toEqual({
      stage: 'generate-instances',
      format: 'instances/self-instruct-generation',
      kind: 'completion',
      prompt: `${INPUT_FIRST} Rewrite the sentence in plain English.\n`,
      temperature: 0,
      topP: 0,
      maxTokens: 300,
      stop: ['Example 16', 'Task:'],
    });
  });

  it('uses the self-instruct templates with Alpaca’s parameters for alpaca', () => {
    expect(renderInstancesRequest('alpaca', 'Rewrite the sentence in plain English.', false)).toEqual({
      stage: 'generate-instances',
      format: 'instances/self-instruct-generation',
      kind: 'completion',
      prompt: `${INPUT_FIRST} Rewrite the sentence in plain English.\n`,
      temperature: 0,
      topP: 0,
      maxTokens: 300,
    });
  });

  it('asks a chat model for labelled examples, label first, for a default classification task', () => {
    expect(renderInstancesRequest('default', instruction, true)).toEqual({
      stage: 'generate-instances',
      format: 'instances/default-classification',
      kind: 'chat',
      system:
        'You write examples for the tasks of a dataset that teaches an AI assistant to follow instructions. Each example is an input and the correct output for it. You reply with one JSON object and nothing else.',
      prompt: `Task: Classify the sentiment of the tweet as positive or negative.

This is a classification task. Write 2 to 5 diverse examples that together cover as many of its class labels as you can. For each example, first pick the class label, then write a realistic input that has that label. The output is the label alone, written the way the task asks for it. If the task needs no input, use an empty string as the input.

Reply with JSON only, in this shape, with the label first in each example:
{"instances": [{"output": "<class label>", "input": "<an input with that label>"}]}`,
      temperature: 0.3,
      topP: 0.9,
      maxTokens: 700,
      json: true,
    });
  });

  it('asks a chat model for input/output examples for a default generation task', () => {
    expect(renderInstancesRequest('default', 'Rewrite the sentence in plain English.', false)).toEqual({
      stage: 'generate-instances',
      format: 'instances/default-generation',
      kind: 'chat',
      system:
        'You write examples for the tasks of a dataset that teaches an AI assistant to follow instructions. Each example is an input and the correct output for it. You reply with one JSON object and nothing else.',
      prompt: `Task: Rewrite the sentence in plain English.

Write 2 to 5 diverse examples of this task. Each has an input (the specific text, list, question or data the task works on, realistic rather than a placeholder, or an empty string if the task needs none) and the output: a correct and complete response to the task for that input. Do not repeat an input.

Reply with JSON only, in this shape:
{"instances": [{"input": "...", "output": "..."}]}`,
      temperature: 0.3,
      topP: 0.9,
      maxTokens: 700,
      json: true,
    });
  });
});

describe('parseInstancesReply for a generation task (self-instruct and alpaca)', () => {
  const stop = (text: string) => ({ text, finish: 'stop' as const });

  it('splits on "Example N" and reads each input before "Output:" and the output after it', () => {
    const text =
      'Example 1\nInput: She go home.\nOutput: She goes home.\nExample 2\nSentence: Me like it.\nOutput: I like it.\n\n';

    expect(parseInstancesReply('self-instruct', stop(text), false)).toEqual({
      instances: [
        { input: 'She go home.', output: 'She goes home.' },
        { input: 'Sentence: Me like it.', output: 'I like it.' },
      ],
      malformed: false,
    });
  });

  it('reads a reply without "Example" as one input/output pair', () => {
    expect(parseInstancesReply('alpaca', stop('Input 1: 3 + 4\nOutput 1: 7'), false).instances).toEqual([
      { input: '3 + 4', output: '7' },
    ]);
    expect(parseInstancesReply('self-instruct', stop('Output:\n- Rise\n- Crumb'), false).instances).toEqual([
      { input: '', output: '- Rise\n- Crumb' },
    ]);
  });

  it('keeps only the first output when the model went on with another pair', () => {
    const text = 'Input: 2 + 2\nOutput: 4\nInput: 3 + 3\nOutput: 6';

    expect(parseInstancesReply('self-instruct', stop(text), false).instances).toEqual([
      { input: '2 + 2', output: '4' },
    ]);
  });

  it('takes the text between the first and second "Output:" as the output, as re.split(...)[1]', () => {
    const text = 'Example 1\nInput: a\nOutput: b\nOutput: c';

    expect(parseInstancesReply('self-instruct', stop(text), false).instances).toEqual([
      { input: 'a', output: 'b' },
    ]);
  });

  it('reads a piece without "Output:" as an output with an empty input', () => {
    expect(
      parseInstancesReply('self-instruct', stop('Example 1\nA haiku about rain.'), false).instances,
    ).toEqual([{ input: '', output: 'A haiku about rain.' }]);
  });

  it('splits on "Example" even inside a word, as the paper’s regex does', () => {
    const text = 'Output: Examples of fruit are apples';

    expect(parseInstancesReply('self-instruct', stop(text), false).instances).toEqual([
      { input: '', output: '' },
      { input: '', output: 's of fruit are apples' },
    ]);
  });

  it('yields nothing, as malformed, from a reply with neither "Example" nor "Output:"', () => {
    expect(parseInstancesReply('self-instruct', stop('I cannot think of any examples'), false)).toEqual({
      instances: [],
      malformed: true,
    });
  });

  it('drops the last instance when the reply was cut by the token limit', () => {
    const text = 'Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput: d';

    expect(parseInstancesReply('self-instruct', { text, finish: 'length' }, false)).toEqual({
      instances: [{ input: 'a', output: 'b' }],
      malformed: false,
    });
  });
});

describe('parseInstancesReply for a classification task (self-instruct and alpaca)', () => {
  it('splits on "Class label:", the first line being the label and the rest the input', () => {
    const text =
      'Class label: Positive\nTweet: Best concert ever!\nClass label: Negative\nTweet: Sold out again.\nSo annoying.\n\n';

    expect(parseInstancesReply('self-instruct', { text, finish: 'stop' }, true)).toEqual({
      instances: [
        { input: 'Tweet: Best concert ever!', output: 'Positive' },
        { input: 'Tweet: Sold out again.\nSo annoying.', output: 'Negative' },
      ],
      malformed: false,
    });
  });

  it('ignores the text before the first label and reads a label alone as an instance without input', () => {
    const text = 'Here they are.\nClass label: (b)\nClass label: Yes';

    expect(parseInstancesReply('alpaca', { text, finish: 'stop' }, true).instances).toEqual([
      { input: '', output: '(b)' },
      { input: '', output: 'Yes' },
    ]);
  });

  it('yields nothing, as malformed, from a reply without "Class label:"', () => {
    expect(parseInstancesReply('self-instruct', { text: 'Positive: great', finish: 'stop' }, true)).toEqual({
      instances: [],
      malformed: true,
    });
  });

  it('drops the last instance when the reply was cut by the token limit', () => {
    const text = 'Class label: Positive\nTweet: Great!\nClass label: Negative\nTweet: Aw';

    expect(parseInstancesReply('self-instruct', { text, finish: 'length' }, true).instances).toEqual([
      { input: 'Tweet: Great!', output: 'Positive' },
    ]);
  });
});

describe('parseInstancesReply for the default profile', () => {
  it('reads the instances of a classification reply written label first', () => {
    const text =
      '{"instances": [{"output": "Positive", "input": "Best concert ever!"}, {"output": "Negative", "input": "Sold out."}]}';

    expect(parseInstancesReply('default', { text, finish: 'stop' }, true)).toEqual({
      instances: [
        { input: 'Best concert ever!', output: 'Positive' },
        { input: 'Sold out.', output: 'Negative' },
      ],
      malformed: false,
    });
  });

  it('reads a missing or null input as empty and a number as text', () => {
    const text =
      '```json\n{"instances": [{"output": "Rain on the roof"}, {"input": null, "output": 42}]}\n```';

    expect(parseInstancesReply('default', { text, finish: 'stop' }, false).instances).toEqual([
      { input: '', output: 'Rain on the roof' },
      { input: '', output: '42' },
    ]);
  });

  it('keeps the complete instances of a reply cut by the token limit', () => {
    const text = '{"instances": [{"input": "2 + 2", "output": "4"}, {"input": "3 + 3", "outp';

    expect(parseInstancesReply('default', { text, finish: 'length' }, false)).toEqual({
      instances: [{ input: '2 + 2', output: '4' }],
      malformed: false,
    });
  });

  it('keeps the valid instances and reports the reply as malformed when one is invalid', () => {
    const text = '{"instances": [{"input": "2 + 2", "output": "4"}, {"input": "no output"}]}';

    expect(parseInstancesReply('default', { text, finish: 'stop' }, false)).toEqual({
      instances: [{ input: '2 + 2', output: '4' }],
      malformed: true,
    });
  });

  it('reports a reply without the JSON object as malformed', () => {
    expect(
      parseInstancesReply('default', { text: 'Input: 2 + 2\nOutput: 4', finish: 'stop' }, false),
    ).toEqual({
      instances: [],
      malformed: true,
    });
  });
});
