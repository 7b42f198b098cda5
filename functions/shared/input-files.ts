/**
 * Readers for the line-oriented input files (seed files, candidate lists, pools): JSON Lines,
 * or a JSON array (Alpaca format). Every line is validated with a zod schema; problems name
 * the file, the line and the field, and all of them are reported at once.
 */
import { type ParseError, parse, printParseErrorCode } from 'jsonc-parser';
import type { z } from 'zod';
import { type FileProblem, InputFileInvalid, JsonFileInvalid } from './errors.ts';

/**
 * Parses a JSON file's text strictly (no comments, no trailing commas). Throws `JsonFileInvalid`
 * with `file:line:column` of the first problem: `JSON.parse` alone does not say where.
 */
export function parseJsonFile(text: string, file: string): unknown {
  const errors: ParseError[] = [];
  const value = parse(text, errors, { disallowComments: true, allowTrailingComma: false });
  const [first] = errors;
  if (first) {
    const before = text.slice(0, first.offset).split(/\r?\n/);
    const line = before.length;
    const column = (before.at(-1)?.length ?? 0) + 1;
    throw new JsonFileInvalid(
      `${file}:${line}:${column}: not valid JSON (${printParseErrorCode(first.error)})`,
    );
  }
  if (value === undefined) throw new JsonFileInvalid(`${file}: not valid JSON (the file is empty)`);
  return value;
}

/**
 * Parses `text` as JSON Lines or, when it starts with `[`, as a JSON array, validating each record.
 * Blank lines are skipped. Throws `InputFileInvalid` (or the error built by `fail`) listing every problem.
 */
export function parseRecords<S extends z.ZodType>(
  text: string,
  schema: S,
  file: string,
  fail: (problems: FileProblem[]) => Error = (problems) => new InputFileInvalid(problems),
): z.infer<S>[] {
  const problems: FileProblem[] = [];
  const records: z.infer<S>[] = [];
  const check = (value: unknown, line: number | undefined) => {
    const result = schema.safeParse(value);
    if (result.success) {
      records.push(result.data);
      return;
    }
    for (const issue of result.error.issues) {
      problems.push({ file, line, field: issue.path.join('.') || undefined, message: issue.message });
    }
  };

  const trimmed = text.trimStart();
  if (trimmed.length === 0) {
    throw fail([{ file, message: 'the file is empty' }]);
  }
  if (trimmed.startsWith('[')) {
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch (error) {
      throw fail([{ file, message: `not valid JSON: ${(error as Error).message}` }]);
    }
    if (!Array.isArray(items)) throw fail([{ file, message: 'expected a JSON array' }]);
    // Report array elements by their 1-based position, as "line" of a record.
    items.forEach((item, i) => {
      check(item, i + 1);
    });
  } else {
    const lines = text.split(/\r?\n/);
    lines.forEach((raw, i) => {
      if (raw.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (error) {
        problems.push({ file, line: i + 1, message: `not valid JSON: ${(error as Error).message}` });
        return;
      }
      check(value, i + 1);
    });
  }
  if (problems.length > 0) throw fail(problems);
  if (records.length === 0) throw fail([{ file, message: 'the file has no records' }]);
  return records;
}
