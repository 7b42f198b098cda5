/**
 * Passages: the units instruction backtranslation (Humpback, Li et al., 2023) writes an instruction for.
 * A document's extracted text (`extract.ts`) is cut into paragraphs (blank lines): each is a passage, a
 * heading (any paragraph shorter than `minChars`) joined to the paragraph after it, and a paragraph longer
 * than `maxChars` cut at sentence ends (or, for a sentence longer still, at a space). Each passage keeps its document's key and its character span
 * [start, end) in that text: `text.slice(start, end)` is the passage, exactly. Passages shorter than
 * `minChars` (a lone heading at the end, a page number) are left out.
 *
 * Deterministic: the same documents give the same passages in the same order (documents in key order,
 * passages in text order), so a retried "Prepare run" writes the same file.
 */
import type { ObjectStore } from '../ports.ts';
import type { Passage } from '../records.ts';
import { documentKind, extractText } from './extract.ts';

/** How passages are cut. */
export interface PassageOptions {
  /** No passage is longer: a longer paragraph is cut at sentence ends. @default 1200 */
  maxChars?: number;
  /** A shorter paragraph (a heading) is joined to the next; a shorter passage is left out. @default 100 */
  minChars?: number;
}

/** A span [start, end) of a text. */
type Span = [start: number, end: number];

/** The paragraphs of `text`: spans of non-blank text between blank lines, trimmed. */
function paragraphs(text: string): Span[] {
  const spans: Span[] = [];
  for (const match of text.matchAll(/[^\n]*\S[^\n]*(?:\n[^\n]*\S[^\n]*)*/g)) {
    const raw = match[0];
    const start = match.index + (raw.length - raw.trimStart().length);
    spans.push([start, match.index + raw.trimEnd().length]);
  }
  return spans;
}

/** `span` cut into pieces of at most `max` characters, at sentence ends, else at spaces, else anywhere. */
function cut(text: string, [start, end]: Span, max: number): Span[] {
  const pieces: Span[] = [];
  let from = start;
  while (end - from > max) {
    const window = text.slice(from, from + max + 1);
    const ends = [...window.matchAll(/[.!?]["')\]]?\s/g)].map((m) => m.index + m[0].length - 1);
    const sentence = ends.at(-1) ?? -1;
    const space = window.lastIndexOf(' ');
    const at = sentence > max / 4 ? sentence : space > max / 4 ? space : max;
    pieces.push([from, from + text.slice(from, from + at).trimEnd().length]);
    from += at;
    while (from < end && /\s/.test(text[from] as string)) from++;
  }
  if (end > from) pieces.push([from, end]);
  return pieces;
}

/**
 * The passage spans of one document's text: one per paragraph (Humpback's segments), a heading or
 * another short paragraph joined to the paragraph after it (see the module comment).
 */
export function passageSpans(text: string, { maxChars = 1200, minChars = 100 }: PassageOptions = {}): Span[] {
  const spans: Span[] = [];
  let current: Span | undefined;
  for (const piece of paragraphs(text).flatMap((span) => cut(text, span, maxChars))) {
    if (current && current[1] - current[0] < minChars && piece[1] - current[0] <= maxChars) {
      current[1] = piece[1];
    } else {
      if (current) spans.push(current);
      current = [piece[0], piece[1]];
    }
  }
  if (current) spans.push(current);
  return spans.filter(([start, end]) => end - start >= minChars);
}

/** What splitting a folder of documents found. */
export interface SplitDocuments {
  passages: Passage[];
  /** The documents read, in key order, with their passage counts. */
  documents: { key: string; passages: number }[];
  /** Files of the folder that are not documents read (by extension). */
  skipped: string[];
}

/** Every document under `prefix` (in key order) split into passages (see the module comment). */
export async function splitDocuments(
  objects: ObjectStore,
  prefix: string,
  options?: PassageOptions,
): Promise<SplitDocuments> {
  const result: SplitDocuments = { passages: [], documents: [], skipped: [] };
  for (const key of await objects.list(prefix)) {
    if (documentKind(key) === undefined) {
      result.skipped.push(key);
      continue;
    }
    const bytes = (await objects.getBytes(key)) ?? new Uint8Array();
    const text = await extractText(key, bytes);
    const spans = passageSpans(text, options);
    for (const [start, end] of spans) {
      result.passages.push({
        index: result.passages.length,
        document: key,
        start,
        end,
        text: text.slice(start, end),
      });
    }
    result.documents.push({ key, passages: spans.length });
  }
  return result;
}
