import { describe, expect, it } from 'vitest';
import {
  checkInstruction,
  collapseWhitespace,
  countWords,
  FILTER_REASONS,
  FilterReason,
  normalizeInstruction,
  pyCapitalize,
  pyStrip,
} from '../../../functions/shared/engine/filters.ts';

describe('normalizeInstruction', () => {
  it('self-instruct: collapses whitespace, strips, and capitalizes as Python does', () => {
    const normalized = normalizeInstruction('self-instruct', '  write a  POEM\n about\tNASA  ');

    expect(normalized).toBe('Write a poem about nasa');
  });

  it('alpaca: only strips, keeping inner whitespace and case', () => {
    expect(normalizeInstruction('alpaca', '  write a  POEM\n about NASA \n')).toBe(
      'write a  POEM\n about NASA',
    );
  });

  it('default: collapses whitespace and strips, keeping case', () => {
    expect(normalizeInstruction('default', '  write a  POEM\n about NASA ')).toBe('write a POEM about NASA');
  });

  it("uses Python's whitespace: U+0085 and U+001C count, U+FEFF and U+200B don't", () => {
    expect(collapseWhitespace('a\u0085b\u001cc\u3000d')).toBe('a b c d');
    expect(pyStrip('\ufeffa\u200b ')).toBe('\ufeffa\u200b');
    expect(countWords('one\u00a0two\u2003three\ufefffour')).toBe(3);
  });
});

describe('pyCapitalize', () => {
  it('upper-cases the first character and lower-cases all the others', () => {
    expect(pyCapitalize('hELLO wORLD')).toBe('Hello world');
    expect(pyCapitalize('1st PLACE')).toBe('1st place');
    expect(pyCapitalize('')).toBe('');
  });

  it('title-cases the first character where that differs from upper case', () => {
    expect(pyCapitalize('ßig')).toBe('Ssig');
    expect(pyCapitalize('ﬁx THIS')).toBe('Fix this');
    expect(pyCapitalize('ǆungla')).toBe('ǅungla');
  });

  it('lower-cases a final sigma in context', () => {
    expect(pyCapitalize('ΑΣ ΟΔΟΣ')).toBe('Ας οδος');
  });
});

describe('checkInstruction', () => {
  const ok = 'Explain why the sky is blue';

  it('keeps an ordinary instruction', () => {
    expect(checkInstruction('self-instruct', ok)).toBeNull();
  });

  it.each([
    ['', 'empty'],
    ['Sort these numbers', 'too-short'],
    [`Repeat ${'word '.repeat(150)}`, 'too-long'],
    ['Describe the image below in detail', 'banned-word'],
    ['Write a program that prints primes', 'write-a-program'],
    ['"Quote" this famous sentence please', 'starts-with-punctuation'],
    ['Écris un poème sur la mer', 'starts-with-non-ascii'],
  ] as const)('drops %j for %s', (text, reason) => {
    expect(checkInstruction('self-instruct', text)).toBe(reason);
  });

  it('counts words as Python does: 4 words pass, 151 do not', () => {
    expect(checkInstruction('self-instruct', 'Sort these four numbers')).toBeNull();
    expect(checkInstruction('self-instruct', `Repeat ${'word '.repeat(148)}now`)).toBeNull();
    expect(checkInstruction('self-instruct', `Repeat ${'word '.repeat(149)}now`)).toBe('too-long');
  });

  it('matches banned words as whole words in any case: "File" fails, "filed" passes', () => {
    expect(checkInstruction('self-instruct', 'Open the File and read it')).toBe('banned-word');
    expect(checkInstruction('self-instruct', 'Summarize the complaint filed by the tenant')).toBeNull();
    expect(checkInstruction('self-instruct', 'Name the plotting techniques you know')).toBeNull();
    expect(checkInstruction('self-instruct', 'List the maps, graphs and pictures')).toBe('banned-word');
  });

  it('matches the phrase "go to" but not "goto" or "go  to"', () => {
    expect(checkInstruction('self-instruct', 'Tell me where to go to eat')).toBe('banned-word');
    expect(checkInstruction('self-instruct', 'Explain why goto is harmful')).toBeNull();
    expect(checkInstruction('alpaca', 'Tell me where to go  to eat')).toBeNull();
  });

  it("treats letters as word characters the way Python's \\b does", () => {
    expect(checkInstruction('self-instruct', 'Describe the_image variable please')).toBeNull();
    expect(checkInstruction('self-instruct', 'Describe the éimage variable please')).toBeNull();
    // Python's IGNORECASE also matches the dotted capital I.
    expect(checkInstruction('self-instruct', 'Describe the İMAGE variable please')).toBe('banned-word');
  });

  it('alpaca adds video, audio, music, flowchart and diagram, and does not capitalize', () => {
    expect(checkInstruction('alpaca', 'Recommend some music for studying')).toBe('banned-word');
    expect(checkInstruction('self-instruct', 'Recommend some music for studying')).toBeNull();
    expect(checkInstruction('alpaca', 'write a program to add numbers')).toBeNull();
  });

  it('default: banned words and word bounds are configurable', () => {
    const options = { bannedWords: ['c++', 'spreadsheet'], minWords: 2, maxWords: 5 };

    expect(checkInstruction('default', 'Open the image', options)).toBeNull();
    expect(checkInstruction('default', 'Fill the Spreadsheet', options)).toBe('banned-word');
    expect(checkInstruction('default', 'Learn c++ today', options)).toBe('banned-word');
    expect(checkInstruction('default', 'Go', options)).toBe('too-short');
    expect(checkInstruction('default', 'one two three four five six', options)).toBe('too-long');
    expect(checkInstruction('default', 'Describe this image please')).toBe('banned-word');
  });

  it('exports every reason for counting', () => {
    expect(FilterReason.options).toEqual([...FILTER_REASONS]);
    expect(FilterReason.safeParse('banned-word').success).toBe(true);
  });
});
