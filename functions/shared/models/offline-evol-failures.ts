/**
 * The offline model's failed evolutions (Evol-Instruct): requirements an evolution sometimes adds that a
 * model then cannot meet, so that the response-side elimination rules have work to do. An instruction
 * carrying one is answered, in every instance format, with an apology (`evol-could-not-answer`) or with
 * punctuation and stop words only (`evol-stopwords-only`), as real models answer overreaching prompts.
 * Written by `offline-evol.ts`, read by the instance writers of `offline-replies.ts`.
 */
import type { Rng } from '../random.ts';

/** Requirements no model can meet: the reply is an apology. */
export const IMPOSSIBLE_REQUIREMENTS = [
  'Quote the exact figures for every year since 1850 from unpublished archives.',
  'Include the private phone numbers of three named experts.',
  'Predict the exact outcome on a specific day in 2061.',
  'Cite the confidential internal reports that describe it.',
] as const;

/** Requirements a model answers with punctuation and stop words only. */
export const EMPTY_REQUIREMENTS = [
  'Answer without using any noun, verb or adjective.',
  'Reply using only symbols and function words.',
] as const;

const APOLOGIES = [
  "Sorry, I can't provide that: the information it asks for is not available to me.",
  'I am sorry, but I cannot answer this as asked, since it needs data I do not have.',
  "Sorry, that isn't something I can do accurately.",
] as const;

const EMPTY_REPLIES = [
  '... and the, of it?!',
  '-- ; (the) ... and / or ...',
  '?! ... it is, and the ... .',
] as const;

/** How an instruction's answers fail: an apology, an answer empty of content, or not at all. */
export function failureOf(instruction: string): 'apology' | 'empty' | undefined {
  if (IMPOSSIBLE_REQUIREMENTS.some((text) => instruction.includes(text))) return 'apology';
  if (EMPTY_REQUIREMENTS.some((text) => instruction.includes(text))) return 'empty';
  return undefined;
}

/** The output a model writes for an instruction whose answers fail that way. */
export function failedOutput(failure: 'apology' | 'empty', rng: Rng): string {
  const replies = failure === 'apology' ? APOLOGIES : EMPTY_REPLIES;
  return replies[rng.int(replies.length)] as string;
}
