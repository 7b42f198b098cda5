/**
 * The offline model's reply to the backtranslation prompt (`backtranslate/default`, method
 * `backtranslate`): it reads the passage in the prompt, finds what it is about (its heading, else its most
 * frequent content words) and writes an instruction the passage answers, in the JSON the prompt asks for,
 * with grounded question–answer pairs (sentences of the passage as answers) when the prompt asks for them.
 *
 * At a rate set by `noise` it makes the mistakes a real model makes here: an instruction that does not fit
 * the passage (another topic: the judge's curation is for these), a generic instruction that many
 * passages get alike ("Explain the following topic in detail.": the ROUGE-L gate catches the repeats), an
 * instruction that points at "the passage" (not self-contained), prose instead of JSON, and a pair
 * without its answer. `offline.ts` cuts some replies at random, as for the other generation prompts.
 */
import type { Rng } from '../random.ts';
import words from './offline-words.json' with { type: 'json' };

const TOPICS = words.topics.items;
const FRAMES = words.frames.items;

/** Words that say nothing about what a passage is about. */
const STOP = new Set(
  'about above after again against all also and any are because been before being below between both but can could does doing down during each every few from further have having here into itself just more most must once only other over same should some such than that their them then there these they this those through under until very were what when where which while will with within would your you'.split(
    ' ',
  ),
);

/** The content words of `text` (lower case, four letters or more, not stop words). */
export function contentWords(text: string): string[] {
  return (text.toLowerCase().match(/[a-z][a-z'-]{3,}/g) ?? []).filter((word) => !STOP.has(word));
}

/** What a passage is about: its heading when it starts with one, else its two most frequent content words. */
function subject(passage: string): { heading?: string; words: string[] } {
  const first = passage.split('\n')[0]?.trim() ?? '';
  const heading = first.replace(/^#+\s*/, '').replace(/[.:]$/, '');
  const counts = new Map<string, number>();
  for (const word of contentWords(passage)) counts.set(word, (counts.get(word) ?? 0) + 1);
  // Most frequent first; among equals, the one the passage says first (Map keeps first-seen order).
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([w]) => w);
  const isHeading =
    first.length > 0 &&
    first.length <= 60 &&
    (/^#/.test(first) || !/[.!?]$/.test(first) || passage.includes(`${first}\n`));
  return isHeading && heading.split(/\s+/).length <= 8 ? { heading, words: top } : { words: top };
}

const lower = (text: string) => text.charAt(0).toLowerCase() + text.slice(1);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)] as T;

/** A clean instruction the passage answers. */
function fitting(passage: string, rng: Rng): string {
  const { heading, words: top } = subject(passage);
  const [a = 'this topic', b] = top;
  if (heading) {
    return pick(rng, [
      `Explain ${lower(heading)} to a beginner.`,
      `Give practical advice on ${lower(heading)}.`,
      `What should I know about ${lower(heading)}?`,
      `Write a short guide to ${lower(heading)}.`,
    ]);
  }
  return pick(rng, [
    `Explain how ${a} and ${b ?? 'its care'} are related, with practical advice.`,
    `What do I need to know about ${a}${b ? ` and ${b}` : ''}?`,
    `Give me a short practical explanation of ${a}${b ? `, including ${b}` : ''}.`,
    `Describe what to do about ${a}${b ? ` when it comes to ${b}` : ''}, in one paragraph.`,
  ]);
}

/** Sentences of a passage, as answers. */
function sentences(passage: string): string[] {
  return (passage.replace(/\s+/g, ' ').match(/[^.!?]+[.!?]/g) ?? [])
    .map((s) => s.trim())
    .filter((s) => s.length > 30);
}

/** Grounded question–answer pairs: a sentence of the passage and a question its content words ask. */
function pairs(passage: string, count: number, rng: Rng, noise: number): string[] {
  return sentences(passage)
    .slice(0, count)
    .map((answer) => {
      // Its three longest content words, in the sentence's order: questions of one passage differ.
      const words = contentWords(answer);
      const key = [...words].sort((x, y) => y.length - x.length).slice(0, 3);
      const asked = words.filter((word, i) => key.includes(word) && words.indexOf(word) === i).join(', ');
      const question = `${pick(rng, ['What is said about', 'Explain the point about', 'What is the advice concerning'])} ${asked || 'this'}?`;
      if (rng.next() < noise * 0.3) return JSON.stringify({ question });
      return JSON.stringify({ question, answer });
    });
}

/** The reply to a backtranslation prompt (see the module comment). */
export function backtranslation(prompt: string, rng: Rng, noise: number): string {
  const passage = /"""\n([\s\S]*?)\n"""/.exec(prompt)?.[1] ?? '';
  const count = Number(/up to (\d+) questions/.exec(prompt)?.[1] ?? 0);
  let instruction = fitting(passage, rng);
  if (rng.next() < noise * 2) {
    switch (pick(rng, ['misfit', 'misfit', 'generic', 'pointing', 'prose'] as const)) {
      case 'misfit':
        instruction = pick(rng, FRAMES).replace('{T}', pick(rng, TOPICS)).replace('{t}', pick(rng, TOPICS));
        break;
      case 'generic':
        instruction = 'Explain the following topic in detail.';
        break;
      case 'pointing':
        instruction = 'Summarize the passage above in your own words.';
        break;
      case 'prose':
        return `A good instruction for this passage would be: ${instruction}`;
    }
  }
  const items = count > 0 ? `, "pairs": [${pairs(passage, count, rng, noise).join(', ')}]` : '';
  return `{"instruction": ${JSON.stringify(instruction)}${items}}`;
}
