/**
 * Synthetic instructions for tests and the scale bench: drawn from small word lists with a seeded
 * generator, so pools of any size have the overlaps (shared verbs, objects, whole phrases) that give
 * the ROUGE-L gate real work and every score from 0 to near-duplicates.
 */
import { createRng } from '../../functions/shared/random.ts';

const VERBS = [
  'Write',
  'Explain',
  'List',
  'Describe',
  'Summarize',
  'Classify',
  'Compare',
  'Suggest',
  'Translate',
  'Plan',
  'Rewrite',
  'Give',
  'Outline',
  'Identify',
  'Draft',
  'Recommend',
];
const ADJECTIVES = [
  'short',
  'detailed',
  'friendly',
  'formal',
  'simple',
  'clear',
  'funny',
  'careful',
  'brief',
  'honest',
  'practical',
  'creative',
];
const NOUNS = [
  'poem',
  'email',
  'recipe',
  'story',
  'summary',
  'plan',
  'review',
  'letter',
  'list',
  'guide',
  'report',
  'speech',
  'song',
  'riddle',
  'lesson',
  'budget',
  'itinerary',
  'essay',
  'tweet',
  'outline',
];
const TOPICS = [
  'the sea',
  'a busy manager',
  'a rainy weekend',
  'the first snow',
  'a new bakery',
  'houseplants',
  'a job interview',
  'the moon',
  'electric cars',
  'a school trip',
  'chess openings',
  'sourdough bread',
  'a city park',
  'migrating birds',
  'a birthday party',
  'solar panels',
  'ancient Rome',
  'a lost dog',
  'morning routines',
  'volcanoes',
];
const TAILS = [
  'for a child',
  'in three sentences',
  'with a title',
  'for a newsletter',
  'in plain words',
  'using bullet points',
  'for beginners',
  'in a warm tone',
  '',
  '',
  '',
];

/** `n` instructions from `seed` (the same ones for the same arguments); roughly one in `1 / variants` repeats a phrase with one word changed. */
export function syntheticInstructions(n: number, seed: string): string[] {
  const rng = createRng(seed);
  const pick = <T>(items: readonly T[]) => items[rng.int(items.length)] as T;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const tail = pick(TAILS);
    const words = [pick(VERBS), 'a', pick(ADJECTIVES), pick(NOUNS), 'about', pick(TOPICS)];
    // A number makes most instructions distinct, as a large real pool's are.
    if (rng.next() < 0.7) words.push(`number ${rng.int(20_000)}`);
    out.push(`${words.join(' ')}${tail ? ` ${tail}` : ''}.`);
  }
  return out;
}
