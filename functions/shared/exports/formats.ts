/**
 * The dataset formats, as pure functions from pool tasks to records and from records to file text.
 *
 * Every format starts from the same flat record per instance (`toRecords`), so the formats of one export
 * hold the same examples in the same order; only the shape differs.
 */
import type { z } from 'zod';
import { type FileProblem, InputFileInvalid } from '../errors.ts';
import { isJsonArray, parseRecords } from '../input-files.ts';
import type { PoolTask } from '../ports.ts';
import type { TaskLine } from '../records.ts';
import {
  type AlpacaRecord,
  BEDROCK_SCHEMA_VERSION,
  type BedrockRecord,
  type ExportFormat,
  type JsonlRecord,
  type MessagesRecord,
  RECORD_SCHEMAS,
} from './schemas.ts';

/** A pool task in the original Self-Instruct seed-file format, plus its provenance. */
export function toSeedFormat(task: PoolTask): TaskLine {
  return {
    id: task.id,
    name: task.name ?? task.id,
    instruction: task.instruction,
    instances: task.instances,
    is_classification: task.isClassification ?? false,
    source: task.source,
    run_id: task.runId,
    iteration: task.iteration,
    most_similar_instruction: task.mostSimilar?.instruction,
    most_similar_score: task.mostSimilar?.score,
    avg_similarity_score: task.avgSimilarity,
    root_verb: task.verbNoun === undefined ? undefined : (task.verbNoun?.verb ?? null),
    direct_object: task.verbNoun === undefined ? undefined : (task.verbNoun?.noun ?? null),
    quality_score: task.quality?.score,
    instruction_valid: task.quality?.instructionValid,
    input_appropriate: task.quality?.inputAppropriate,
    output_correct: task.quality?.outputCorrect,
    quality_reason: task.quality?.reason,
    response_style: task.responseStyle,
    system_message: task.systemMessage,
    source_document: task.document?.document,
    source_span: task.document?.span,
    source_use: task.document?.use,
    lineage: task.lineage,
  };
}

/** One training record per instance: `instruction`, `input`, `output`, plus provenance. */
export function toRecords(task: TaskLine): JsonlRecord[] {
  return task.instances.map((instance) => ({
    instruction: task.instruction,
    input: instance.input,
    output: instance.output,
    task_id: task.id,
    is_classification: task.is_classification,
    source: task.source,
    run_id: task.run_id,
    iteration: task.iteration,
    most_similar_instruction: task.most_similar_instruction,
    most_similar_score: task.most_similar_score,
    quality_score: task.quality_score,
    instruction_valid: task.instruction_valid,
    input_appropriate: task.input_appropriate,
    output_correct: task.output_correct,
    quality_reason: task.quality_reason,
    response_style: task.response_style,
    system_message: task.system_message,
    source_document: task.source_document,
    source_span: task.source_span,
    source_use: task.source_use,
    lineage: task.lineage,
  }));
}

/** Alpaca's JSON format: an array of `{instruction, input, output}`. */
export const toAlpaca = (records: readonly JsonlRecord[]): AlpacaRecord[] => records.map(toAlpacaRecord);

/** One element of Alpaca's array. */
export const toAlpacaRecord = ({ instruction, input, output }: JsonlRecord): AlpacaRecord => ({
  instruction,
  input,
  output,
});

/**
 * The user's turn of the chat formats: the instruction, then the input after a blank line when there is
 * one (whitespace only counts as none), as Alpaca-style chat conversions do.
 */
export const userContent = ({ instruction, input }: Pick<JsonlRecord, 'instruction' | 'input'>): string =>
  input.trim() === '' ? instruction : `${instruction}\n\n${input}`;

/** Options of the chat formats. */
export interface ChatOptions {
  /** A system message to put first, for a record without its own `system_message`; none when undefined. */
  system?: string;
}

/**
 * The system message of a record's conversation: the one its output was written under (an explained
 * record's `system_message`: the answer was written for it, so it belongs with it), else the export's.
 */
export const systemOf = (record: Pick<JsonlRecord, 'system_message'>, { system }: ChatOptions = {}) =>
  record.system_message ?? system;

/**
 * The "messages" conversation format: `{"messages": [{"role", "content"}, …]}`, one per line. It is the
 * format of OpenAI fine-tuning (chat models; https://help.openai.com/en/articles/6811186), TRL's
 * "conversational language modeling" type, applied with the tokenizer's chat template by `SFTTrainer`
 * (https://huggingface.co/docs/trl/dataset_formats), Axolotl's `type: chat_template` datasets, whose
 * default field is `messages` (https://docs.axolotl.ai/docs/dataset-formats/conversation.html), and
 * LLaMA-Factory's "OpenAI format", a sharegpt variant declared in `dataset_info.json` with
 * `"formatting": "sharegpt"`, `"columns": {"messages": "messages"}` and role/content tags
 * (hiyouga/LLaMA-Factory, data/README.md).
 */
export function toMessagesRecord(record: JsonlRecord, options: ChatOptions = {}): MessagesRecord {
  const system = systemOf(record, options);
  const user = { role: 'user' as const, content: userContent(record) };
  const assistant = { role: 'assistant' as const, content: record.output };
  return {
    messages:
      system === undefined ? [user, assistant] : [{ role: 'system', content: system }, user, assistant],
  };
}

/**
 * Amazon Bedrock's conversation format for fine-tuning (Amazon Nova, and the Converse-format text models):
 * `schemaVersion` `bedrock-conversation-2024`, an optional `system` list of text blocks, and `messages`
 * whose `content` is a list of `{text}` blocks, starting with the user and ending with the assistant
 * (Bedrock User Guide, "Prepare data for fine-tuning text-to-text models" and "Supervised fine-tuning on
 * Amazon Nova 2.0"; Nova User Guide, "Preparing data for fine-tuning Understanding models"). `system` is
 * left out when there is no system message: the guides mark it optional. The Nova guide reserves `User:`,
 * `Bot:`, `Assistant:`, `System:`, `<image>`, `<video>` and `[EOS]` at the start of a prompt:
 * `reservedKeywordRecords` counts such records.
 */
export function toBedrockRecord(record: JsonlRecord, options: ChatOptions = {}): BedrockRecord {
  const system = systemOf(record, options);
  return {
    schemaVersion: BEDROCK_SCHEMA_VERSION,
    ...(system === undefined ? {} : { system: [{ text: system }] as [{ text: string }] }),
    messages: [
      { role: 'user', content: [{ text: userContent(record) }] },
      { role: 'assistant', content: [{ text: record.output }] },
    ],
  };
}

const RESERVED_PREFIX = /^\s*(User:|Bot:|Assistant:|System:|<image>|<video>|\[EOS\])/;

/** Records whose user prompt (or the system message) starts with a keyword Amazon Nova reserves. */
export function reservedKeywordRecords(records: readonly JsonlRecord[], options: ChatOptions = {}): number {
  return records.filter((record) => {
    const system = systemOf(record, options);
    return (
      (system !== undefined && RESERVED_PREFIX.test(system)) || RESERVED_PREFIX.test(userContent(record))
    );
  }).length;
}

/** The record type of each format. */
export interface FormatRecord {
  jsonl: JsonlRecord;
  alpaca: AlpacaRecord;
  messages: MessagesRecord;
  bedrock: BedrockRecord;
}

/** How a format is written and what its card says about it. */
export interface FormatSpec {
  format: ExportFormat;
  /** File extension: JSON Lines, or one JSON array (Alpaca). */
  ext: 'jsonl' | 'json';
  /** What the format is and what reads it, one sentence for the dataset card. */
  description: string;
  /** Each field of a record and its meaning, for the dataset card. */
  fields: readonly (readonly [name: string, meaning: string])[];
}

/** The four formats. */
export const FORMATS: Record<ExportFormat, FormatSpec> = {
  jsonl: {
    format: 'jsonl',
    ext: 'jsonl',
    description:
      'JSON Lines, one record per instance: the Alpaca fields plus where the example came from (for filtering and audits).',
    fields: [
      ['instruction', 'the task, in natural language'],
      ['input', 'the instance input; empty when the instruction needs none'],
      ['output', 'the expected answer'],
      ['task_id', 'id of the task (one task has one or more instances)'],
      ['is_classification', 'whether the task is a classification task (outputs from a fixed set of labels)'],
      ['source', '`machine` (generated) or `seed` (written by people)'],
      ['run_id', 'the run that generated the task (machine tasks)'],
      ['iteration', 'the iteration of that run'],
      [
        'most_similar_instruction',
        'the instruction of the pool most similar to this one when it was accepted (ROUGE-L)',
      ],
      ['most_similar_score', 'its ROUGE-L F score'],
      [
        'quality_score',
        "the judge's score of the task, 1 (unusable) to 5 (excellent); absent when not judged",
      ],
      ['instruction_valid', 'the judge: the instruction describes a valid task'],
      ['input_appropriate', 'the judge: the inputs are appropriate for the instruction'],
      ['output_correct', 'the judge: the outputs are correct and acceptable responses'],
      ['quality_reason', "the judge's reason, one sentence"],
      [
        'response_style',
        '`explained` when a teacher model wrote the output as an explanation (step-by-step reasoning, then the answer) under `system_message`; absent for direct outputs',
      ],
      ['system_message', 'the system message the explained output was written under'],
      [
        'source_document',
        'method `backtranslate`: the key of the document (under `documents/<pool>/`) the task was made from',
      ],
      [
        'source_span',
        "[start, end): the characters of the passage in that document's extracted text (`functions/shared/documents/extract.ts`)",
      ],
      [
        'source_use',
        "`output` (the passage is the output: Humpback's self-augmentation) or `grounding` (a question and answer drawn from the passage)",
      ],
      [
        'lineage',
        "`method: evol`: `{parent, operation, depth}`, the task id it was evolved from, the operation, its depth in the evolution tree (1 for a seed's child)",
      ],
    ],
  },
  alpaca: {
    format: 'alpaca',
    ext: 'json',
    description:
      "Stanford Alpaca's format: one JSON array of records; LLaMA-Factory's default (`alpaca`) formatting.",
    fields: [
      ['instruction', 'the task'],
      ['input', 'the instance input, possibly empty'],
      ['output', 'the expected answer'],
    ],
  },
  messages: {
    format: 'messages',
    ext: 'jsonl',
    description:
      'JSON Lines of chat conversations, as OpenAI fine-tuning, TRL (`SFTTrainer`), Axolotl (`type: chat_template`) and LLaMA-Factory (OpenAI format) read them.',
    fields: [
      [
        'messages',
        "an optional `system` message (an explained record's own, else the export's `--system`), then the `user` turn (the instruction, and the input after a blank line when there is one), then the `assistant` turn (the output); each `{role, content}`",
      ],
    ],
  },
  bedrock: {
    format: 'bedrock',
    ext: 'jsonl',
    description:
      'JSON Lines in Amazon Bedrock’s conversation format for fine-tuning (`bedrock-conversation-2024`; Amazon Nova and other Converse-format models).',
    fields: [
      ['schemaVersion', '`bedrock-conversation-2024`'],
      [
        'system',
        "optional: `[{text}]`, the system message (an explained record's own, else the export's `--system`)",
      ],
      [
        'messages',
        '`[{role: "user", content: [{text}]}, {role: "assistant", content: [{text}]}]`: the instruction (and input) then the output',
      ],
    ],
  },
};

/** One record of `format` from a flat record. */
export function convertRecord(format: ExportFormat, record: JsonlRecord, options: ChatOptions = {}): unknown {
  switch (format) {
    case 'jsonl':
      return record;
    case 'alpaca':
      return toAlpacaRecord(record);
    case 'messages':
      return toMessagesRecord(record, options);
    case 'bedrock':
      return toBedrockRecord(record, options);
  }
}

/** The text of a file of `format` holding `records`: JSON Lines, or Alpaca's indented JSON array. */
export function renderRecords(
  format: ExportFormat,
  records: readonly JsonlRecord[],
  options: ChatOptions = {},
): string {
  return [...renderRecordChunks(format, records, options)].join('');
}

/**
 * The text `renderRecords` writes, in chunks of about 256K characters, converting each record as it is
 * reached: a file of any size is written without holding it, or its records, whole.
 */
export function renderRecordChunks(
  format: ExportFormat,
  records: Iterable<JsonlRecord>,
  options: ChatOptions = {},
): Iterable<string> {
  return joinedChunks(renderedRecords(format, records, options));
}

function* renderedRecords(
  format: ExportFormat,
  records: Iterable<JsonlRecord>,
  options: ChatOptions,
): Generator<string> {
  if (FORMATS[format].ext === 'jsonl') {
    for (const record of records) yield `${JSON.stringify(convertRecord(format, record, options))}\n`;
    return;
  }
  let first = true;
  for (const record of records) {
    yield `${first ? '[\n' : ',\n'}${jsonArrayEntry(convertRecord(format, record, options))}`;
    first = false;
  }
  yield first ? '[]\n' : '\n]\n';
}

/** Text gathered into one chunk of a streamed file (a write's or an upload part's worth). */
const CHUNK_CHARS = 256 * 1024;

/** Strings joined into chunks of about `CHUNK_CHARS`. */
export function* joinedChunks(texts: Iterable<string>): Generator<string> {
  let parts: string[] = [];
  let size = 0;
  for (const text of texts) {
    parts.push(text);
    size += text.length;
    if (size >= CHUNK_CHARS) {
      yield parts.join('');
      parts = [];
      size = 0;
    }
  }
  if (parts.length > 0) yield parts.join('');
}

/**
 * An entry of a JSON array as `JSON.stringify(array, null, 2)` writes it: its lines indented one level
 * (JSON strings hold no raw line breaks, so every line break is the layout's). Without the separator.
 */
export function jsonArrayEntry(value: unknown): string {
  return `  ${JSON.stringify(value, null, 2).replaceAll('\n', '\n  ')}`;
}

/**
 * Parses a file of `format` back, checking every record (every line, for JSON Lines) with the format's
 * zod schema; throws `InputFileInvalid` listing each problem with its line.
 */
export function parseExportFile<F extends ExportFormat>(
  format: F,
  text: string,
  file: string,
): FormatRecord[F][] {
  const isArray = isJsonArray(text);
  if (isArray !== (FORMATS[format].ext === 'json')) {
    const problem: FileProblem = {
      file,
      message: isArray ? 'expected JSON Lines, found a JSON array' : 'expected a JSON array',
    };
    throw new InputFileInvalid([problem], `${format} file`);
  }
  const schema = RECORD_SCHEMAS[format] as z.ZodType as z.ZodType<FormatRecord[F]>;
  return parseRecords(text, schema, file, (problems) => new InputFileInvalid(problems, `${format} file`));
}
