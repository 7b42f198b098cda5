/**
 * The verb–noun structure of an instruction, for the Self-Instruct paper's diversity chart (Wang et al.,
 * 2022, figure 2: the 20 most common root verbs and their 4 most common direct noun objects).
 *
 * The paper parsed each instruction with the Berkeley Neural Parser and took the verb closest to the root
 * of the parse tree and its first direct noun object. A constituency parser is a large model; this
 * approximates it with compromise's part-of-speech tagger and a few rules over the tagged terms:
 * - the root verb is the first verb of the first sentence that reads as a command: a sentence that opens
 *   with a question word, a copula or an auxiliary ("What is …", "Is the …", "Can you …") is a question,
 *   and one whose first verb is not in the base form or follows a subject, a modal or "to" ("You are …",
 *   "The input is …", "you need to …") is a statement; both are skipped. A leading participle clause
 *   ("Given a list of numbers, find …") is skipped up to its comma.
 * - the direct object is the head (last noun) of the noun phrase right after the verb, skipping
 *   determiners, adjectives, adverbs, numbers, possessives and an indirect-object pronoun ("Tell me a
 *   joke" → joke); a preposition, conjunction, verb or punctuation before any noun means there is none
 *   ("Explain why …", "Decide from …").
 * Verbs and nouns are lemmatized (compromise's `root`: "essays" → "essay") and lower-cased; words that
 * are not plain words (digits, symbols) don't count. The rules miss what a parser gets right in long,
 * nested instructions, so the chart shows the same kind of picture as the paper's, not the same numbers.
 */
import nlp from 'compromise';

/** A root verb and its direct noun object, both lemmatized and lower-cased. */
export interface VerbNoun {
  verb: string;
  noun: string;
}

interface Term {
  text: string;
  normal?: string;
  root?: string;
  pre?: string;
  post?: string;
  tags: string[];
}

const WORD = /^\p{L}[\p{L}\p{M}'’-]*$/u;
const CLAUSE_END = /[,;:.!?()[\]{}"“”]/;
const NOT_ROOT = ['Copula', 'Auxiliary', 'Modal', 'Participle', 'Gerund', 'PastTense'];
const IN_NOUN_PHRASE = ['Determiner', 'Adjective', 'Adverb', 'Value', 'Possessive', 'Pronoun'];

const has = (term: Term, ...tags: string[]) => tags.some((tag) => term.tags.includes(tag));
const lemma = (term: Term) => (term.root || term.normal || term.text).toLowerCase();
const endsClause = (term: Term) => CLAUSE_END.test(term.post ?? '');

/** The position of the sentence's root verb, or -1 when the sentence is not a command. */
function rootVerb(terms: Term[]): number {
  const [first] = terms;
  if (!first || has(first, 'QuestionWord', 'Copula', 'Auxiliary', 'Modal')) return -1;
  let start = 0;
  // "Given a list of numbers, find …": the participle clause is not the root.
  if (has(first, 'Participle', 'Gerund', 'PastTense') || first.normal === 'given') {
    const comma = terms.findIndex((term) => endsClause(term));
    if (comma < 0) return -1;
    start = comma + 1;
  }
  for (let i = start; i < terms.length; i++) {
    const term = terms[i] as Term;
    if (!has(term, 'Verb')) continue;
    const before = terms[i - 1];
    const afterSubject = before !== undefined && i > start && has(before, 'Pronoun', 'Modal', 'Noun');
    const eligible =
      !has(term, ...NOT_ROOT) && has(term, 'Imperative', 'Infinitive') && before?.normal !== 'to';
    return eligible && !afterSubject ? i : -1;
  }
  return -1;
}

/** The head noun of the noun phrase right after the verb at `verb`, or -1. */
function directObject(terms: Term[], verb: number): number {
  if (endsClause(terms[verb] as Term)) return -1;
  let head = -1;
  for (let i = verb + 1; i < terms.length; i++) {
    const term = terms[i] as Term;
    const previous = terms[i - 1] as Term;
    if (has(term, 'Noun') && !has(term, 'Pronoun', 'Possessive')) {
      // "function chunk(arr, size)": the phrase ends at the first token that is not a plain word.
      if (!WORD.test(lemma(term))) break;
      head = i;
    } else if (head >= 0) {
      break;
    } else {
      // A participle after a determiner or adjective modifies the noun: "the nested object".
      const participle =
        has(term, 'Participle', 'Gerund', 'PastTense') && has(previous, 'Determiner', 'Adjective');
      if (!participle && !has(term, ...IN_NOUN_PHRASE)) break;
    }
    if (endsClause(term)) break;
  }
  return head;
}

/**
 * The instruction's root verb and its direct noun object (see the module comment for the rules), or
 * `undefined` when it has no such structure (a question, a statement, a verb without a noun object).
 */
export function verbNoun(instruction: string): VerbNoun | undefined {
  return ofSentences(nlp(instruction).compute('root').json() as Sentence[]);
}

interface Sentence {
  terms: (Term & { offset?: { start: number } })[];
}

/** Instructions are tagged as paragraphs of one text: compromise then spends 2–3× less time than on each alone. */
const PARAGRAPH = '\n\n';

/**
 * `verbNoun` of many instructions at once, with the same result for each: they are tagged as the
 * paragraphs of one document (a paragraph break ends a sentence) and each sentence goes back to its
 * instruction by its offset.
 */
export function verbNouns(instructions: readonly string[]): (VerbNoun | undefined)[] {
  const starts: number[] = [];
  let at = 0;
  for (const instruction of instructions) {
    starts.push(at);
    at += instruction.length + PARAGRAPH.length;
  }
  const owner = (offset: number) => {
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((starts[middle] as number) <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  };
  const sentences = instructions.map((): Sentence[] => []);
  const text = instructions.join(PARAGRAPH);
  for (const sentence of nlp(text).compute('root').json({ offset: true }) as Sentence[]) {
    const first = sentence.terms[0]?.offset?.start;
    if (first !== undefined) sentences[owner(first)]?.push(sentence);
  }
  return sentences.map(ofSentences);
}

function ofSentences(sentences: Sentence[]): VerbNoun | undefined {
  for (const { terms } of sentences) {
    const verb = rootVerb(terms);
    if (verb < 0) continue;
    const noun = directObject(terms, verb);
    if (noun < 0) return undefined;
    const pair = { verb: lemma(terms[verb] as Term), noun: lemma(terms[noun] as Term) };
    return WORD.test(pair.verb) ? pair : undefined;
  }
  return undefined;
}
