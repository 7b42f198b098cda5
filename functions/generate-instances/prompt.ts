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
import type { ModelRequest } from '../shared/ports.ts';
import { PROFILES } from '../shared/profiles.ts';
import type { Instance, ProfileName } from '../shared/schemas.ts';
import { extractJsonArrayItems, extractJsonObject, loadTemplate, render } from '../shared/templates.ts';

/** What one instance reply yields. */
export interface ParsedInstances {
  instances: Instance[];
  /** The reply does not have the expected shape, or some of its items are invalid. */
  malformed: boolean;
}

const template = (name: string) => loadTemplate(import.meta.url, name);

/**
 * Builds the "is it a classification task?" request. `self-instruct`/`alpaca`: the few-shot template,
 * then `" " + instruction.strip() + "\nIs it classification?"` as the paper; `default`: a chat prompt
 * answered with `{"is_classification": boolean}`.
 */
export function renderClassifyRequest(profile: ProfileName, instruction: string): ModelRequest {
  const { temperature, topP, maxTokens, stop } = PROFILES[profile].parameters.classify;
  const base = { stage: 'classify' as const, temperature, topP, maxTokens, ...(stop ? { stop } : {}) };
  if (profile === 'default') {
    return {
      ...base,
      kind: 'chat',
      system: template('default-classify-system.txt'),
      prompt: render(template('default-classify-user.txt'), { instruction: instruction.trim() }),
      json: true,
    };
  }
  return {
    ...base,
    kind: 'completion',
    prompt: `${template('self-instruct-classify.txt')} ${instruction.trim()}\nIs it classification?`,
  };
}

const ClassifyAnswer = z.object({ is_classification: z.boolean() });

/**
 * Reads the classification answer: `true`, `false`, or `null` when the reply can't be read.
 *
 * `self-instruct`/`alpaca`: the paper's check, `text.strip() in ["Yes", "yes", "YES"]`; "No" in the
 * same spellings is `false`, anything else `null` (the paper counts it as "not classification", which a
 * caller reproduces by reading `null` as `false`). `default`: the JSON object's `is_classification`.
 */
export function parseClassifyReply(profile: ProfileName, text: string): boolean | null {
  if (profile === 'default') {
    const answer = ClassifyAnswer.safeParse(extractJsonObject(text));
    return answer.success ? answer.data.is_classification : null;
  }
  const word = text.trim();
  if (word === 'Yes' || word === 'yes' || word === 'YES') return true;
  if (word === 'No' || word === 'no' || word === 'NO') return false;
  return null;
}

/**
 * Builds the instance-generation request. `self-instruct`/`alpaca`: the output-first template for a
 * classification task, the input-first one otherwise, each ending with "Task:", then
 * `" " + instruction.strip() + "\n"` as `generate_instances.py`. `default`: a chat prompt answered with
 * `{"instances": [{"input", "output"}]}`, asking for the label first on classification tasks.
 */
export function renderInstancesRequest(
  profile: ProfileName,
  instruction: string,
  isClassification: boolean,
): ModelRequest {
  const { temperature, topP, maxTokens, stop } = PROFILES[profile].parameters.instances;
  const base = {
    stage: 'generate-instances' as const,
    temperature,
    topP,
    maxTokens,
    ...(stop ? { stop } : {}),
  };
  if (profile === 'default') {
    const name = isClassification
      ? 'default-instances-classification.txt'
      : 'default-instances-generation.txt';
    return {
      ...base,
      kind: 'chat',
      system: template('default-instances-system.txt'),
      prompt: render(template(name), { instruction: instruction.trim() }),
      json: true,
    };
  }
  const name = isClassification ? 'self-instruct-classification.txt' : 'self-instruct-generation.txt';
  return { ...base, kind: 'completion', prompt: `${template(name)} ${instruction.trim()}\n` };
}

/** A JSON scalar read as text: models sometimes write a number or a boolean where a string belongs. */
const Text = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const DefaultInstance = z
  .object({ input: z.union([Text, z.null()]).optional(), output: Text })
  .transform(({ input, output }) => ({ input: input ?? '', output }));

/**
 * Parses an instance reply.
 *
 * `self-instruct`/`alpaca`, as `prepare_for_finetuning.py`: a classification reply is split on
 * "Class label:" (the first piece dropped; in each, the first line is the label and output, the rest
 * the input); a generation reply is split on `/Example\s?\d*\.?/` when it has such a marker, else read
 * as one input/output pair when it has an `Output:` marker, else yields nothing. When the reply was cut
 * by the token limit its last instance is dropped. `default`: the JSON object's `instances`, each
 * validated; an instance cut by the token limit is dropped.
 */
export function parseInstancesReply(
  profile: ProfileName,
  reply: { text: string; finish: 'stop' | 'length' },
  isClassification: boolean,
): ParsedInstances {
  if (profile === 'default') return parseJsonInstances(reply);
  const parsed = isClassification
    ? parseClassificationInstances(reply.text)
    : parseGenerationInstances(reply.text);
  if (parsed === null) return { instances: [], malformed: true };
  return { instances: reply.finish === 'length' ? parsed.slice(0, -1) : parsed, malformed: false };
}

const OUTPUT_MARKER = /Output\s*\d*\s*:/;
const INPUT_MARKER = /Input\s*\d*\s*:/;

/** `parse_input_output` of the paper: the text before the first "Output:" is the input, the text up to the next marker the output. */
function parseInputOutput(text: string): Instance {
  let input = '';
  let output: string;
  if (OUTPUT_MARKER.test(text)) {
    const parts = text.split(OUTPUT_MARKER);
    input = (parts[0] ?? '').trim();
    output = (parts[1] ?? '').trim();
  } else {
    output = text.trim();
  }
  // The model sometimes goes on with another pair: keep only the first output.
  if (INPUT_MARKER.test(output)) output = (output.split(INPUT_MARKER)[0] ?? '').trim();
  input = input.replace(/^Input\s*\d*\s*:/, '').trim();
  return { input, output };
}

/** `parse_instances_for_generation_task` of the paper, without its filters; `null` when nothing is recognized. */
function parseGenerationInstances(text: string): Instance[] | null {
  const raw = text.trim();
  if (/Example\s?\d*\.?/.test(raw)) {
    return raw
      .split(/Example\s?\d*\.?/)
      .map((piece) => piece.trim())
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
      const trimmed = piece.trim();
      const newline = trimmed.indexOf('\n');
      return newline < 0
        ? { input: '', output: trimmed }
        : { input: trimmed.slice(newline + 1).trim(), output: trimmed.slice(0, newline).trim() };
    });
}

function parseJsonInstances({ text, finish }: { text: string; finish: 'stop' | 'length' }): ParsedInstances {
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
