/**
 * The files `import` reads, each recognised by its content (never its name): one table of the formats,
 * each with its zod schema and how its first record is told apart. A JSON array is Alpaca's format; JSON
 * Lines are told apart by the fields of their first record. Every record is then checked with the format's
 * schema, and every problem is collected with its file, line and field (an Alpaca element's line is the
 * line it starts on).
 */
import { visit } from 'jsonc-parser';
import { z } from 'zod';
import { pyStrip } from '../../../functions/shared/engine/filters.ts';
import type { FileProblem } from '../../../functions/shared/errors.ts';
import { decodeUtf8, isJsonArray, parseJsonFile } from '../../../functions/shared/input-files.ts';
import { TaskLine } from '../../../functions/shared/records.ts';
import { AlpacaTask } from '../../../functions/shared/schemas.ts';

/** An instruction as the Self-Instruct files hold it: any text that is not blank. */
const Instruction = z.string().refine((text) => pyStrip(text) !== '', 'the instruction is blank');
const MostSimilar = z.record(z.string(), z.number());

/** A line of Self-Instruct's `machine_generated_instructions.jsonl` (`bootstrap_instructions.py`). */
export const InstructionLine = z.object({
  instruction: Instruction,
  most_similar: MostSimilar.optional(),
  avg_similarity_score: z.number().optional(),
  metadata: z.unknown().optional(),
  request_idx: z.int().nonnegative().optional(),
});
export type InstructionLine = z.infer<typeof InstructionLine>;

/**
 * A line of Self-Instruct's `machine_generated_instances.jsonl` (`generate_instances.py`): the reply in
 * `raw_instances`, the API's response in `instance_metadata` (`response` is null when the request failed,
 * and `raw_instances` is then empty).
 */
export const InstanceLine = z.object({
  instruction: Instruction,
  raw_instances: z.string(),
  instance_metadata: z.object({
    response: z
      .object({ choices: z.array(z.object({ finish_reason: z.string().nullable() })).min(1) })
      .nullable(),
  }),
  most_similar: MostSimilar.optional(),
  avg_similarity_score: z.number().optional(),
});
export type InstanceLine = z.infer<typeof InstanceLine>;

/** A line of Self-Instruct's `is_clf_or_not_<engine>_<template>.jsonl` (`identify_clf_or_not.py`): the model's raw answer. */
export const ClassificationLine = z.object({ instruction: z.string(), is_classification: z.string() });
export type ClassificationLine = z.infer<typeof ClassificationLine>;

/** The formats `import` reads. */
export type ImportFormat = 'instructions' | 'instances' | 'classification' | 'alpaca' | 'tasks';

interface FormatSpec {
  /** How the command names it. */
  label: string;
  schema: z.ZodType;
  /** Whether a first JSON Lines record is of this format (Alpaca: any JSON array). */
  recognise(record: Record<string, unknown>): boolean;
}

const has = (record: Record<string, unknown>, ...fields: string[]) => fields.some((field) => field in record);

/** Every format, in the order a first record is tried against them. */
export const IMPORT_FORMATS: Record<ImportFormat, FormatSpec> = {
  instances: {
    label: 'Self-Instruct machine_generated_instances',
    schema: InstanceLine,
    recognise: (record) => has(record, 'raw_instances'),
  },
  classification: {
    label: 'Self-Instruct is_clf_or_not',
    schema: ClassificationLine,
    recognise: (record) => typeof record.is_classification === 'string' && !has(record, 'instances'),
  },
  tasks: {
    label: 'tasks.jsonl (seed-file format)',
    schema: TaskLine,
    recognise: (record) => has(record, 'instances'),
  },
  instructions: {
    label: 'Self-Instruct machine_generated_instructions',
    schema: InstructionLine,
    recognise: (record) =>
      has(record, 'instruction') &&
      has(record, 'most_similar', 'avg_similarity_score', 'request_idx', 'metadata'),
  },
  alpaca: {
    label: 'Alpaca JSON',
    schema: AlpacaTask,
    recognise: () => false,
  },
};

/** A record of a file read: its line (an Alpaca element's first line) and its value as its schema parsed it. */
export interface ImportRecord {
  line: number;
  value: unknown;
}

/** A file read and recognised. */
export interface ImportFile {
  file: string;
  format: ImportFormat;
  records: ImportRecord[];
}

/**
 * Reads one file: recognises its format and checks every record with the format's schema. Problems are
 * added to `problems` (the file is then `undefined`, or its valid records only), so that every file's
 * problems are reported at once.
 */
export function readImportFile(
  bytes: Uint8Array,
  file: string,
  problems: FileProblem[],
): ImportFile | undefined {
  let text: string;
  try {
    text = decodeUtf8(bytes, file, (found) => {
      problems.push(...found);
      return new Error('not UTF-8');
    });
  } catch {
    return undefined;
  }
  if (text.trim() === '') {
    problems.push({ file, message: 'the file is empty' });
    return undefined;
  }
  const raw = isJsonArray(text) ? arrayRecords(text, file, problems) : lineRecords(text, file, problems);
  if (raw === undefined) return undefined;
  const first = raw.find((record) => record.value !== undefined)?.value;
  const format = isJsonArray(text) ? 'alpaca' : recognise(first);
  if (format === undefined) {
    const fields = first !== null && typeof first === 'object' ? Object.keys(first).join(', ') : typeof first;
    problems.push({
      file,
      line: raw[0]?.line,
      message:
        `not a format import recognises (found: ${fields || 'no fields'}); expected Self-Instruct's ` +
        'machine_generated_instructions.jsonl, machine_generated_instances.jsonl or is_clf_or_not_*.jsonl, ' +
        'an Alpaca JSON array, or a tasks.jsonl',
    });
    return undefined;
  }
  const { schema } = IMPORT_FORMATS[format];
  const records: ImportRecord[] = [];
  for (const { line, value } of raw) {
    if (value === undefined) continue; // not JSON: already a problem
    const parsed = schema.safeParse(value);
    if (parsed.success) records.push({ line, value: parsed.data });
    else {
      for (const issue of parsed.error.issues) {
        problems.push({ file, line, field: issue.path.join('.') || undefined, message: issue.message });
      }
    }
  }
  return { file, format, records };
}

function recognise(first: unknown): ImportFormat | undefined {
  if (first === null || typeof first !== 'object' || Array.isArray(first)) return undefined;
  const record = first as Record<string, unknown>;
  return (Object.keys(IMPORT_FORMATS) as ImportFormat[]).find((format) =>
    IMPORT_FORMATS[format].recognise(record),
  );
}

/** JSON Lines: each non-blank line parsed; a line that is not JSON is a problem (its value `undefined`). */
function lineRecords(text: string, file: string, problems: FileProblem[]): ImportRecord[] {
  const records: ImportRecord[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    try {
      records.push({ line: i + 1, value: JSON.parse(raw) });
    } catch (error) {
      problems.push({ file, line: i + 1, message: `not valid JSON: ${(error as Error).message}` });
      records.push({ line: i + 1, value: undefined });
    }
  });
  return records;
}

/** A JSON array: each element with the line it starts on. */
function arrayRecords(text: string, file: string, problems: FileProblem[]): ImportRecord[] | undefined {
  let items: unknown;
  try {
    items = parseJsonFile(text, file);
  } catch (error) {
    // `file:line:column: message`, as a compiler says it: the line is the problem's, the rest its message.
    const [, line, column, message] = /:(\d+):(\d+): (.*)$/s.exec((error as Error).message) ?? [];
    problems.push({
      file,
      line: line === undefined ? undefined : Number(line),
      message: message === undefined ? (error as Error).message : `${message} at column ${column}`,
    });
    return undefined;
  }
  const lines: number[] = [];
  const element = (
    _offset: number,
    _length: number,
    startLine: number,
    _c: number,
    path: () => unknown[],
  ) => {
    if (path().length === 1) lines.push(startLine + 1);
  };
  visit(text, {
    onObjectBegin: (o, l, line, c, path) => {
      element(o, l, line, c, path);
    },
    onArrayBegin: (o, l, line, c, path) => {
      element(o, l, line, c, path);
    },
    onLiteralValue: (_value, o, l, line, c, path) => element(o, l, line, c, path),
  });
  return (items as unknown[]).map((value, i) => ({ line: lines[i] ?? i + 1, value }));
}
