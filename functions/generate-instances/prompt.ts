/**
 * Stage "Generate instances" (Self-Instruct steps 2 and 3): the prompts it sends and the parsers of the
 * replies, for the two model calls per instruction.
 *
 * 1. Is it a classification task? `self-instruct` and `alpaca` use a yes/no few-shot completion in the
 *    structure of the paper's `identify_clf_or_not.py`; `default` asks a chat model for a JSON flag.
 * 2. Its instances: `self-instruct` (and `alpaca`, for a candidate that arrives without an instance)
 *    use the paper's `generate_instances.py` structure, output-first for classification and
 *    input-first otherwise, parsed exactly as its `prepare_for_finetuning.py`; `default` asks a chat
 *    model for a JSON list, label first for classification.
 *
 * The few-shot examples are our own; templates are in `./prompts/`. The instance filters are not
 * applied here: the parsers return what the reply holds.
 */
import { z } from 'zod';
import { PY_SPACE, pyStrip } from '../shared/engine/filters.ts';
import type { ModelPrompt, ModelRequest, ReplyText } from '../shared/ports.ts';
import { callParameters, type ProfileTable } from '../shared/profiles.ts';
import { SHIPPED_TEMPLATES, stageTemplates, type TemplateOverrides } from '../shared/prompt-templates.ts';
import type { Instance, ProfileName } from '../shared/schemas.ts';
import { extractJsonArrayItems, extractJsonObject } from '../shared/templates.ts';

/** What one instance reply yields. */
export interface ParsedInstances {
  instances: Instance[];
  /** The reply does not have the expected shape, or some of its items are invalid. */
  malformed: boolean;
}

const fill = stageTemplates(import.meta.url, 'generate-instances');

const ClassifyAnswer = z.object({ is_classification: z.boolean() });

/** The "is it a classification task?" task of one profile: its prompt (with the run's templates) and the reader of the answer. */
export interface ClassifyTask {
  render(instruction: string, templates: TemplateOverrides): ModelPrompt;
  /** `true`, `false`, or `null` when the reply can't be read. */
  parse(text: string): boolean | null;
}

/**
 * The paper's classification question, shared by `self-instruct` and `alpaca`: the few-shot template,
 * then `" " + instruction.strip() + "\nIs it classification?"`. Its answer is read as the paper's check,
 * `text.strip() in ["Yes", "yes", "YES"]`; "No" in the same spellings is `false`, anything else `null`
 * (the paper counts it as "not classification", which a caller reproduces by reading `null` as `false`).
 */
const PAPER_CLASSIFY: ClassifyTask = {
  render: (instruction, templates) => ({
    format: 'classify/self-instruct',
    kind: 'completion',
    prompt: `${fill(templates, 'self-instruct-classify.txt', {})} ${instruction.trim()}\nIs it classification?`,
  }),
  parse: (text) => {
    const word = text.trim();
    if (word === 'Yes' || word === 'yes' || word === 'YES') return true;
    if (word === 'No' || word === 'no' || word === 'NO') return false;
    return null;
  },
};

/** The classification question per profile; `default` asks a chat model for `{"is_classification": boolean}`. */
export const CLASSIFY_TASKS: ProfileTable<ClassifyTask> = {
  'self-instruct': PAPER_CLASSIFY,
  alpaca: PAPER_CLASSIFY,
  default: {
    render: (instruction, templates) => ({
      format: 'classify/default',
      kind: 'chat',
      system: fill(templates, 'default-classify-system.txt', {}),
      prompt: fill(templates, 'default-classify-user.txt', { instruction: instruction.trim() }),
      json: true,
    }),
    parse: (text) => {
      const answer = ClassifyAnswer.safeParse(extractJsonObject(text));
      return answer.success ? answer.data.is_classification : null;
    },
  },
};

/** The instance-generation task of one profile: its prompt (with the run's templates) and the parser of the reply. */
export interface InstancesTask {
  render(instruction: string, isClassification: boolean, templates: TemplateOverrides): ModelPrompt;
  parse(reply: ReplyText, isClassification: boolean): ParsedInstances;
}

/**
 * The paper's instance prompts, shared by `self-instruct` and `alpaca` (for a candidate that arrives
 * without an instance): the output-first template for a classification task, the input-first one
 * otherwise, each ending with "Task:", then `" " + instruction.strip() + "\n"` as `generate_instances.py`.
 * The reply is parsed as `prepare_for_finetuning.py`: a classification reply is split on "Class label:"
 * (the first piece dropped; in each, the first line is the label and output, the rest the input); a
 * generation reply is split on `/Example\s?\d*\.?/` when it has such a marker, else read as one
 * input/output pair when it has an `Output:` marker, else yields nothing. When the reply was cut by the
 * token limit its last instance is dropped. Python's notions are kept: its `\s` and `strip()` (whitespace
 * as `str.isspace()`) and its `\d` (any Unicode decimal digit).
 */
const PAPER_INSTANCES: InstancesTask = {
  render: (instruction, isClassification, templates) =>
    isClassification
      ? {
          format: 'instances/self-instruct-classification',
          kind: 'completion',
          prompt: `${fill(templates, 'self-instruct-classification.txt', {})} ${instruction.trim()}\n`,
        }
      : {
          format: 'instances/self-instruct-generation',
          kind: 'completion',
          prompt: `${fill(templates, 'self-instruct-generation.txt', {})} ${instruction.trim()}\n`,
        },
  parse: (reply, isClassification) => {
    const parsed = isClassification
      ? parseClassificationInstances(reply.text)
      : parseGenerationInstances(reply.text);
    if (parsed === null) return { instances: [], malformed: true };
    return { instances: reply.finish === 'length' ? parsed.slice(0, -1) : parsed, malformed: false };
  },
};

/**
 * The instance task per profile. `default` asks a chat model for `{"instances": [{"input", "output"}]}`,
 * the label first on classification tasks; each instance is validated, one cut by the token limit dropped.
 */
export const INSTANCES_TASKS: ProfileTable<InstancesTask> = {
  'self-instruct': PAPER_INSTANCES,
  alpaca: PAPER_INSTANCES,
  default: {
    render: (instruction, isClassification, templates) => ({
      format: isClassification ? 'instances/default-classification' : 'instances/default-generation',
      kind: 'chat',
      system: fill(templates, 'default-instances-system.txt', {}),
      prompt: fill(
        templates,
        isClassification ? 'default-instances-classification.txt' : 'default-instances-generation.txt',
        { instruction: instruction.trim() },
      ),
      json: true,
    }),
    parse: parseJsonInstances,
  },
};

/** Builds the "is it a classification task?" request of a profile (see `CLASSIFY_TASKS`) with the run's templates. */
export function renderClassifyRequest(
  profile: ProfileName,
  instruction: string,
  templates: TemplateOverrides = SHIPPED_TEMPLATES,
): ModelRequest {
  return {
    stage: 'classify',
    ...callParameters(profile, 'classify'),
    ...CLASSIFY_TASKS[profile].render(instruction, templates),
  };
}

/** Reads the classification answer: `true`, `false`, or `null` when the reply can't be read (see `CLASSIFY_TASKS`). */
export function parseClassifyReply(profile: ProfileName, text: string): boolean | null {
  return CLASSIFY_TASKS[profile].parse(text);
}

/** Builds the instance-generation request of a profile (see `INSTANCES_TASKS`) with the run's templates. */
export function renderInstancesRequest(
  profile: ProfileName,
  instruction: string,
  isClassification: boolean,
  templates: TemplateOverrides = SHIPPED_TEMPLATES,
): ModelRequest {
  return {
    stage: 'generate-instances',
    ...callParameters(profile, 'instances'),
    ...INSTANCES_TASKS[profile].render(instruction, isClassification, templates),
  };
}

/** Parses an instance reply (see `INSTANCES_TASKS`). */
export function parseInstancesReply(
  profile: ProfileName,
  reply: ReplyText,
  isClassification: boolean,
): ParsedInstances {
  return INSTANCES_TASKS[profile].parse(reply, isClassification);
}

/** A JSON scalar read as text: models sometimes write a number or a boolean where a string belongs. */
const Text = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const DefaultInstance = z
  .object({ input: z.union([Text, z.null()]).optional(), output: Text })
  .transform(({ input, output }) => ({ input: input ?? '', output }));

// The paper's markers with Python's `\s` (its 29 whitespace characters) and `\d` (any Unicode digit).
const S = `[${PY_SPACE}]`;
const OUTPUT_MARKER = new RegExp(`Output${S}*\\p{Nd}*${S}*:`, 'u');
const INPUT_MARKER = new RegExp(`Input${S}*\\p{Nd}*${S}*:`, 'u');
const INPUT_PREFIX = new RegExp(`^Input${S}*\\p{Nd}*${S}*:`, 'u');
const EXAMPLE_MARKER = new RegExp(`Example${S}?\\p{Nd}*\\.?`, 'u');

/** `parse_input_output` of the paper: the text before the first "Output:" is the input, the text up to the next marker the output. */
function parseInputOutput(text: string): Instance {
  let input = '';
  let output: string;
  if (OUTPUT_MARKER.test(text)) {
    const parts = text.split(OUTPUT_MARKER);
    input = pyStrip(parts[0] ?? '');
    output = pyStrip(parts[1] ?? '');
  } else {
    output = pyStrip(text);
  }
  // The model sometimes goes on with another pair: keep only the first output.
  if (INPUT_MARKER.test(output)) output = pyStrip(output.split(INPUT_MARKER)[0] ?? '');
  input = pyStrip(input.replace(INPUT_PREFIX, ''));
  return { input, output };
}

/** `parse_instances_for_generation_task` of the paper, without its filters; `null` when nothing is recognized. */
function parseGenerationInstances(text: string): Instance[] | null {
  const raw = pyStrip(text);
  if (EXAMPLE_MARKER.test(raw)) {
    return raw
      .split(EXAMPLE_MARKER)
      .map((piece) => pyStrip(piece))
      .filter((piece) => piece !== '')
      .map(parseInputOutput);
  }
  if (OUTPUT_MARKER.test(raw)) return [parseInputOutput(raw)];
  return null;
}

/** `parse_instances_for_classification_task` of the paper, without its filters; `null` without any "Class label:". */
function parseClassificationInstances(text: string): Instance[] | null {
  if (!text.includes('Class label:')) return null;
  return text
    .split('Class label:')
    .slice(1)
    .map((piece) => {
      const trimmed = pyStrip(piece);
      const newline = trimmed.indexOf('\n');
      return newline < 0
        ? { input: '', output: trimmed }
        : { input: pyStrip(trimmed.slice(newline + 1)), output: pyStrip(trimmed.slice(0, newline)) };
    });
}

function parseJsonInstances({ text, finish }: ReplyText): ParsedInstances {
  const { found, items, unparseable, unfinished } = extractJsonArrayItems(text, 'instances');
  if (!found) return { instances: [], malformed: finish !== 'length' };
  const instances: Instance[] = [];
  let invalid = unparseable + (unfinished && finish === 'stop' ? 1 : 0);
  for (const item of items) {
    const instance = DefaultInstance.safeParse(item);
    if (instance.success) instances.push(instance.data);
    else invalid++;
  }
  return { instances, malformed: invalid > 0 };
}
