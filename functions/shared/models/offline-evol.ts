/**
 * The offline model's replies to the Evol-Instruct prompts (`generate-instructions/evol.ts`), with the
 * failures the paper's elimination rules exist for, at rates set by `noise`:
 * - an evolving prompt gets the rewritten instruction: the given one with the operation applied (more
 *   constraints, a deeper inquiry, a concrete focus, explicit reasoning steps, an input in a complex
 *   format), or a new task of the same topic for in-breadth; now and then a rewrite that repeats the
 *   prompt's headings ("#Rewritten Prompt#: …"), one that changes next to nothing, or one that adds a
 *   requirement no answer can meet (see `offline-evol-failures.ts`);
 * - an "equal?" prompt gets one verdict per pair: equal when the second instruction adds next to no
 *   words to the first, now and then the wrong verdict, and now and then prose instead of JSON.
 */
import type { Rng } from '../random.ts';
import { EMPTY_REQUIREMENTS, IMPOSSIBLE_REQUIREMENTS } from './offline-evol-failures.ts';
import { capitalize, cleanTask, fill, pick, topicOf, weighted } from './offline-replies.ts';
import words from './offline-words.json' with { type: 'json' };

/** Per unit of noise: shares of evolutions that copy the prompt, change nothing, overreach, go empty. */
const FAULTS: readonly ['copied' | 'no-gain' | 'impossible' | 'empty', number][] = [
  ['copied', 0.3],
  ['no-gain', 0.5],
  ['impossible', 0.4],
  ['empty', 0.5],
];

const DEEPEN = [
  'Then examine the causes, the trade-offs and the long-term consequences of {t}, and say which of them matters most.',
  'Go beyond the basics: discuss how {t} differs between countries and how it has changed over the last twenty years.',
  'Also weigh the strongest objections to your view of {t} and explain how you would answer each of them.',
];
const CONCRETE = [
  'Focus specifically on {t} in a small coastal town in Portugal, and name two concrete, real-world examples.',
  'Narrow it down to {t} for a family of four on a monthly budget of 300 euros, with specific numbers.',
  'Make it about {t} during the first winter of a new project, and mention three specific tools or resources.',
];
const REASONING = [
  'Work through it step by step: first list the key facts about {t}, then compare at least two options, and finally justify your conclusion.',
  'Reason in stages: state your assumptions about {t}, derive the intermediate results one by one, and only then give the answer.',
];
const COMPLEX_INPUT = [
  'Base the answer on a JSON object describing {t}, with the fields "name", "cost", "duration" and "risks".',
  'The input is a Markdown table about {t} with one row per option and columns for cost, time and benefit.',
  'Use the data given as a CSV list about {t}, with the columns year, count and change, in your answer.',
];
const COPIED_FORMS = [
  (text: string) => `#Rewritten Prompt#: ${text}`,
  (text: string) => `Here is the rewritten prompt: ${text}`,
  (text: string) => `${text.replace(/\.$/, '')}, as the given prompt asks.`,
];

/** The operation an evolving prompt asks for, read from its wording (in-breadth asks for a created prompt). */
function operationOf(prompt: string): string {
  if (/#Created Prompt#:\s*$/.test(prompt)) return 'breadth';
  if (/depth and breadth of the inquiry/i.test(prompt)) return 'deepen';
  if (/more specific/i.test(prompt)) return 'concretize';
  if (/reasoning in several steps|multiple-step reasoning/i.test(prompt)) return 'increase-reasoning';
  if (/complex format/i.test(prompt)) return 'complicate-input';
  return 'add-constraints';
}

/** The instruction an evolving prompt gives: what follows its "Given Prompt" heading. */
function givenInstruction(prompt: string): string {
  const match = /#(?:The )?Given Prompt#:\s*\n([\s\S]*?)\n\s*\n?#(?:Rewritten|Created) Prompt#/.exec(prompt);
  return (match?.[1] ?? prompt.trim().split('\n').at(-2) ?? '').trim();
}

/** A clean evolution of `given` by `operation`. */
function evolve(given: string, operation: string, rng: Rng): string {
  const topic = topicOf(given, rng);
  const base = given.replace(/\s+$/, '');
  const sentence = (bank: readonly string[]) => `${base} ${fill(pick(rng, bank), topic)}`;
  switch (operation) {
    case 'breadth':
      return cleanTask(rng, []);
    case 'deepen':
      return sentence(DEEPEN);
    case 'concretize':
      return sentence(CONCRETE);
    case 'increase-reasoning':
      return sentence(REASONING);
    case 'complicate-input':
      return sentence(COMPLEX_INPUT);
    default: {
      const [first, second] = rng.shuffle(words.constraints.items).slice(0, 2);
      const constraint = (text = '') =>
        text.replace('{n}', pick(rng, words.numbers.items)).replace('{k}', pick(rng, words.counts.items));
      return `${base} ${constraint(first)} ${constraint(second)} ${fill(pick(rng, words.audienceFrames.items), pick(rng, words.audiences.items))}`;
    }
  }
}

/** The reply to an evolving prompt (see the module comment). */
export function evolveReply(prompt: string, rng: Rng, noise: number): string {
  const given = givenInstruction(prompt);
  const operation = operationOf(prompt);
  const total = FAULTS.reduce((sum, [, share]) => sum + share, 0);
  if (rng.next() >= noise * total) return capitalize(evolve(given, operation, rng));
  switch (weighted(rng, FAULTS)) {
    case 'copied':
      return pick(rng, COPIED_FORMS)(evolve(given, operation, rng));
    case 'no-gain':
      return pick(rng, [
        given,
        `Please ${given.charAt(0).toLowerCase()}${given.slice(1)}`,
        `${given} Be clear.`,
      ]);
    case 'impossible':
      return `${evolve(given, operation, rng)} ${pick(rng, IMPOSSIBLE_REQUIREMENTS)}`;
    case 'empty':
      return `${evolve(given, operation, rng)} ${pick(rng, EMPTY_REQUIREMENTS)}`;
  }
}

const wordsOf = (text: string) => new Set(text.toLowerCase().match(/[a-z0-9]+/g) ?? []);

/** Whether `second` adds next to nothing to `first`: at most two words it does not have. */
function sameAs(first: string, second: string): boolean {
  const before = wordsOf(first);
  return [...wordsOf(second)].filter((word) => !before.has(word)).length <= 2;
}

/** The reply to an "equal?" prompt (see the module comment). */
export function equalVerdicts(prompt: string, rng: Rng, noise: number): string {
  const pairs = [...prompt.matchAll(/^First: (.*)\nSecond: (.*)$/gm)];
  if (rng.next() < noise * 0.1) return 'Most of these pairs differ: the second adds requirements.';
  const verdicts = pairs.map(([, first = '', second = '']) => {
    const equal = sameAs(first, second);
    return (rng.next() < noise * 0.1 ? !equal : equal) ? 'equal' : 'not equal';
  });
  return JSON.stringify({ verdicts });
}
