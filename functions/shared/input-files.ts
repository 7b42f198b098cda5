/**
 * Readers for the line-oriented input files (seed files, candidate lists, pools): JSON Lines,
 * or a JSON array (Alpaca format). Every line is validated with a zod schema; problems name
 * the file, the line and the field, and all of them are reported at once.
 */
import { type ParseError, parse, printParseErrorCode } from 'jsonc-parser';
import type { z } from 'zod';
import { type FileProblem, InputFileInvalid, JsonFileInvalid, SeedFileInvalid } from './errors.ts';
import { AlpacaTask, SeedTask } from './schemas.ts';

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
 * The largest seed record (a JSON line, or an element of an Alpaca array), in bytes of UTF-8. A seed
 * becomes one DynamoDB item, which holds at most 400 KB with its attributes; 64 KiB keeps any task far
 * from that and from the prompts it is shown in (a demonstration quotes its instruction and instance).
 */
export const MAX_SEED_RECORD_BYTES = 64 * 1024;

/** The largest seed file, in bytes: a "Prepare run" function reads it whole (1 GB of memory). */
export const MAX_SEED_FILE_BYTES = 50 * 1024 * 1024;

/**
 * Decodes UTF-8 text strictly: a byte sequence that is not UTF-8 is a problem naming its line and
 * column (in bytes), not a U+FFFD silently stored in the pool.
 */
export function decodeUtf8(
  bytes: Uint8Array,
  file: string,
  fail: (problems: FileProblem[]) => Error = (problems) => new InputFileInvalid(problems),
): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const strict = new TextDecoder('utf-8', { fatal: true });
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      const newline = bytes.indexOf(0x0a, start);
      const end = newline < 0 ? bytes.length : newline;
      try {
        strict.decode(bytes.subarray(start, end));
      } catch {
        // The longest prefix of the line that is (possibly incomplete) UTF-8 ends before the bad byte.
        const valid = (n: number) => {
          try {
            new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, start + n), {
              stream: true,
            });
            return true;
          } catch {
            return false;
          }
        };
        let low = 0;
        let high = end - start;
        while (low < high) {
          const middle = Math.ceil((low + high) / 2);
          if (valid(middle)) low = middle;
          else high = middle - 1;
        }
        // …or inside it, when the bytes before it open a sequence it does not continue: name its first byte.
        let column = low;
        for (let back = 1; back <= 3 && low - back >= 0; back++) {
          const byte = bytes[start + low - back] ?? 0;
          if (byte >= 0xc0) column = low - back;
          if (byte < 0x80 || byte >= 0xc0) break;
        }
        throw fail([
          {
            file,
            line,
            message: `not valid UTF-8 (byte 0x${(bytes[start + column] ?? 0).toString(16).padStart(2, '0')} at byte ${column + 1} of the line); save the file as UTF-8`,
          },
        ]);
      }
      start = end + 1;
    }
    throw fail([{ file, message: 'not valid UTF-8; save the file as UTF-8' }]);
  }
}

/**
 * Whether an input file's text is a JSON array (Alpaca's format, an `alpaca` export), else JSON Lines:
 * the one place the two are told apart, by the first character that is not whitespace.
 */
export function isJsonArray(text: string): boolean {
  return text.trimStart().startsWith('[');
}

/** The two seed-file formats. */
export type SeedFileFormat = 'Self-Instruct JSON Lines' | 'Alpaca JSON';

/** A seed file as a run reads it: its format and its tasks. */
export interface SeedFile {
  format: SeedFileFormat;
  tasks: SeedTask[];
}

/**
 * Reads a seed file (Self-Instruct JSON Lines, or Alpaca's JSON array: one instance per task,
 * classification unknown) from its bytes: the one reader, with the one set of checks, of "Prepare run",
 * `seeds validate` and `estimate --seeds`. Throws `SeedFileInvalid` listing every problem: bytes that are
 * not UTF-8, a record or file over the limits above, JSON or schema errors, duplicate ids, each with its
 * line and field.
 */
export function parseSeedFile(bytes: Uint8Array, file: string): SeedFile {
  const fail = (problems: FileProblem[]) => new SeedFileInvalid(problems);
  if (bytes.length > MAX_SEED_FILE_BYTES) {
    throw fail([
      { file, message: `the file is ${bytes.length} bytes, over the limit of ${MAX_SEED_FILE_BYTES}` },
    ]);
  }
  const text = decodeUtf8(bytes, file, fail);
  const options = { maxRecordBytes: MAX_SEED_RECORD_BYTES };
  const format: SeedFileFormat = isJsonArray(text) ? 'Alpaca JSON' : 'Self-Instruct JSON Lines';
  const tasks =
    format === 'Alpaca JSON'
      ? parseRecords(text, AlpacaTask, file, fail, options).map(
          (task, i): SeedTask => ({
            id: `seed_task_${i}`,
            name: `alpaca-${i}`,
            instruction: task.instruction,
            instances: [{ input: task.input, output: task.output }],
            is_classification: false,
          }),
        )
      : parseRecords(text, SeedTask, file, fail, options);
  const lines = recordLines(text);
  const seen = new Map<string, number>();
  const problems: FileProblem[] = tasks.flatMap((task, i) => {
    const first = seen.get(task.id);
    if (first === undefined) {
      seen.set(task.id, i);
      return [];
    }
    return [
      {
        file,
        line: lines[i],
        field: 'id',
        message: `duplicate id "${task.id}" (first on line ${lines[first]})`,
      },
    ];
  });
  if (problems.length > 0) throw fail(problems);
  return { format, tasks };
}

/** The line (or array position) of each record `parseRecords` returns, in order. */
function recordLines(text: string): number[] {
  if (isJsonArray(text)) {
    return (JSON.parse(text) as unknown[]).map((_, i) => i + 1);
  }
  return text.split(/\r?\n/).flatMap((line, i) => (line.trim() === '' ? [] : [i + 1]));
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
  { maxRecordBytes }: { maxRecordBytes?: number } = {},
): z.infer<S>[] {
  const problems: FileProblem[] = [];
  const records: z.infer<S>[] = [];
  const tooLong = (bytes: number, line: number) => {
    if (maxRecordBytes === undefined || bytes <= maxRecordBytes) return false;
    problems.push({
      file,
      line,
      message: `the record is ${bytes} bytes, over the limit of ${maxRecordBytes}`,
    });
    return true;
  };
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

  if (text.trim().length === 0) {
    throw fail([{ file, message: 'the file is empty' }]);
  }
  if (isJsonArray(text)) {
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch (error) {
      throw fail([{ file, message: `not valid JSON: ${(error as Error).message}` }]);
    }
    if (!Array.isArray(items)) throw fail([{ file, message: 'expected a JSON array' }]);
    // Report array elements by their 1-based position, as "line" of a record.
    items.forEach((item, i) => {
      if (!tooLong(Buffer.byteLength(JSON.stringify(item) ?? ''), i + 1)) check(item, i + 1);
    });
  } else {
    const lines = text.split(/\r?\n/);
    lines.forEach((raw, i) => {
      if (raw.trim() === '') return;
      if (tooLong(Buffer.byteLength(raw), i + 1)) return;
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
