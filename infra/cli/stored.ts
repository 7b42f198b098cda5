/**
 * Reading back, validated, what the pipeline stored in the bucket (tasks, gate decisions, summaries), for
 * the commands that read a run after the fact (`export`, `report`). A bad record is reported as
 * `InputFileInvalid` naming the object (and line) it is in.
 */
import type { z } from 'zod';
import { type FileProblem, InputFileInvalid } from '../../functions/shared/errors.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';
import type { ObjectStreams } from '../../functions/shared/ports.ts';

/** The records of a stored JSON Lines object; an absent or empty one (an iteration without candidates) has none. */
export function readStoredLines<S extends z.ZodType>(
  text: string | undefined,
  schema: S,
  key: string,
): z.infer<S>[] {
  return text === undefined || text.trim() === '' ? [] : parseRecords(text, schema, key);
}

/** Text parsed at once while a stored JSON Lines object downloads (whole lines). */
const LINES_BATCH_CHARS = 4 * 1024 * 1024;

/**
 * `readStoredLines` on a stored JSON Lines object read as it downloads, a few MB of lines at a time, so
 * its whole text is never in memory (an export's `tasks.jsonl` of a large pool is hundreds of MB):
 * the same records, the same problems with the same line numbers. `undefined` when there is no such key.
 */
export async function readStoredLinesStreamed<S extends z.ZodType>(
  objects: Pick<ObjectStreams, 'download'>,
  key: string,
  schema: S,
  { batchChars = LINES_BATCH_CHARS }: { batchChars?: number } = {},
): Promise<z.infer<S>[] | undefined> {
  const body = await objects.download(key);
  if (body === undefined) return undefined;
  const records: z.infer<S>[] = [];
  const problems: FileProblem[] = [];
  let linesBefore = 0;
  const parse = (text: string) => {
    if (text.trim() !== '') {
      try {
        for (const record of parseRecords(text, schema, key)) records.push(record);
      } catch (error) {
        if (!(error instanceof InputFileInvalid)) throw error;
        for (const problem of error.problems) {
          problems.push(
            problem.line === undefined ? problem : { ...problem, line: problem.line + linesBefore },
          );
        }
      }
    }
    linesBefore += text.split('\n').length;
  };
  const decoder = new TextDecoder();
  let rest = '';
  for await (const bytes of body) {
    rest += decoder.decode(bytes, { stream: true });
    if (rest.length < batchChars) continue;
    const end = rest.lastIndexOf('\n');
    if (end < 0) continue;
    parse(rest.slice(0, end));
    rest = rest.slice(end + 1);
  }
  parse(rest + decoder.decode());
  if (problems.length > 0) throw new InputFileInvalid(problems);
  return records;
}

/** A stored JSON object, checked against its schema. */
export function readStoredJson<S extends z.ZodType>(text: string, schema: S, key: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputFileInvalid([{ file: key, message: `not valid JSON: ${(error as Error).message}` }]);
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new InputFileInvalid(
    result.error.issues.map((issue) => ({
      file: key,
      field: issue.path.join('.') || undefined,
      message: issue.message,
    })),
  );
}
