/**
 * The offline model's replies: one writer per prompt format (see `offline.ts`), each reading what it
 * needs from the prompt (the demonstrations, the task) as a model would, and writing the text a real
 * model would in that format, with the faults of the module comment of `offline.ts`.
 *
 * New tasks are made by recombining the demonstrations in the prompt with the word banks of
 * `./offline-words.json`: the verb of one demonstration (or its opening words) applied to a topic,
 * sometimes with a constraint, an audience or a format.
 */
import type { Rng } from '../random.ts';
import { contentWords } from './offline-backtranslate.ts';
import { failedOutput, failureOf } from './offline-evol-failures.ts';
import words from './offline-words.json' with { type: 'json' };

/** A reply writer: the text a model would write for a prompt of one format, drawn from `rng`. */
export type ReplyWriter = (prompt: string, rng: Rng, noise: number) => string;

/** What a noisy generated task is wrong with. */
type TaskNoise = 'near-duplicate' | 'banned' | 'short' | 'bad-start' | 'malformed';

/** How the faults of a noisy task are shared out. */
const TASK_NOISE: readonly [TaskNoise, number][] = [
  ['near-duplicate', 0.3],
  ['banned', 0.2],
  ['short', 0.15],
  ['bad-start', 0.15],
  ['malformed', 0.2],
];

/**
 * How a clean task is put together: the chance to reuse the verb of a demonstration, or its opening
 * words, and to add each kind of modifier. Tuned so that about half of the tasks pass the ROUGE-L gate
 * over the first few hundred calls, and fewer as the pool grows, as with real models.
 */
const CLASSIFICATION = 0.12;
const SAME_VERB = 0.4;
const OPENING = 0.15;
const PREFIX = 0.2;
const CONSTRAINT = 0.45;
const AUDIENCE = 0.3;
const FORMAT = 0.15;

// ---------------------------------------------------------------------------------------------------
// The word banks (./offline-words.json)

const {
  topics: { items: TOPICS },
  frames: { items: FRAMES },
  classificationFrames: { items: CLF_FRAMES },
  classificationObjects: { items: CLF_OBJECTS },
  labelSets: { items: LABEL_SETS },
  classificationNotes: { items: CLF_NOTES },
  constraints: { items: CONSTRAINTS },
  numbers: { items: NUMBERS },
  counts: { items: COUNTS },
  audienceFrames: { items: AUDIENCE_FRAMES },
  audiences: { items: AUDIENCES },
  formats: { items: FORMATS },
  bannedFrames: { items: BANNED_FRAMES },
  shortFrames: { items: SHORT_FRAMES },
  badStarts: { items: BAD_STARTS },
  swapWords: { items: SWAP_WORDS },
  colonOutputs: { items: COLON_OUTPUTS },
  sentences: { items: SENTENCES },
  listItems: { items: LIST_ITEMS },
  questions: { items: QUESTIONS },
  answers: { items: ANSWERS },
} = words;

/** The openings, each followed by the space before the task. */
const PREFIXES = words.prefixes.items.map((prefix) => `${prefix} `);

/** The task frames by their first word, the verb a demonstration's is matched against. */
const FRAMES_BY_VERB = new Map<string, string[]>();
for (const frame of FRAMES) {
  const verb = frame.split(' ')[0]?.toLowerCase() ?? '';
  FRAMES_BY_VERB.set(verb, [...(FRAMES_BY_VERB.get(verb) ?? []), frame]);
}

// ---------------------------------------------------------------------------------------------------
// Reading the prompt

/** The text after the last "Task:" of a few-shot completion prompt, without what `end` matches. */
function lastTask(prompt: string, end: RegExp): string {
  const at = prompt.lastIndexOf('Task:');
  return (at < 0 ? prompt : prompt.slice(at + 5)).replace(end, '').trim();
}

/** The "Task: …" line of a chat prompt. */
function taskLine(prompt: string): string {
  return /^Task: (.*)$/m.exec(prompt)?.[1]?.trim() ?? prompt.trim().split('\n')[0] ?? '';
}

/** The numbered demonstrations of a list prompt ("1. …" lines). */
function numberedDemos(prompt: string): string[] {
  return [...prompt.matchAll(/^\d+\. (.+)$/gm)].map((m) => m[1] ?? '');
}

// ---------------------------------------------------------------------------------------------------
// Tasks

interface Task {
  instruction: string;
  /** Set on tasks made faulty on purpose, for the reply writers that render faults their own way. */
  noise?: TaskNoise;
}

/** One new task, clean or (at rate `noise`) faulty, from the demonstrations. */
function newTask(rng: Rng, demos: readonly string[], noise: number): Task {
  if (rng.next() >= noise) return { instruction: cleanTask(rng, demos) };
  const kind = weighted(rng, TASK_NOISE);
  const topic = pick(rng, TOPICS);
  switch (kind) {
    case 'near-duplicate': {
      const demo = demos.length > 0 ? pick(rng, demos) : cleanTask(rng, demos);
      return { instruction: nearDuplicate(rng, demo), noise: kind };
    }
    case 'banned':
      return { instruction: fill(pick(rng, BANNED_FRAMES), topic), noise: kind };
    case 'short':
      return { instruction: fill(pick(rng, SHORT_FRAMES), topic.split(' ').at(-1) ?? topic), noise: kind };
    case 'bad-start':
      return { instruction: fill(pick(rng, BAD_STARTS), cleanTask(rng, demos)), noise: kind };
    case 'malformed':
      return { instruction: cleanTask(rng, demos), noise: kind };
  }
}

/** A well-formed new task: a demonstration's verb (or opening words) applied to a topic of the bank. */
export function cleanTask(rng: Rng, demos: readonly string[]): string {
  const demo = demos.length > 0 ? pick(rng, demos) : '';
  if (rng.next() < (looksLikeClassification(demo) ? 0.35 : CLASSIFICATION)) return classificationTask(rng);
  const verb = demo.split(/\s+/)[0]?.toLowerCase() ?? '';
  const sameVerb = FRAMES_BY_VERB.get(verb);
  const opening = /^((?:\S+\s+){1,6}?(?:about|on|regarding))\s/i.exec(demo)?.[1];
  const r = rng.next();
  let frame: string;
  if (sameVerb && r < SAME_VERB) frame = pick(rng, sameVerb);
  else if (opening && r < SAME_VERB + OPENING) frame = `${opening} {t}.`;
  else frame = pick(rng, FRAMES);
  let text = fill(frame, pick(rng, TOPICS)).replace('{u}', pick(rng, TOPICS));
  if (rng.next() < PREFIX) {
    text = fill(pick(rng, PREFIXES), pick(rng, AUDIENCES)) + text.charAt(0).toLowerCase() + text.slice(1);
  }
  if (rng.next() < CONSTRAINT) {
    text += ` ${pick(rng, CONSTRAINTS).replace('{n}', pick(rng, NUMBERS)).replace('{k}', pick(rng, COUNTS))}`;
  }
  if (rng.next() < AUDIENCE) text += ` ${fill(pick(rng, AUDIENCE_FRAMES), pick(rng, AUDIENCES))}`;
  if (rng.next() < FORMAT) text += ` ${pick(rng, FORMATS)}`;
  return text;
}

/** A classification task that names its labels: a frame, a kind of text, a topic and a label set. */
function classificationTask(rng: Rng): string {
  const object = pick(rng, CLF_OBJECTS);
  let text = fill(pick(rng, CLF_FRAMES), pick(rng, TOPICS))
    .replace('{a}', /^[aeiou]/.test(object) ? 'an' : 'a')
    .replace('{o}', object)
    .replace('{l}', pick(rng, LABEL_SETS));
  if (rng.next() < 0.4) text += ` ${pick(rng, CLF_NOTES)}`;
  return text;
}

/** A demonstration with one word changed or added: ROUGE-L against it stays above 0.7. */
function nearDuplicate(rng: Rng, demo: string): string {
  const words = demo.replace(/\s+/g, ' ').trim().split(' ');
  if (words.length >= 5) {
    const at = 1 + rng.int(words.length - 1);
    const old = words[at] ?? '';
    words[at] = pick(rng, SWAP_WORDS) + (/[.?!,:;]$/.exec(old)?.[0] ?? '');
    return words.join(' ');
  }
  return demo.replace(/\s*([.?!:]*)$/, ` ${pick(rng, ['quickly', 'briefly', 'again', 'today'])}$1`);
}

/** Replaces `{t}` (and `{T}`, capitalized) with `value`. */
export function fill(frame: string, value: string): string {
  return frame.replace('{T}', capitalize(value)).replace('{t}', value);
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

export function weighted<T>(rng: Rng, items: readonly [T, number][]): T {
  const total = items.reduce((sum, [, w]) => sum + w, 0);
  let r = rng.next() * total;
  for (const [item, w] of items) {
    r -= w;
    if (r < 0) return item;
  }
  return (items.at(-1) as [T, number])[0];
}

// ---------------------------------------------------------------------------------------------------
// Instruction replies

/** `self-instruct`: continues "N." with items N…16 (the stop sequence "\n16" ends it at 15). */
export function numberedList(prompt: string, rng: Rng, noise: number): string {
  const demos = numberedDemos(prompt);
  const next = Number(/(\d+)\.\s*$/.exec(prompt)?.[1] ?? demos.length + 1);
  let text = '';
  for (let n = next; n <= 16; n++) {
    const task = newTask(rng, demos, noise);
    if (n === next) text += ` ${task.instruction}`;
    // A number without ". " after it: the paper's split leaves this item glued to the one before.
    else if (task.noise === 'malformed') text += `\n${n}${pick(rng, [')', ' -', ':'])} ${task.instruction}`;
    else text += `\n${n}. ${task.instruction}`;
    // Sometimes the list ends early with a blank line (a stop sequence).
    if (n > next + 2 && rng.next() < 0.04) return `${text}\n\n`;
  }
  return text;
}

/** `alpaca`: continues "N. Instruction:" with blocks N…20, each with its input and output (the stop sequence "\n20" ends it at 19). */
export function alpacaBlocks(prompt: string, rng: Rng, noise: number): string {
  const demos = [...prompt.matchAll(/^\d+\. Instruction: (.+)$/gm)].map((m) => m[1] ?? '');
  const next = Number(/(\d+)\. Instruction:\s*$/.exec(prompt)?.[1] ?? demos.length + 1);
  let text = '';
  for (let n = next; n <= 20; n++) {
    const task = newTask(rng, demos, noise);
    const [instance] = makeInstances(
      task.instruction,
      looksLikeClassification(task.instruction),
      rng,
      noise,
      1,
    );
    const input = instance?.input ? instance.input : '<noinput>';
    const output = instance?.output ?? '';
    const head = n === next ? ` ${task.instruction}` : `${n}. Instruction: ${task.instruction}`;
    // A malformed block lacks its Input line, so it does not split into 7 parts.
    const body =
      task.noise === 'malformed'
        ? `\n${n}. Output:\n${output}`
        : `\n${n}. Input:\n${input}\n${n}. Output:\n${output}`;
    text += `${n === next ? '' : '\n'}${head}${body}\n###`;
  }
  return text;
}

/** `default`: a JSON object with the requested number of tasks, sometimes fenced or introduced. */
export function jsonTasks(prompt: string, rng: Rng, noise: number): string {
  const demos = numberedDemos(prompt);
  const count = Number(/\b(\d+) new tasks\b/.exec(prompt)?.[1] ?? 10);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const task = newTask(rng, demos, noise);
    let clf = looksLikeClassification(task.instruction);
    if (rng.next() < noise * 0.1) clf = !clf;
    const instruction = JSON.stringify(task.instruction);
    if (task.noise === 'malformed') {
      lines.push(
        pick(rng, [
          `{"task": ${instruction}, "is_classification": ${clf}}`,
          `{"instruction": ${instruction}, "is_classification": "${clf ? 'yes' : 'no'}"}`,
          `{"instruction": ${instruction}, "is_classification": ${clf ? 'tru' : 'fals'}}`,
          `{"instruction": null}`,
          instruction,
        ]),
      );
    } else {
      lines.push(`{"instruction": ${instruction}, "is_classification": ${clf}}`);
    }
  }
  const json = `{"tasks": [\n  ${lines.join(',\n  ')}\n]}`;
  const r = rng.next();
  if (r < 0.15) return `\`\`\`json\n${json}\n\`\`\``;
  if (r < 0.25) return `Here are ${count} new tasks:\n${json}`;
  return json;
}

// ---------------------------------------------------------------------------------------------------
// Classification

/** Whether an instruction reads like a classification task (names its labels, or asks whether). */
function looksLikeClassification(instruction: string): boolean {
  return (
    labelsIn(instruction) !== null ||
    /^(classify|categorize|label|decide (whether|if)|determine (whether|if)|tell (me )?(whether|if)|detect whether|is the following|does the following)\b/i.test(
      instruction,
    )
  );
}

/** One label in a list, with its article if it has one. */
const LABEL = String.raw`(?:(?:an?|the)\s+)?[A-Za-z][\w-]*`;

/** The labels an instruction names, as in "positive, negative, or neutral" or "a fact or an opinion". */
function labelsIn(instruction: string): string[] | null {
  const matches = [
    ...instruction.matchAll(new RegExp(String.raw`\b(${LABEL}(?:,\s*${LABEL})*,?\s+or\s+${LABEL})`, 'g')),
  ];
  const last = matches.at(-1)?.[1];
  if (!last) return null;
  const labels = last
    .split(/,?\s+or\s+|,\s*/)
    .map((label) => label.replace(/^(an?|the)\s+/i, '').trim())
    .filter((label) => label !== '' && !STOP_LABELS.has(label.toLowerCase()));
  return labels.length >= 2 ? labels.map(capitalize) : null;
}

const STOP_LABELS = new Set(['is', 'are', 'the', 'and', 'it', 'this', 'that', 'more', 'less', 'one', 'two']);

/** The model's take on "is it classification?": the heuristic, wrong now and then. */
function classificationGuess(instruction: string, rng: Rng, noise: number): boolean {
  const answer = looksLikeClassification(instruction);
  return rng.next() < noise * 0.1 ? !answer : answer;
}

/** The paper's question: " Yes" or " No", now and then an answer the parser can't read. */
export function yesNo(prompt: string, rng: Rng, noise: number): string {
  const answer = classificationGuess(lastTask(prompt, /\nIs it classification\?\s*$/), rng, noise);
  return rng.next() < noise * 0.1 ? ' Maybe' : answer ? ' Yes' : ' No';
}

/** `default`: `{"is_classification": …}`, now and then a bare Yes or No instead of JSON. */
export function jsonFlag(prompt: string, rng: Rng, noise: number): string {
  const answer = classificationGuess(taskLine(prompt), rng, noise);
  return rng.next() < noise * 0.1 ? (answer ? 'Yes' : 'No') : `{"is_classification": ${answer}}`;
}

// ---------------------------------------------------------------------------------------------------
// Instances

interface DraftInstance {
  input: string;
  output: string;
}

/** Instances for an instruction: one per label for classification, input-first otherwise; some faulty. */
function makeInstances(
  instruction: string,
  clf: boolean,
  rng: Rng,
  noise: number,
  howMany = 2 + rng.int(3),
): DraftInstance[] {
  // An evolution that overreached (Evol-Instruct): every answer is an apology or empty of content.
  const failure = failureOf(instruction);
  if (failure !== undefined) {
    return Array.from({ length: howMany }, () => ({ input: '', output: failedOutput(failure, rng) }));
  }
  const topic = topicOf(instruction, rng);
  const field = inputKind(instruction);
  const out: DraftInstance[] = [];
  if (clf) {
    const labels = rng.shuffle(labelsIn(instruction) ?? ['Yes', 'No']).slice(0, Math.max(howMany, 2));
    for (const [i, label] of labels.entries()) {
      out.push({ input: field ? makeInput(field, topic, rng, i) : '', output: label });
    }
  } else {
    for (let i = 0; i < howMany; i++) {
      const input = field ? makeInput(field, topic, rng, i) : '';
      out.push({ input, output: makeOutput(instruction, input, topic, rng) });
    }
  }
  const kept = out.slice(0, howMany);
  for (const [i, instance] of kept.entries()) {
    if (rng.next() >= noise) continue;
    const fault = pick(rng, ['colon', 'echo', 'conflict', 'empty'] as const);
    if (fault === 'echo' && instance.input !== '') instance.output = instance.input;
    else if (fault === 'conflict' && i > 0) {
      const before = kept[i - 1] as DraftInstance;
      instance.input = before.input;
      instance.output = clf ? (before.output === 'Yes' ? 'No' : 'Yes') : `${before.output} Also, it depends.`;
    } else if (fault === 'empty') instance.output = '';
    else instance.output = pick(rng, COLON_OUTPUTS);
  }
  return kept;
}

/** The topic of an instruction: the bank's topic it mentions, else its last words. */
export function topicOf(instruction: string, rng: Rng): string {
  const lower = instruction.toLowerCase();
  for (const topic of TOPICS) if (lower.includes(topic.toLowerCase())) return topic;
  const words = lower
    .replace(/[^a-z0-9 -]+/g, ' ')
    .trim()
    .split(/\s+/)
    .filter((w) => w.length > 3);
  return words.length >= 2 ? words.slice(-2).join(' ') : pick(rng, TOPICS);
}

/** What kind of input an instruction works on, or `null` when it needs none. */
function inputKind(instruction: string): string | null {
  if (!/\b(following|given|below|provided|this|these)\b/i.test(instruction)) return null;
  return (
    /\b(sentence|paragraph|article|text|comment|review|headline|claim|statement|question|argument|list|steps|notes|email|passage|tweet|words|number)s?\b/i
      .exec(instruction)?.[1]
      ?.toLowerCase() ?? 'text'
  );
}

function makeInput(kind: string, topic: string, rng: Rng, variant: number): string {
  const start = rng.int(SENTENCES.length);
  const sentence = (k: number) => fill(SENTENCES[(start + k) % SENTENCES.length] ?? '', topic);
  switch (kind) {
    case 'paragraph':
    case 'article':
    case 'text':
    case 'passage':
    case 'notes':
    case 'email':
    case 'review':
      return `${sentence(variant)} ${sentence(variant + 3)} ${sentence(variant + 7)}`;
    case 'list':
    case 'steps':
    case 'words':
      return rng
        .shuffle(LIST_ITEMS)
        .slice(0, 4)
        .map((item) => fill(item, topic))
        .join('; ');
    case 'number':
      return String(10 + rng.int(990));
    case 'question':
      return fill(pick(rng, QUESTIONS), topic);
    default:
      return sentence(variant);
  }
}

function makeOutput(instruction: string, input: string, topic: string, rng: Rng): string {
  if (/^(list|give|suggest|brainstorm|recommend|generate|name|outline)\b/i.test(instruction)) {
    return rng
      .shuffle(LIST_ITEMS)
      .slice(0, 3)
      .map((item, i) => `${i + 1}. ${capitalize(fill(item, topic))}.`)
      .join('\n');
  }
  if (input !== '' && /^(summarize|shorten)\b/i.test(instruction))
    return input.split('. ')[0]?.replace(/\.?$/, '.') ?? input;
  const first = pick(rng, ANSWERS);
  let second = pick(rng, ANSWERS);
  if (second === first) second = ANSWERS[(ANSWERS.indexOf(first) + 1) % ANSWERS.length] ?? first;
  return `${fill(first, topic)} ${fill(second, topic)}`;
}

/** Input-first "Example N / Input / Output" blocks, or a bare "Output:" when the task needs no input. */
export function exampleBlocks(prompt: string, rng: Rng, noise: number): string {
  const instruction = lastTask(prompt, /\n$/);
  const instances = makeInstances(instruction, false, rng, noise);
  const field = inputKind(instruction);
  if (!field && rng.next() < 0.5) return `Output: ${instances[0]?.output ?? ''}\n\n`;
  const name = field && rng.next() < 0.3 ? capitalize(field) : 'Input';
  return `${instances
    .map(
      (inst, i) =>
        `Example ${i + 1}\n${inst.input === '' ? '' : `${name}: ${inst.input}\n`}Output: ${inst.output}`,
    )
    .join('\n')}\n\n`;
}

/** Output-first "Class label:" blocks, each followed by its input when the task has one. */
export function classLabelBlocks(prompt: string, rng: Rng, noise: number): string {
  const instruction = lastTask(prompt, /\n$/);
  const instances = makeInstances(instruction, true, rng, noise);
  const name = capitalize(inputKind(instruction) ?? 'input');
  return `${instances
    .map((inst) => `Class label: ${inst.output}${inst.input === '' ? '' : `\n${name}: ${inst.input}`}`)
    .join('\n')}\n\n`;
}

/** `default`: `{"instances": [...]}`, the label first for classification, sometimes with a broken item. */
export const jsonInstances =
  (clf: boolean): ReplyWriter =>
  (prompt, rng, noise) => {
    const items = makeInstances(taskLine(prompt), clf, rng, noise).map(({ input, output }) =>
      clf
        ? `{"output": ${JSON.stringify(output)}, "input": ${JSON.stringify(input)}}`
        : `{"input": ${JSON.stringify(input)}, "output": ${JSON.stringify(output)}}`,
    );
    if (rng.next() < noise * 0.2) items.push(`{"input": ${JSON.stringify(pick(rng, TOPICS))}}`);
    const json = `{"instances": [\n  ${items.join(',\n  ')}\n]}`;
    return rng.next() < 0.15 ? `\`\`\`json\n${json}\n\`\`\`` : json;
  };

// ---------------------------------------------------------------------------------------------------
// Judge

/**
 * Chances of a yes to the audit questions, near the Self-Instruct paper's audit of its generated tasks
 * (92% valid instructions, 79% appropriate inputs, 58% correct outputs), and lower when the task shows
 * a defect a reviewer would see at once.
 */
const AUDIT = {
  valid: 0.93,
  /** An instruction of five words or fewer is often too vague to be a task. */
  shortValid: 0.6,
  input: 0.82,
  /** The instruction points at an input ("the following …") that its examples leave empty. */
  missingInput: 0.3,
  output: 0.62,
  /** The examples all give the same output for different inputs. */
  sameOutput: 0.3,
  /** A long output (a backtranslated passage) that shares no content word with the instruction. */
  offTopic: 0.08,
};

const REASONS = {
  good: [
    'The instruction is clear and every output correctly answers it.',
    'A well-posed task whose examples are realistic and correctly solved.',
    'Clear instruction, appropriate inputs and correct, complete outputs.',
  ],
  output: [
    'The instruction is fine, but some outputs are incomplete or not quite correct.',
    'The outputs are generic and do not fully answer the instruction for their inputs.',
  ],
  input: [
    'The inputs do not fit the instruction well, although the outputs follow it.',
    'The instruction refers to an input that the examples do not provide properly.',
  ],
  invalid: [
    'The instruction is too vague to describe a task an assistant could carry out.',
    'The instruction does not describe a valid, feasible text task.',
  ],
  several: [
    'Both the inputs and the outputs have problems, so the task teaches little.',
    'Several parts of the task are wrong: it would be a poor training example.',
  ],
};

/** The instruction and the examples' inputs and outputs of a judge prompt. */
function judgedTask(prompt: string): { instruction: string; inputs: string[]; outputs: string[] } {
  const instruction = /^Instruction: (.*)$/m.exec(prompt)?.[1] ?? '';
  return {
    instruction,
    inputs: [...prompt.matchAll(/^Input: (.*)$/gm)].map((m) => m[1] ?? ''),
    outputs: [...prompt.matchAll(/^Output: (.*)$/gm)].map((m) => m[1] ?? ''),
  };
}

/** The outputs of a judge prompt, whole (each may span lines), as one text. */
function judgedOutputs(prompt: string): string {
  return [...prompt.matchAll(/^Output: ([\s\S]*?)(?=\n\nExample \d+\n|\n\nAudit this task|$)/gm)]
    .map((m) => m[1] ?? '')
    .join('\n');
}

/**
 * An output long enough to be a passage (200 characters or more) that shares no content word with the
 * instruction: a backtranslated instruction that does not fit its passage, which a judge notices.
 */
function offTopicOutput(prompt: string, instruction: string): boolean {
  const outputs = judgedOutputs(prompt);
  if (outputs.length < 200) return false;
  const said = new Set(contentWords(outputs));
  return !contentWords(instruction).some((word) => said.has(word));
}

/**
 * The judge's verdict: the three audit answers drawn at the paper's rates (lower for visible defects),
 * a score that follows them (all yes: 4 or 5; one no: 3, sometimes 2; two: 2; three, or an invalid
 * instruction: 1 or 2) and a reason. Now and then (`noise` × 0.2) a verdict the parser can't read:
 * prose, a score out of range, or JSON cut short.
 */
export function judgeVerdict(prompt: string, rng: Rng, noise: number): string {
  const { instruction, inputs, outputs } = judgedTask(prompt);
  const wantsInput = inputKind(instruction) !== null;
  const short = instruction.trim().split(/\s+/).length <= 5;
  const missingInput = wantsInput && inputs.some((input) => input === '(none)');
  const sameOutput = outputs.length > 1 && new Set(outputs).size === 1 && new Set(inputs).size > 1;
  const offTopic = offTopicOutput(prompt, instruction);
  const valid = rng.next() < (short ? AUDIT.shortValid : AUDIT.valid);
  const input = rng.next() < (missingInput ? AUDIT.missingInput : AUDIT.input);
  const output = rng.next() < (sameOutput ? AUDIT.sameOutput : offTopic ? AUDIT.offTopic : AUDIT.output);
  const noes = [valid, input, output].filter((yes) => !yes).length;
  let score: number;
  let reason: string;
  if (!valid) {
    score = noes === 3 ? 1 : 1 + rng.int(2);
    reason = pick(rng, REASONS.invalid);
  } else if (noes === 0) {
    score = rng.next() < 0.45 ? 5 : 4;
    reason = pick(rng, REASONS.good);
  } else if (noes === 1) {
    score = rng.next() < 0.15 ? 2 : 3;
    reason = pick(rng, output ? REASONS.input : REASONS.output);
  } else {
    score = 2;
    reason = pick(rng, REASONS.several);
  }
  const json = `{"instruction_valid": ${valid}, "input_appropriate": ${input}, "output_correct": ${output}, "score": ${score}, "reason": ${JSON.stringify(reason)}}`;
  if (rng.next() < noise * 0.2) {
    switch (pick(rng, ['prose', 'range', 'cut'] as const)) {
      case 'prose':
        return `Overall this task deserves a ${score} out of 5. ${reason}`;
      case 'range':
        return json.replace(`"score": ${score}`, `"score": ${score * 2}`);
      case 'cut':
        return json.slice(0, Math.floor(json.length * (0.3 + 0.5 * rng.next())));
    }
  }
  return rng.next() < 0.1 ? `\`\`\`json\n${json}\n\`\`\`` : json;
}

// ---------------------------------------------------------------------------------------------------
// Explained responses (the teacher of `responseStyle: "explained"`)

/** How the faults of a noisy teacher reply are shared out (a reply cut short is `offline.ts`'s). */
const TEACH_NOISE: readonly ['empty' | 'refusal' | 'bare', number][] = [
  ['empty', 0.2],
  ['refusal', 0.4],
  ['bare', 0.4],
];

/**
 * The teacher's explained answer to a user turn (the instruction, then the input after a blank line):
 * the task restated, a look at the input when there is one, a reasoning step about its topic, then the
 * answer ("So the answer is: …"), a label of the instruction's for a classification task. Now and then
 * (`noise` × 0.4) a reply that can't be used: empty, a refusal, or the bare answer with no reasoning.
 */
export function explainedAnswer(prompt: string, rng: Rng, noise: number): string {
  const [instruction = '', ...rest] = prompt.split('\n\n');
  const input = rest.join('\n\n').trim();
  const topic = topicOf(instruction, rng);
  const labels = labelsIn(instruction);
  const answer = labels ? pick(rng, labels) : makeOutput(instruction, input, topic, rng);
  if (rng.next() < noise * 0.4) {
    switch (weighted(rng, TEACH_NOISE)) {
      case 'empty':
        return '';
      case 'refusal':
        return "I'm sorry, but I can't help with that request.";
      case 'bare':
        // The answer alone, as a model that ignored the system message would write it: a few words.
        return answer.split(/\s+/).slice(0, 6).join(' ');
    }
  }
  const steps = [
    `First, I read the task: "${instruction.trim()}". It asks for ${labels ? `one of the labels ${labels.join(', ')}` : `an answer about ${topic}`}.`,
    ...(input === ''
      ? []
      : [`Next, I look at the input: "${input.length > 120 ? `${input.slice(0, 117)}...` : input}".`]),
    `${capitalize(fill(pick(rng, SENTENCES), topic))} This is the key point for the answer, so I use it to decide.`,
    labels
      ? `The other labels (${labels.filter((label) => label !== answer).join(', ')}) do not fit as well, because the text points to ${answer.toLowerCase()}.`
      : `I check that the answer covers what the task asks and nothing more.`,
  ];
  const reasoning = steps.map((step, i) => `Step ${i + 1}: ${step}`).join('\n');
  return `${reasoning}\n\nSo the answer is: ${answer}`;
}
