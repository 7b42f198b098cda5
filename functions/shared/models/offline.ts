/**
 * The offline model: a deterministic stand-in for an LLM, so that the whole pipeline can be tried with
 * no network and no model. Its reply is a pure function of the seed and the request.
 *
 * It answers each request in the text format a real model would for the request's prompt format (its
 * `format` tag): a continuation of a numbered list, Alpaca's `###` blocks, JSON objects, Yes/No,
 * Example/Input/Output blocks, Class label blocks. The writers (`offline-replies.ts`) make new tasks by
 * recombining the demonstrations in the prompt with the word banks of `offline-words.json`, so that most
 * of them pass a ROUGE-L gate of 0.7 and some do not.
 *
 * At a rate set by `noise` it makes the mistakes real models make and the filters exist for:
 * near-duplicates of a demonstration, banned words ("Draw a graph of …", "Write a program that …"),
 * too-short items, items starting with punctuation or a non-ASCII character, malformed lines or JSON
 * items, replies cut by the token limit; and among instances, outputs ending with ":", inputs equal to
 * their output, empty outputs and conflicting outputs for one input; among judge verdicts, prose, scores
 * out of range and JSON cut short; among explained answers (a teacher's), empty replies, refusals, bare
 * answers without reasoning and explanations cut short; among backtranslated instructions, ones that do not fit their passage,
 * generic ones many passages share, and prose instead of JSON (`offline-backtranslate.ts`). Stop sequences and `maxTokens` are
 * honoured (a reply longer than `maxTokens` comes back cut, with `finish: 'length'`).
 *
 * Token counts are estimated as ceil(characters / 4).
 */
import { createHash } from 'node:crypto';
import type { ModelFormat, ModelReply, ModelRequest, TextModel } from '../ports.ts';
import { createRng, type Rng } from '../random.ts';
import { backtranslation } from './offline-backtranslate.ts';
import { equalVerdicts, evolveReply } from './offline-evol.ts';
import {
  alpacaBlocks,
  classLabelBlocks,
  exampleBlocks,
  explainedAnswer,
  jsonFlag,
  jsonInstances,
  jsonTasks,
  judgeVerdict,
  numberedList,
  type ReplyWriter,
  yesNo,
} from './offline-replies.ts';
import { estimatedUsage } from './usage.ts';

/** Options of the offline model. */
export interface OfflineModelOptions {
  /** Changes every reply; the same seed and request always give the same reply. @default 'offline' */
  seed?: string;
  /** Share of items (tasks, instances) that are deliberately faulty, in [0, 1]. @default 0.15 */
  noise?: number;
}

/** Share of replies (of the generation stages) cut at a random point, per unit of noise. */
const TRUNCATION_PER_NOISE = 0.2;

/** A deterministic, offline stand-in for a text model (see the module comment). */
export class OfflineModel implements TextModel {
  readonly id = 'offline';
  readonly #seed: string;
  readonly #noise: number;

  constructor({ seed = 'offline', noise = 0.15 }: OfflineModelOptions = {}) {
    if (!(noise >= 0 && noise <= 1)) throw new RangeError(`noise must be in [0, 1], got ${noise}`);
    this.#seed = seed;
    this.#noise = noise;
  }

  async generate(request: ModelRequest): Promise<ModelReply> {
    const started = performance.now();
    // The draws depend on what a provider would see; the `format` tag only names the prompt's format, and
    // is left out so that the same prompt gets the same reply as in runs recorded before it existed.
    const key = JSON.stringify([
      this.#seed,
      this.#noise,
      request.stage,
      request.kind,
      request.system ?? '',
      request.prompt,
      request.temperature,
      request.topP,
      request.maxTokens,
      request.stop ?? [],
      request.json ?? false,
    ]);
    const rng = createRng(createHash('sha256').update(key).digest('base64'));
    const draft = compose(request, rng, this.#noise);
    const { text, finish } = limit(draft, request, rng, this.#noise);
    return {
      text,
      finish,
      usage: estimatedUsage(request, text),
      latencyMs: performance.now() - started,
      model: this.id,
    };
  }
}

/** The reply a model would write if nothing stopped it, and whether it may be cut at random. */
interface Draft {
  text: string;
  /** Generation replies are sometimes cut at random; one-word answers are not. */
  mayTruncate: boolean;
}

/** Applies the stop sequences, then the token limit, then (sometimes) a random cut. */
function limit(
  draft: Draft,
  request: ModelRequest,
  rng: Rng,
  noise: number,
): Pick<ModelReply, 'text' | 'finish'> {
  let text = draft.text;
  for (const stop of request.stop ?? []) {
    const at = stop === '' ? -1 : text.indexOf(stop);
    if (at >= 0) text = text.slice(0, at);
  }
  const maxChars = request.maxTokens * 4;
  if (text.length > maxChars) return { text: text.slice(0, maxChars), finish: 'length' };
  if (draft.mayTruncate && text.length > 40 && rng.next() < noise * TRUNCATION_PER_NOISE) {
    // The model would have gone on past the limit: the reply ends mid-item.
    const at = Math.floor(text.length * (0.5 + 0.45 * rng.next()));
    return { text: text.slice(0, at), finish: 'length' };
  }
  return { text, finish: 'stop' };
}

/**
 * The reply writer of each prompt format, and whether its reply may be cut at random (generation
 * replies may; one-word answers are not).
 */
const WRITERS: Record<ModelFormat, { write: ReplyWriter; mayTruncate: boolean }> = {
  'instructions/self-instruct': { write: numberedList, mayTruncate: true },
  'instructions/alpaca': { write: alpacaBlocks, mayTruncate: true },
  'instructions/default': { write: jsonTasks, mayTruncate: true },
  'classify/self-instruct': { write: yesNo, mayTruncate: false },
  'classify/default': { write: jsonFlag, mayTruncate: false },
  'instances/self-instruct-classification': { write: classLabelBlocks, mayTruncate: true },
  'instances/self-instruct-generation': { write: exampleBlocks, mayTruncate: true },
  'instances/default-classification': { write: jsonInstances(true), mayTruncate: true },
  'instances/default-generation': { write: jsonInstances(false), mayTruncate: true },
  // A verdict's malformed replies are the writer's own (`judgeVerdict`).
  'judge/default': { write: judgeVerdict, mayTruncate: false },
  // An explanation may be cut by the token limit; its other faults are the writer's (`explainedAnswer`).
  'teach/explained': { write: explainedAnswer, mayTruncate: true },
  'backtranslate/default': { write: backtranslation, mayTruncate: true },
  'evol/evolve': { write: evolveReply, mayTruncate: true },
  'evol/equal': { write: equalVerdicts, mayTruncate: false },
};

/** Dispatches on the request's format tag. */
function compose(request: ModelRequest, rng: Rng, noise: number): Draft {
  const { write, mayTruncate } = WRITERS[request.format];
  return { text: write(request.prompt, rng, noise), mayTruncate };
}
