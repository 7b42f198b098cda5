/**
 * Reading back, validated, what the pipeline stored in the bucket (tasks, gate decisions, summaries), for
 * the commands that read a run after the fact (`export`, `report`). A bad record is reported as
 * `InputFileInvalid` naming the object (and line) it is in.
 */
import type { z } from 'zod';
import { InputFileInvalid } from '../../functions/shared/errors.ts';
import { parseRecords } from '../../functions/shared/input-files.ts';

/** The records of a stored JSON Lines object; an absent or empty one (an iteration without candidates) has none. */
export function readStoredLines<S extends z.ZodType>(
  text: string | undefined,
  schema: S,
  key: string,
): z.infer<S>[] {
  return text === undefined || text.trim() === '' ? [] : parseRecords(text, schema, key);
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
