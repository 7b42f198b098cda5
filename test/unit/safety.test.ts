import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkSafetyScreenId,
  createSafetyScreen,
  LexiconScreen,
  unsafeReason,
} from '../../functions/shared/safety.ts';

describe('the lexicon safety screen', () => {
  const screen = new LexiconScreen();

  it('flags profanity, also written to slip past a word list', async () => {
    expect(
      await screen.screen([
        'Explain why this shit happens in winter.',
        'Tell me what the fuuuck is going on.',
        'Rewrite this: "you are an a$$hole"',
        'Write a poem about the ocean.',
      ]),
    ).toEqual(['profanity', 'profanity', 'profanity', null]);
  });

  it('passes every instruction and instance of the bundled seeds, innocent words that contain a listed one included', async () => {
    const texts = readFileSync('seeds/seed_tasks.jsonl', 'utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => {
        const task = JSON.parse(line) as {
          instruction: string;
          instances: { input: string; output: string }[];
        };
        return [task.instruction, ...task.instances.flatMap(({ input, output }) => [input, output])];
      });
    expect(texts.length).toBeGreaterThan(700);
    const flagged = (await screen.screen(texts)).filter((category) => category !== null);
    expect(flagged).toEqual([]);
    expect(await screen.screen(['Add a teaspoon of cumin.', 'Rx amoxicillin PO TID, F/u prn.'])).toEqual([
      null,
      null,
    ]);
  });
});

describe('safety screen ids', () => {
  it('builds the lexicon by default and nothing for none', () => {
    expect(createSafetyScreen('lexicon')?.id).toBe('lexicon');
    expect(createSafetyScreen('none')).toBeUndefined();
    expect(createSafetyScreen('openai:omni-moderation-latest')?.id).toBe('openai:omni-moderation-latest');
  });

  it('refuses a screen it cannot build, before any call', () => {
    expect(() => checkSafetyScreenId('bedrock:amazon.nova-micro-v1:0')).toThrow(/Unknown safety screen/);
    expect(() => checkSafetyScreenId('openai-completions:gpt-3.5-turbo-instruct')).toThrow(
      /Unknown safety screen/,
    );
  });

  it("names rejections by category, in the counters' form", () => {
    expect(unsafeReason('profanity')).toBe('unsafe-profanity');
    expect(unsafeReason('hate/threatening')).toBe('unsafe-hate-threatening');
  });
});
