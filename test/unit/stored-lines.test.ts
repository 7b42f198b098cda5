import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readStoredLines, readStoredLinesStreamed } from '../../infra/cli/stored.ts';
import { MemoryObjects } from './fakes.ts';

const Line = z.object({ n: z.number(), text: z.string() });

/** `text` stored, downloaded in pieces of `piece` bytes (a UTF-8 character may be cut between two). */
function stored(text: string, piece: number) {
  const bytes = new TextEncoder().encode(text);
  return {
    async download(key: string) {
      if (key !== 'k') return undefined;
      return (async function* () {
        for (let at = 0; at < bytes.length; at += piece) yield bytes.slice(at, at + piece);
      })();
    },
  };
}

const lines = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    i % 7 === 3 ? '' : JSON.stringify({ n: i, text: `ligne ${i} — 行 ${'é'.repeat(i % 5)}` }),
  ).join('\r\n');

describe('readStoredLinesStreamed', () => {
  it('reads the records readStoredLines reads from the whole text, across batches and cut characters', async () => {
    const text = `${lines(500)}\n`;
    const streamed = await readStoredLinesStreamed(stored(text, 97), 'k', Line, { batchChars: 1_000 });
    expect(streamed).toEqual(readStoredLines(text, Line, 'k'));
    expect(streamed).toHaveLength(500 - 71);
  });

  it('names the same lines of the same problems', async () => {
    const rows = lines(400).split('\r\n');
    rows[5] = '{"n": 5, "text": 7}';
    rows[250] = '{not json';
    rows[399] = '{"n": "last"}';
    const text = rows.join('\n');
    const whole = (() => {
      try {
        readStoredLines(text, Line, 'k');
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(whole).toMatch(/k:6: text:.*\n.*k:251: not valid JSON/);
    await expect(readStoredLinesStreamed(stored(text, 64), 'k', Line, { batchChars: 500 })).rejects.toThrow(
      whole as string,
    );
  });

  it('has nothing for an empty object and undefined for a missing one', async () => {
    expect(await readStoredLinesStreamed(stored('\n\n', 4), 'k', Line)).toEqual([]);
    expect(await readStoredLinesStreamed(stored('', 4), 'other', Line)).toBeUndefined();
    const objects = new MemoryObjects();
    await objects.put('k', `${JSON.stringify({ n: 1, text: 'a' })}\n`);
    expect(await readStoredLinesStreamed(objects, 'k', Line)).toEqual([{ n: 1, text: 'a' }]);
  });
});
