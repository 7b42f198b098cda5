/**
 * The offline model: a deterministic stand-in for an LLM, so that the whole pipeline can be tried with
 * no network and no model. Its reply is a pure function of the seed and the request.
 *
 * It recognizes the requests the three profiles render (by `stage`, `kind`, `json` and the prompt's
 * shape) and answers in the text format a real model would: a continuation of a numbered list, Alpaca's
 * `###` blocks, JSON objects, Yes/No, Example/Input/Output blocks, Class label blocks. New tasks are
 * made by recombining the demonstrations in the prompt with a built-in bank: the verb of one
 * demonstration (or its opening words) applied to a topic, sometimes with a constraint, an audience or
 * a format, so that most of them pass a ROUGE-L gate of 0.7 and some do not.
 *
 * At a rate set by `noise` it makes the mistakes real models make and the filters exist for:
 * near-duplicates of a demonstration, banned words ("Draw a graph of …", "Write a program that …"),
 * too-short items, items starting with punctuation or a non-ASCII character, malformed lines or JSON
 * items, replies cut by the token limit; and among instances, outputs ending with ":", inputs equal to
 * their output, empty outputs and conflicting outputs for one input. Stop sequences and `maxTokens` are
 * honoured (a reply longer than `maxTokens` comes back cut, with `finish: 'length'`).
 *
 * Token counts are estimated as ceil(characters / 4).
 */
import { createHash } from 'node:crypto';
import type { ModelReply, ModelRequest, TextModel } from '../ports.ts';
import { createRng, type Rng } from '../random.ts';

/** Options of the offline model. */
export interface OfflineModelOptions {
  /** Changes every reply; the same seed and request always give the same reply. @default 'offline' */
  seed?: string;
  /** Share of items (tasks, instances) that are deliberately faulty, in [0, 1]. @default 0.15 */
  noise?: number;
}

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

/** Share of replies (of the generation stages) cut at a random point, per unit of noise. */
const TRUNCATION_PER_NOISE = 0.2;

/** A deterministic, offline stand-in for a text model (see the module comment). */
export class OfflineModel implements TextModel {
  readonly id = 'offline';
  readonly #seed: string;
  readonly #noise: number;

  constructor({ seed = 'offline', noise = 0.15 }: OfflineModelOptions = {}) {
    if (!(noise >= 0 && noise <= 1)) throw new RangeError(`noise must be in [0, 1], got ${noise}`);
    this.#seed = seed;
    this.#noise = noise;
  }

  async generate(request: ModelRequest): Promise<ModelReply> {
    const started = performance.now();
    const key = JSON.stringify([
      this.#seed,
      this.#noise,
      request.stage,
      request.kind,
      request.system ?? '',
      request.prompt,
      request.temperature,
      request.topP,
      request.maxTokens,
      request.stop ?? [],
      request.json ?? false,
    ]);
    const rng = createRng(createHash('sha256').update(key).digest('base64'));
    const draft = compose(request, rng, this.#noise);
    const { text, finish } = limit(draft, request, rng, this.#noise);
    return {
      text,
      finish,
      usage: {
        inputTokens: estimateTokens((request.system ?? '') + request.prompt),
        outputTokens: estimateTokens(text),
        estimated: true,
      },
      latencyMs: performance.now() - started,
      model: this.id,
    };
  }
}

/** A rough token count: about four characters a token for English text. */
function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** The reply a model would write if nothing stopped it, and whether it may be cut at random. */
interface Draft {
  text: string;
  /** Generation replies are sometimes cut at random; one-word answers are not. */
  mayTruncate: boolean;
}

/** Applies the stop sequences, then the token limit, then (sometimes) a random cut. */
function limit(
  draft: Draft,
  request: ModelRequest,
  rng: Rng,
  noise: number,
): Pick<ModelReply, 'text' | 'finish'> {
  let text = draft.text;
  for (const stop of request.stop ?? []) {
    const at = stop === '' ? -1 : text.indexOf(stop);
    if (at >= 0) text = text.slice(0, at);
  }
  const maxChars = request.maxTokens * 4;
  if (text.length > maxChars) return { text: text.slice(0, maxChars), finish: 'length' };
  if (draft.mayTruncate && text.length > 40 && rng.next() < noise * TRUNCATION_PER_NOISE) {
    // The model would have gone on past the limit: the reply ends mid-item.
    const at = Math.floor(text.length * (0.5 + 0.45 * rng.next()));
    return { text: text.slice(0, at), finish: 'length' };
  }
  return { text, finish: 'stop' };
}

/** Dispatches on the request's stage and shape. */
function compose(request: ModelRequest, rng: Rng, noise: number): Draft {
  const chat = request.kind === 'chat' || request.json === true;
  const prompt = request.prompt;
  switch (request.stage) {
    case 'generate-instructions':
      if (chat) return { text: jsonTasks(prompt, rng, noise), mayTruncate: true };
      if (/Instruction:\s*$/.test(prompt))
        return { text: alpacaBlocks(prompt, rng, noise), mayTruncate: true };
      return { text: numberedList(prompt, rng, noise), mayTruncate: true };
    case 'classify': {
      const instruction = chat ? taskLine(prompt) : lastTask(prompt, /\nIs it classification\?\s*$/);
      let answer = looksLikeClassification(instruction);
      if (rng.next() < noise * 0.1) answer = !answer;
      if (chat) {
        const text = rng.next() < noise * 0.1 ? (answer ? 'Yes' : 'No') : `{"is_classification": ${answer}}`;
        return { text, mayTruncate: false };
      }
      return { text: rng.next() < noise * 0.1 ? ' Maybe' : answer ? ' Yes' : ' No', mayTruncate: false };
    }
    case 'generate-instances': {
      if (chat) {
        const instruction = taskLine(prompt);
        const clf = /classification task/i.test(prompt);
        return { text: jsonInstances(instruction, clf, rng, noise), mayTruncate: true };
      }
      const instruction = lastTask(prompt, /\n$/);
      const clf = prompt.includes('Class label:');
      const text = clf ? classLabelBlocks(instruction, rng, noise) : exampleBlocks(instruction, rng, noise);
      return { text, mayTruncate: true };
    }
  }
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
function cleanTask(rng: Rng, demos: readonly string[]): string {
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
function fill(frame: string, value: string): string {
  return frame.replace('{T}', capitalize(value)).replace('{t}', value);
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

function weighted<T>(rng: Rng, items: readonly [T, number][]): T {
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
function numberedList(prompt: string, rng: Rng, noise: number): string {
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
function alpacaBlocks(prompt: string, rng: Rng, noise: number): string {
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
function jsonTasks(prompt: string, rng: Rng, noise: number): string {
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
function topicOf(instruction: string, rng: Rng): string {
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
function exampleBlocks(instruction: string, rng: Rng, noise: number): string {
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
function classLabelBlocks(instruction: string, rng: Rng, noise: number): string {
  const instances = makeInstances(instruction, true, rng, noise);
  const name = capitalize(inputKind(instruction) ?? 'input');
  return `${instances
    .map((inst) => `Class label: ${inst.output}${inst.input === '' ? '' : `\n${name}: ${inst.input}`}`)
    .join('\n')}\n\n`;
}

/** `default`: `{"instances": [...]}`, the label first for classification, sometimes with a broken item. */
function jsonInstances(instruction: string, clf: boolean, rng: Rng, noise: number): string {
  const items = makeInstances(instruction, clf, rng, noise).map(({ input, output }) =>
    clf
      ? `{"output": ${JSON.stringify(output)}, "input": ${JSON.stringify(input)}}`
      : `{"input": ${JSON.stringify(input)}, "output": ${JSON.stringify(output)}}`,
  );
  if (rng.next() < noise * 0.2) items.push(`{"input": ${JSON.stringify(pick(rng, TOPICS))}}`);
  const json = `{"instances": [\n  ${items.join(',\n  ')}\n]}`;
  return rng.next() < 0.15 ? `\`\`\`json\n${json}\n\`\`\`` : json;
}

// ---------------------------------------------------------------------------------------------------
// The bank

const list = (text: string): string[] =>
  text
    .split(/\s*[|\n]\s*/)
    .map((s) => s.trim())
    .filter((s) => s !== '');

/** Subjects and domains a new task is about. */
const TOPICS = list(`
  home composting | urban beekeeping | sourdough baking | marathon training | remote work | the French Revolution
  quantum computing | personal budgeting | houseplant care | electric cars | the history of jazz | climate adaptation
  public libraries | volcanoes | coral reefs | space tourism | medieval castles | the stock market | renewable energy
  recycling plastics | job interviews | learning a second language | time management | online privacy
  password security | meal prepping | vegetarian cooking | coffee brewing | tea ceremonies | chess openings
  board game design | birdwatching | rock climbing | camping safety | first aid | sleep hygiene | meditation
  journaling | public speaking | negotiating a salary | starting a small business | crowdfunding | freelancing
  customer service | supply chains | inflation | cryptocurrency | credit scores | retirement savings
  buying a first home | renting an apartment | moving to a new city | raising a puppy | cat behavior | aquarium fish
  backyard chickens | vegetable gardening | pruning fruit trees | soil health | honey production | cheese making
  wine tasting | craft beer | the Roman Empire | ancient Egypt | the Silk Road | the printing press
  the Industrial Revolution | the Renaissance | the Cold War | the moon landing | the early internet | early aviation
  the Olympic Games | soccer tactics | basketball statistics | tennis footwork | swimming technique | cycling commutes
  yoga for beginners | strength training | posture at work | ergonomic desks | standing meetings | open-plan offices
  four-day work weeks | team retrospectives | code reviews | unit testing | database indexing | cloud computing costs
  open-source licenses | machine learning bias | chatbots in customer support | spreadsheet formulas | email etiquette
  writing cover letters | resume gaps | mentoring junior staff | remote onboarding | conflict resolution
  active listening | emotional intelligence | habit formation | procrastination | minimalism | decluttering a closet
  fast fashion | thrift shopping | repairing clothes | knitting | woodworking | pottery | origami | calligraphy
  poetry slams | short story writing | screenwriting | stand-up comedy | improv theater | opera | ballet | street art
  museum curation | film photography | amateur astronomy | black holes | the water cycle | plate tectonics
  earthquakes | hurricanes | tornado safety | wildfire prevention | drought-resistant landscaping
  rainwater harvesting | solar panels | heat pumps | home insulation | smart thermostats | tiny houses
  urban planning | bike lanes | public transit | high-speed rail | airport security | jet lag | travel insurance
  packing light | solo travel | language exchange apps | hostels | national parks | hiking etiquette
  wildlife conservation | endangered species | invasive plants | pollinator decline | ocean plastic
  carbon footprints | electric scooters | car maintenance | tire pressure | road trip planning | parallel parking
  teenage drivers | homework help | school uniforms | standardized testing | homeschooling | early childhood reading
  multiplication tables | fractions | probability puzzles | prime numbers | geometry proofs | statistics in the news
  compound interest | mortgage rates | small claims court | jury duty | voting procedures | local elections
  volunteering | charity fundraising | neighborhood watch programs | community gardens | food banks | food waste
  grocery shopping on a budget | nutrition labels | hydration | vitamin D | seasonal allergies | the common cold
  handwashing | vaccines | dental hygiene | eye strain | hearing protection | noise pollution | light pollution
  screen time for kids | social media habits | online misinformation | fact-checking | citing sources | plagiarism
  academic writing | note-taking methods | speed reading | memory techniques | studying for exams
  college applications | student loans | scholarships | gap years | internships | career changes | networking events
  workplace burnout | parental leave | caring for elderly parents | grief | friendship in adulthood | wedding planning
  birthday parties | hosting a dinner party | table manners | gift giving | holiday traditions | New Year's resolutions
  daylight saving time | the history of calendars | mechanical clocks | suspension bridges | skyscrapers | tunnels
  dams | lighthouses | submarines | sailing | kayaking | fishing regulations | ocean tides | rainforests | deserts
  glaciers | mountain weather | caves | wild mushrooms | foraging | herbal tea | spices | fermentation
  chocolate making | pizza dough | ramen | dumplings | tacos | pasta sauces | baking at high altitude
  kitchen knife skills | food safety | leftovers | school lunches | picnic planning | farmers markets | local history
  family history research | archaeology | dinosaurs | fossils | evolution | genetics | the human heart
  the immune system | sleep cycles | dreams | color theory | typography | logo design | user interface design
  web accessibility | slow websites | search engines | spam emails | phishing | two-factor authentication | backups
  smartphone batteries | repairing electronics | electronic waste | home 3D printing | robotics kits | drones
  model trains | amateur radio | podcasting | blogging | newsletters | book clubs | tool libraries | car sharing
  coworking spaces | small talk | apologizing | giving feedback | receiving criticism | saying no
  asking for a raise | running effective meetings | writing agendas | project deadlines | estimating work
  risk management | quality control | inventory management | restaurant reviews | hotel complaints
  airline delays | lost luggage | customer loyalty programs | pricing strategies | advertising to teenagers
  brand names | product recalls | warranty claims | space debris | the metric system | tipping customs
  volunteer firefighters | lifeguard training | sign language | braille | left-handedness | twins
  bilingual children | sibling rivalry | chores for kids | allowance money | school field trips | science fairs
`);

/** Task frames; `{t}` is the topic. The first word is the verb matched against a demonstration's. */
const FRAMES = list(`
  Write a short story about {t} that ends with a surprising twist.
  Write a haiku about {t}.
  Write a persuasive paragraph arguing for more public investment in {t}.
  Write a formal email to a colleague proposing a lunchtime workshop on {t}.
  Write a limerick about {t}.
  Write a product description for a new gadget that helps with {t}.
  Explain {t} to someone who has never heard of it.
  Explain the main challenges of {t} in plain language.
  Explain why {t} matters in everyday life.
  List five common misconceptions about {t}.
  List the pros and cons of {t}.
  List three questions a beginner might ask about {t}.
  Describe a typical day of someone whose job revolves around {t}.
  Describe how {t} has changed over the last fifty years.
  Summarize the following article about {t} in two sentences.
  Summarize the key ideas behind {t} for a newsletter.
  Compare two different approaches to {t} and say which one you prefer.
  Compare {t} today with how it was a century ago.
  Suggest a catchy title for a blog post about {t}.
  Suggest five interview questions for a job related to {t}.
  Recommend three books for someone interested in {t}.
  Recommend a weekend plan for a family curious about {t}.
  Identify the main argument in the following paragraph about {t}.
  Identify two weaknesses in the following argument about {t}.
  Extract all the numbers mentioned in the following text about {t}.
  Extract the names of people mentioned in the following passage about {t}.
  Generate a list of search keywords for someone researching {t}.
  Generate three discussion questions for a class on {t}.
  Create a quiz with three multiple-choice questions about {t}.
  Create a simple four-week plan for learning about {t}.
  Give three tips for a beginner in {t}.
  Give an example of how {t} affects small businesses.
  Rewrite the following sentence about {t} in a more formal tone.
  Rewrite the following paragraph about {t} so that a child can understand it.
  Translate the following sentence about {t} into Spanish.
  Answer the following question about {t} in one sentence.
  Brainstorm names for a podcast about {t}.
  Outline a five-minute presentation on {t}.
  Predict how {t} might change in the next decade.
  Design a one-hour beginner workshop on {t}.
  Plan a one-day event that raises awareness of {t}.
  What are the biggest myths about {t}?
  How would you explain {t} to a ten-year-old?
  Why do people disagree about {t}?
  What skills does a person need to get started with {t}?
  Find the odd one out in the following list of words related to {t}.
  Sort the following steps related to {t} into a logical order.
  Rate the following argument about {t} on a scale from 1 to 5 and justify the score.
  Correct the grammar in the following sentence about {t}.
  Edit the following paragraph about {t} to make it more concise.
  Convert the following notes about {t} into a short paragraph.
  Estimate the yearly budget of a small club devoted to {t} and show your reasoning.
  Propose a research question about {t} that a student could answer in a month.
  Argue against a popular opinion about {t} in one paragraph.
  Imagine you are a tour guide and introduce {t} to a group of visitors.
  Create a dialogue between two friends who disagree about {t}.
  Offer advice to a friend who feels overwhelmed by {t}.
  Name three careers connected to {t} and what each involves.
  Paraphrase the following sentence about {t} without changing its meaning.
  Come up with a slogan for a campaign about {t}.
  Evaluate the following plan for {t} and point out one risk.
  Draft a short speech that opens a conference on {t}.
  Provide a step-by-step guide for getting started with {t}.
  Share a fun fact about {t} and explain why it is surprising.
  Respond to a customer who complains about a service related to {t}.
  Compare {t} with {u} and name one thing they have in common.
  Explain what {t} and {u} have in common.
  Write a short story that connects {t} and {u}.
  Invent a holiday that celebrates both {t} and {u}.
  Describe how lessons from {t} could improve {u}.
  Suggest a club activity that combines {t} with {u}.
  Propose a debate motion that links {t} and {u}, with one argument for each side.
  Write a diary entry of someone who discovers {t} for the first time.
  Write a thank-you note to a mentor who taught you about {t}.
  Write the opening paragraph of a mystery novel set in the world of {t}.
  Explain the difference between a myth and a fact about {t}, with an example of each.
  List the equipment someone needs for {t}, from most to least important.
  Describe the ideal person to lead a team working on {t}.
  Summarize the arguments for and against {t}.
  Suggest a simple experiment that tests a common claim about {t}.
  Give a one-sentence definition of {t} and then expand it into a paragraph.
  Create a riddle whose answer is related to {t}.
  Create a packing checklist for a weekend trip centered on {t}.
  Generate five hashtags for a campaign about {t}.
  Rewrite the following tweet about {t} to sound more optimistic.
  Answer the following customer question about {t} politely.
  How can a small town benefit from {t}?
  What would happen if {t} disappeared tomorrow?
  Which three facts about {t} would surprise most people?
`);

/** Classification frames: `{o}` a kind of text (after `{a}`, its article), `{t}` a topic, `{l}` the labels. */
const CLF_FRAMES = list(`
  Classify the following {o} about {t} as {l}. | Decide whether the following {o} about {t} is {l}.
  Given {a} {o} about {t}, tell whether it is {l}. | Label each {o} about {t} as {l}.
  Read the following {o} about {t} and say whether it is {l}. | Is the following {o} about {t} {l}?
  Determine if {a} {o} about {t} is {l}. | Categorize the given {o} about {t} as {l}.
`);

const CLF_OBJECTS = list(`
  statement | comment | review | headline | tweet | sentence | question | claim | customer message | forum post
  news snippet | product description | paragraph | text message | survey answer | email subject line | slogan
`);

const LABEL_SETS = list(`
  true or false | positive, negative, or neutral | a fact or an opinion | formal or informal | easy, medium, or hard
  supportive, critical, or neutral | relevant or irrelevant | serious or humorous | helpful or unhelpful
  safe or unsafe | biased or balanced | beginner, intermediate, or advanced | spam or legitimate
  a question, a command, or a statement | polite or rude | urgent or routine | accurate or misleading
  optimistic or pessimistic | clear or confusing | likely or unlikely
`);

const CLF_NOTES = list(`
  Answer with the label only. | Explain your choice in one sentence. | If it is ambiguous, choose the closest label.
  Give a short reason for your answer. | Reply with a single word.
`);

const FRAMES_BY_VERB = new Map<string, string[]>();
for (const frame of FRAMES) {
  const verb = frame.split(' ')[0]?.toLowerCase() ?? '';
  FRAMES_BY_VERB.set(verb, [...(FRAMES_BY_VERB.get(verb) ?? []), frame]);
}

const CONSTRAINTS = list(`
  Keep it under {n} words. | Use exactly {k} sentences. | Include {k} concrete examples. | Mention {k} sources of cost.
  Keep it under 80 words. | Use no more than three sentences. | Avoid technical jargon.
  Include at least one concrete example. | Use a friendly, conversational tone. | Make it sound professional.
  Address the reader directly. | Mention one common mistake to avoid. | End with a question for the reader.
  Do not use the word "very". | Keep each point to a single line. | Start with a surprising fact.
  Add a one-sentence summary at the end. | Explain any numbers you use. | Be honest about the downsides.
  Use a humorous tone. | Assume the reader is in a hurry. | Use British spelling. | Avoid the passive voice.
  Number each step. | Limit the answer to 50 words. | Use simple words. | Give a reason for each point.
  Keep the tone neutral. | Mention the cost where it matters.
`);

const NUMBERS = list('30 | 40 | 50 | 60 | 75 | 80 | 100 | 120 | 150 | 200');
const COUNTS = list('two | three | four | five');

/** Openings put before a task (`{t}` is an audience); the task's first letter is lower-cased after them. */
const PREFIXES = list(`
  For a school project, | For a company newsletter, | Without using any jargon, | From the point of view of {t},
  With {t} in mind, | As part of a weekend workshop, | For a podcast episode, | For a community bulletin board,
  In a friendly way, | Speaking to {t}, | For a local radio show, | In the style of a travel guide,
`).map((prefix) => `${prefix} `);

const AUDIENCE_FRAMES = [
  'Make it suitable for {t}.',
  'The reader is {t}.',
  'Aim it at {t}.',
  'Write it for {t}.',
];

const AUDIENCES = list(`
  a high school student | a busy parent | a retired teacher | a first-year university student | a small business owner
  a nurse working night shifts | a software engineer | a ten-year-old | a non-native English speaker
  a city council member | a skeptical investor | a new employee | a group of volunteers | a farmer | a journalist
  a museum visitor | a tourist | a professional chef | a complete beginner | an expert in the field | a grandparent
  a teenager | a college professor | a local newspaper | a hiring manager | a startup founder | a librarian
  a personal trainer | a shy introvert | a family of four
`);

const FORMATS = list(`
  Format the answer as a numbered list. | Present it as a short dialogue between two people.
  Use a table with two columns. | Write it as a single social media post. | Give it a title and three short sections.
  Present the result as a bulleted list. | Write it as a letter. | Answer in the form of a short FAQ.
  Give the answer as a single paragraph. | Present it as a checklist. | Write it as a radio announcement.
`);

/** Tasks a text-only model can't do, or that the paper's filter drops (`{t}` is a topic). */
const BANNED_FRAMES = list(`
  Draw a graph of how interest in {t} has grown. | Describe the image below, which shows {t}.
  Write a program that keeps track of {t}. | Create a map of places known for {t}. | Plot the yearly cost of {t}.
  Look at the picture and explain what it says about {t}. | Summarize the attached file about {t}.
  Go to the nearest library and find a book on {t}. | Make a video that explains {t} to beginners.
  Compose a piece of music inspired by {t}. | Design a flowchart for {t}. | Create a diagram that explains {t}.
  Record an audio guide about {t}.
`);

/** Items of three words or fewer (`{t}` is a word). */
const SHORT_FRAMES = list(
  `Tell a joke. | Name a color. | Define {t}. | Summarize this. | Explain {t}. | Spell {t}. | Translate it.`,
);

/** Bad first characters around a clean task (`{t}` is the task). */
const BAD_STARTS = ['"{t}"', '- {t}', '* {t}', '...{t}', '“{t}”', '¿{t}', 'Élaborez: {t}', '(Optional) {t}'];

/** Words put in place of one word of a demonstration to make a near-duplicate. */
const SWAP_WORDS = list('a | the | some | two | several | this | my | your | simple | new | short | good');

const COLON_OUTPUTS = ['Here are some ideas:', 'The answer is as follows:', 'Sure, here it is:', 'Steps:'];

const SENTENCES = list(`
  Most people underestimate how much time {t} really takes.
  I started learning about {t} last spring, and it changed how I spend my weekends.
  The report claims that interest in {t} doubled over the past five years.
  Our team spent the whole meeting arguing about {t} instead of the budget.
  Honestly, {t} is the most overrated thing I have ever tried.
  Experts agree that {t} requires patience more than talent.
  The local library now offers free evening classes on {t}.
  {T} was barely mentioned in the news until a few years ago.
  My neighbor spends around 200 dollars a year on {t}.
  A survey of 1,200 adults found that 37 percent had never thought about {t}.
  Teachers say that {t} is a great way to get students talking.
  Critics argue that the benefits of {t} are often exaggerated.
`);

const LIST_ITEMS = list(`
  start with the basics of {t} | set a small weekly goal for {t} | find a local group interested in {t}
  keep notes on what you learn about {t} | compare the costs before committing to {t}
  ask an experienced friend about {t} | read one reliable guide to {t} | avoid rushing into {t}
  track your progress with {t} for a month | share what you learned about {t} with someone else
`);

const QUESTIONS = list(`
  What is the most common mistake beginners make with {t}? | How much does {t} usually cost?
  Why did {t} become popular? | Who benefits most from {t}? | When is the best time to start with {t}?
`);

const ANSWERS = list(`
  {T} is easier to understand once you break it into small parts.
  The key idea is that {t} rewards steady practice over quick wins.
  Most of the cost of {t} comes from the first few weeks.
  A common mistake is to treat {t} as a one-time effort.
  People who enjoy {t} usually start with a simple goal.
  In short, {t} works best when it fits into an existing routine.
  Research on {t} is still young, so claims should be checked.
  {T} affects more people than most expect.
`);
