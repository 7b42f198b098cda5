/**
 * JSON Lines (one JSON document per line) as this project writes and reads its own files in S3:
 * candidates, raw call records, tasks, datasets, seed snapshots. Files from outside (seed files, exports
 * read back) go through the validating `parseRecords` of `input-files.ts` instead.
 */

/** Values as JSON Lines (one JSON document per line, trailing newline). */
export function toJsonLines(values: readonly unknown[]): string {
  return values.map((value) => JSON.stringify(value)).join('\n') + (values.length > 0 ? '\n' : '');
}

/** Parses JSON Lines written by this project (trusted: no per-line validation). */
export function fromJsonLines<T>(text: string | undefined): T[] {
  if (!text) return [];
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}
