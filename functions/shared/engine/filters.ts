/**
 * Instruction normalization and filters, per profile.
 *
 * - `self-instruct`: `post_process_gpt3_response` of the Self-Instruct code (Wang et al., 2022):
 *   whitespace runs collapsed to one space, stripped, Python's `str.capitalize()`; dropped when empty,
 *   ≤ 3 or > 150 words, containing a banned word (whole word, any case), starting with "Write a program",
 *   or starting with ASCII punctuation or a non-ASCII character.
 * - `alpaca`: Stanford Alpaca's variant: stripped only, no capitalization, its 18 banned words.
 * - `default`: ours: whitespace collapsed and stripped, case kept, banned words and word bounds configurable.
 *
 * Python's notions are reproduced rather than approximated by JavaScript's: its whitespace (`\s`,
 * `str.split()`, `str.strip()`: the 29 characters of `str.isspace()`, which differ from `String#trim`'s),
 * its `\b` (word characters are Unicode letters, numbers and `_`), and its case-insensitive matching of
 * ASCII letters (`i` also matches `İ` and `ı`, `k` the Kelvin sign, `s` the long s).
 */
import { z } from 'zod';
import { PROFILES, type ProfileTable } from '../profiles.ts';
import type { ProfileName } from '../schemas.ts';

/** Why an instruction was dropped, in the order the checks run. */
export const FILTER_REASONS = [
  'empty',
  'too-short',
  'too-long',
  'banned-word',
  'write-a-program',
  'starts-with-punctuation',
  'starts-with-non-ascii',
] as const;
/** Why an instruction was dropped (zod enum, for schemas and for counting rejections by reason). */
export const FilterReason = z.enum(FILTER_REASONS);
export type FilterReason = z.infer<typeof FilterReason>;

/** Settings of the `default` profile's filter (the reference profiles ignore them). */
export interface FilterOptions {
  /** Whole-word, case-insensitive banned words or phrases, matched literally. Default: Self-Instruct's 13. */
  bannedWords?: readonly string[];
  /** Fewest whitespace-separated words kept (default 4: "≤ 3 words" is dropped). */
  minWords?: number;
  /** Most whitespace-separated words kept (default 150). */
  maxWords?: number;
}

/** Python's `str.isspace()` characters, as a regex class body: what `\s`, `str.split()` and `str.strip()` use on str. */
export const PY_SPACE =
  '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACE_RUNS = new RegExp(`[${PY_SPACE}]+`, 'g');
const EDGE_SPACES = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
const SPACE_SPLIT = new RegExp(`[${PY_SPACE}]+`);

/** Python's `string.punctuation`. */
const PY_PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** Python's `s.strip()`. */
export function pyStrip(text: string): string {
  return text.replace(EDGE_SPACES, '');
}

/** Python's `re.sub(r"\s+", " ", s)`. */
export function collapseWhitespace(text: string): string {
  return text.replace(SPACE_RUNS, ' ');
}

/** Python's `len(s.split())`. */
export function countWords(text: string): number {
  let count = 0;
  for (const word of text.split(SPACE_SPLIT)) if (word !== '') count++;
  return count;
}

// Characters whose Unicode title case (what capitalize() applies to the first character since
// Python 3.8) differs from their upper case; the ones mapping to ASCII decide whether a text passes.
const TITLE_CASE: Record<string, string> = {
  ß: 'Ss',
  ﬀ: 'Ff',
  ﬁ: 'Fi',
  ﬂ: 'Fl',
  ﬃ: 'Ffi',
  ﬄ: 'Ffl',
  ﬅ: 'St',
  ﬆ: 'St',
  Ǆ: 'ǅ',
  ǅ: 'ǅ',
  ǆ: 'ǅ',
  Ǉ: 'ǈ',
  ǈ: 'ǈ',
  ǉ: 'ǈ',
  Ǌ: 'ǋ',
  ǋ: 'ǋ',
  ǌ: 'ǋ',
  Ǳ: 'ǲ',
  ǲ: 'ǲ',
  ǳ: 'ǲ',
};

/**
 * Python's `str.capitalize()`: the first character in title case, all the others lower-cased.
 * ASCII is exact. Beyond it, JavaScript's Unicode case mappings are used, lower-casing the rest
 * in context as Python does (a final `Σ` becomes `ς`), with the title-case exceptions that matter
 * (`ß` → `Ss`, `ﬁ` → `Fi`, the `ǅ`-style digraphs). They can still differ for a first character whose
 * title case is neither its upper case nor listed (Georgian letters, Greek with iota subscript: all
 * non-ASCII, so such an instruction is dropped either way), and where the two Unicode versions differ.
 */
export function pyCapitalize(text: string): string {
  const codePoint = text.codePointAt(0);
  if (codePoint === undefined) return '';
  const first = String.fromCodePoint(codePoint);
  const head =
    codePoint < 0x80
      ? first.toUpperCase()
      : (TITLE_CASE[first] ?? (isGeorgian(codePoint) ? first : first.toUpperCase()));
  // Lower-case the whole string so that context-dependent mappings see the first character too.
  return head + text.toLowerCase().slice(first.toLowerCase().length);
}

function isGeorgian(codePoint: number): boolean {
  // Mkhedruli letters have Mtavruli upper case letters but are their own title case.
  return (codePoint >= 0x10d0 && codePoint <= 0x10fa) || (codePoint >= 0x10fd && codePoint <= 0x10ff);
}

/** A profile's instruction rules: how it normalizes what the model wrote, and the settings of its filter. */
export interface InstructionRules {
  normalize(raw: string): string;
  /** The word bounds and banned words, taken from `options` where the profile lets a run set them. */
  settings(options: FilterOptions): Required<FilterOptions>;
}

/** The reference profiles' filters are fixed: the paper's word bounds and the profile's banned list. */
const referenceSettings = (profile: ProfileName) => (): Required<FilterOptions> => ({
  bannedWords: PROFILES[profile].bannedWords,
  minWords: 4,
  maxWords: 150,
});

/** The instruction rules per profile (see the module comment). */
export const INSTRUCTION_RULES: ProfileTable<InstructionRules> = {
  'self-instruct': {
    normalize: (raw) => pyCapitalize(pyStrip(collapseWhitespace(raw))),
    settings: referenceSettings('self-instruct'),
  },
  alpaca: { normalize: pyStrip, settings: referenceSettings('alpaca') },
  default: {
    normalize: (raw) => pyStrip(collapseWhitespace(raw)),
    settings: (options) => ({
      bannedWords: options.bannedWords ?? PROFILES.default.bannedWords,
      minWords: options.minWords ?? 4,
      maxWords: options.maxWords ?? 150,
    }),
  },
};

/**
 * The instruction text as the profile keeps it: what the model wrote, normalized
 * (see the module comment). Filtering is `checkInstruction`'s job.
 */
export function normalizeInstruction(profile: ProfileName, raw: string): string {
  return INSTRUCTION_RULES[profile].normalize(raw);
}

const WORD_CHAR = '[\\p{L}\\p{N}_]';
const bannedPatterns = new Map<string, RegExp>();

/**
 * One regular expression matching any of `words` as Python's `re.search(r"\b(word)\b", s, re.IGNORECASE)`
 * would: not preceded nor followed by a word character (Python's `\w` on str: Unicode letters, numbers and
 * `_`), with the `i` flag's Unicode case folding plus the dotted and dotless capital/small i that Python
 * also treats as `i`. For words that start and end with word characters (all of the reference lists)
 * this is exactly `\b…\b`; for others (`c++`) it still means "not inside a word", where `\b` would never
 * match. Words are matched literally (the original interpolates them into the pattern unescaped).
 */
function bannedPattern(words: readonly string[]): RegExp | null {
  if (words.length === 0) return null;
  const key = words.join('\u0000');
  let pattern = bannedPatterns.get(key);
  if (pattern === undefined) {
    const alternatives = words.map((word) =>
      [...word]
        .map((ch) => (ch === 'i' || ch === 'I' ? '[iİı]' : ch.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')))
        .join(''),
    );
    pattern = new RegExp(`(?<!${WORD_CHAR})(?:${alternatives.join('|')})(?!${WORD_CHAR})`, 'iu');
    bannedPatterns.set(key, pattern);
  }
  return pattern;
}

/**
 * Checks a normalized instruction (`normalizeInstruction`) against the profile's filters, in the original's
 * order. Returns why it is dropped, or null when it is kept. `options` only apply to the `default` profile.
 */
export function checkInstruction(
  profile: ProfileName,
  text: string,
  options: FilterOptions = {},
): FilterReason | null {
  const { minWords, maxWords, bannedWords: banned } = INSTRUCTION_RULES[profile].settings(options);

  if (text === '') return 'empty';
  const words = countWords(text);
  if (words < minWords) return 'too-short';
  if (words > maxWords) return 'too-long';
  if (bannedPattern(banned)?.test(text)) return 'banned-word';
  if (text.startsWith('Write a program')) return 'write-a-program';
  if (PY_PUNCTUATION.has(text.charAt(0))) return 'starts-with-punctuation';
  if (text.charCodeAt(0) > 0x7f) return 'starts-with-non-ascii';
  return null;
}
