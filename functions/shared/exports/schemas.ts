/**
 * zod schemas of the export: the record of each format it writes (tests and users parse the files back
 * with these) and its options. The task lines and run summaries it reads are `records.ts`'s `TaskLine`
 * and `RunSummary`.
 */
import { z } from 'zod';
import { SelfInstructError } from '../errors.ts';
import { TaskLine } from '../records.ts';

/** The formats `selfinstruct export` writes. */
export const EXPORT_FORMATS = ['jsonl', 'alpaca', 'messages', 'bedrock'] as const;
export const ExportFormat = z.enum(EXPORT_FORMATS);
export type ExportFormat = z.infer<typeof ExportFormat>;

/** The two splits; `validation` only when the options ask for one and there are tasks enough. */
export const SPLITS = ['train', 'validation'] as const;
export type Split = (typeof SPLITS)[number];

const text = z.string().min(1);

/**
 * `jsonl`: one record per instance, the instance plus where it came from (`toRecords`). The provenance
 * fields are the task line's (`records.ts` `TaskLine`, what `tasks.jsonl` holds), taken from its shape:
 * declared once. `is_classification` and `source` are required here (a task line defaults them).
 */
export const JsonlRecord = z.strictObject({
  instruction: text,
  input: z.string(),
  output: text,
  task_id: text,
  is_classification: z.boolean(),
  source: z.enum(['seed', 'machine']),
  ...TaskLine.pick({
    run_id: true,
    iteration: true,
    most_similar_instruction: true,
    most_similar_score: true,
    quality_score: true,
    instruction_valid: true,
    input_appropriate: true,
    output_correct: true,
    quality_reason: true,
    response_style: true,
    system_message: true,
    source_document: true,
    source_span: true,
    source_use: true,
    lineage: true,
  }).shape,
});
export type JsonlRecord = z.infer<typeof JsonlRecord>;

/** `alpaca`: an element of Stanford Alpaca's JSON array (`alpaca_data.json`). */
export const AlpacaRecord = z.strictObject({ instruction: text, input: z.string(), output: text });
export type AlpacaRecord = z.infer<typeof AlpacaRecord>;

const chatMessage = <R extends 'system' | 'user' | 'assistant'>(role: R) =>
  z.strictObject({ role: z.literal(role), content: text });

/** `messages`: one conversation per line, an optional system message, the user's turn, the answer. */
export const MessagesRecord = z.strictObject({
  messages: z.union([
    z.tuple([chatMessage('system'), chatMessage('user'), chatMessage('assistant')]),
    z.tuple([chatMessage('user'), chatMessage('assistant')]),
  ]),
});
export type MessagesRecord = z.infer<typeof MessagesRecord>;

const textBlock = z.strictObject({ text });
const bedrockMessage = <R extends 'user' | 'assistant'>(role: R) =>
  z.strictObject({ role: z.literal(role), content: z.tuple([textBlock]) });

/** The `schemaVersion` of Amazon Bedrock's conversation format for fine-tuning. */
export const BEDROCK_SCHEMA_VERSION = 'bedrock-conversation-2024';

/** `bedrock`: one conversation per line in Amazon Bedrock's fine-tuning format (Converse API shapes). */
export const BedrockRecord = z.strictObject({
  schemaVersion: z.literal(BEDROCK_SCHEMA_VERSION),
  system: z.tuple([textBlock]).optional(),
  messages: z.tuple([bedrockMessage('user'), bedrockMessage('assistant')]),
});
export type BedrockRecord = z.infer<typeof BedrockRecord>;

/** The schema of one record of each format. */
export const RECORD_SCHEMAS = {
  jsonl: JsonlRecord,
  alpaca: AlpacaRecord,
  messages: MessagesRecord,
  bedrock: BedrockRecord,
} as const satisfies Record<ExportFormat, z.ZodType>;

/** What to export and how: the `export` command's flags, validated. */
export const ExportOptions = z.object({
  /** The formats to write. */
  formats: z
    .array(ExportFormat)
    .min(1)
    .default([...EXPORT_FORMATS]),
  /** Fraction of the tasks (not records) held out for validation; 0 writes no validation file. */
  validation: z.number().min(0).max(0.5).default(0.1),
  /** Seed of the shuffle that picks the validation tasks: the same seed and tasks give the same split. */
  splitSeed: z.string().min(1).default('42'),
  /** Export the pool's seed tasks too (they are not scored: `minQuality` does not apply to them). */
  includeSeeds: z.boolean().default(false),
  /** Only machine tasks with a `quality_score` at least this. */
  minQuality: z.number().optional(),
  /**
   * Pick this many machine tasks, score-first and diversity-aware as DEITA does (after `minQuality`):
   * by `quality_score` descending, skipping a task whose instruction's cosine to one already picked is
   * above `selectThreshold` (`infra/cli/export/select.ts`).
   */
  select: z.int().positive().optional(),
  /**
   * The cosine, on the run's embedding model, above which `select` skips a task as too close to one it
   * picked; DEITA's default threshold (on its own model's embeddings) is 0.9.
   */
  selectThreshold: z.number().min(0).max(1).default(0.9),
  /**
   * A system message for the `messages` and `bedrock` formats, for the records that have none of their
   * own (an explained record keeps the system message its output was written under).
   */
  system: z.string().trim().min(1).optional(),
  /**
   * The data's license as a Hugging Face license id (`cc-by-4.0`, `apache-2.0` …), chosen by whoever
   * exports it; without one the card says `license: other` and explains why none is set.
   */
  license: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.+-]*$/, 'expected a Hugging Face license id such as cc-by-4.0 or apache-2.0')
    .optional(),
});
export type ExportOptions = z.infer<typeof ExportOptions>;
export type ExportOptionsInput = z.input<typeof ExportOptions>;

/** Export options that can't be used (bad values, a quality threshold on tasks that have no score). */
export class ExportOptionsInvalid extends SelfInstructError {}

/** The selection left nothing to export. */
export class NothingToExport extends SelfInstructError {}
