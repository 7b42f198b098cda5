/**
 * The safety screen (the paper found 2–3% of generated instructions offensive): each candidate
 * instruction ("Filter and deduplicate") and each generated instance ("Generate instances") is screened
 * before it joins the pool, and a flagged one is dropped, counted as `unsafe-<category>`, so its text
 * never reaches an export. Screens (run input `safetyScreen`):
 * - `lexicon` (default): the `obscenity` package's English profanity list, matched with its obfuscation
 *   transformers (leet speak, confusable characters, repeated letters) and whitelist; category
 *   `profanity`. Local and free; a word list, so it knows neither context nor meaning.
 * - `openai:<model>` (e.g. `openai:omni-moderation-latest`) or `openai-compatible:<model>@<base URL>`:
 *   the `/moderations` endpoint; the first flagged category, `/` written as `-` (`unsafe-hate-threatening`).
 *   OpenAI does not bill moderation calls, so they are not in the call ledger.
 * - `none`: no screen.
 * Model output is untrusted: the screen only reads it and returns category names from its own list.
 */
import { backOff } from 'exponential-backoff';
import type { RegExpMatcher } from 'obscenity';
import { ModelRequestFailed, ModelThrottled, ModelUnavailable } from './errors.ts';
import { retryPolicy } from './model-calls.ts';
import { parseModelId } from './models/model-ids.ts';

/** `safetyScreen` that turns the screen off. */
export const NO_SCREEN = 'none';
/** The default screen. */
export const LEXICON = 'lexicon';

/** The reason a screened text is dropped for. */
export type UnsafeReason = `unsafe-${string}`;
export const unsafeReason = (category: string): UnsafeReason =>
  `unsafe-${category.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;

/** Screens texts; one category per text, or null when it passes. */
export interface SafetyScreen {
  readonly id: string;
  screen(texts: readonly string[]): Promise<(string | null)[]>;
}

/**
 * Terms the word list matches inside innocent words or abbreviations of the bundled seeds ("cumin",
 * the medical "prn"), added to the package's whitelist.
 */
const WHITELIST = ['cumin', 'cumulative', 'prn', 'cockpit', 'cocktail', 'scunthorpe'];

let matcher: RegExpMatcher | undefined;

/** The `lexicon` screen. */
export class LexiconScreen implements SafetyScreen {
  readonly id = LEXICON;

  async screen(texts: readonly string[]): Promise<(string | null)[]> {
    if (matcher === undefined) {
      // Loaded on first use: "Prepare run" checks screen ids without it.
      const { englishDataset, englishRecommendedTransformers, RegExpMatcher } = await import('obscenity');
      const built = englishDataset.build();
      matcher = new RegExpMatcher({
        ...built,
        whitelistedTerms: [...(built.whitelistedTerms ?? []), ...WHITELIST],
        ...englishRecommendedTransformers,
      });
    }
    const found = matcher;
    return texts.map((text) => (found.hasMatch(text) ? 'profanity' : null));
  }
}

/** Texts per moderation call (OpenAI accepts arrays of inputs). */
const TEXTS_PER_CALL = 32;

/** An OpenAI-compatible `/moderations` endpoint. */
export class ModerationScreen implements SafetyScreen {
  constructor(
    readonly id: string,
    private readonly endpoint: ReturnType<typeof openAIEndpointOf>,
  ) {}

  async screen(texts: readonly string[]): Promise<(string | null)[]> {
    const results: (string | null)[] = [];
    for (let start = 0; start < texts.length; start += TEXTS_PER_CALL) {
      results.push(...(await this.#call(texts.slice(start, start + TEXTS_PER_CALL))));
    }
    return results;
  }

  async #call(input: string[]): Promise<(string | null)[]> {
    const policy = retryPolicy();
    const { describeEndpoint, openAIClient, openAIError } = await import('./models/openai.ts');
    return backOff(
      async () => {
        const { client, apiKey } = await openAIClient(this.endpoint);
        let reply: { results?: { flagged?: unknown; categories?: unknown }[] };
        try {
          reply = await client.moderations.create({ model: this.endpoint.model, input });
        } catch (error) {
          throw openAIError(error, this.endpoint, apiKey);
        }
        const results = Array.isArray(reply.results) ? reply.results : [];
        if (results.length !== input.length) {
          throw new ModelUnavailable(
            `${describeEndpoint(this.endpoint)}: unreadable moderation reply (${input.length} texts sent, ${results.length} results)`,
          );
        }
        return results.map(({ flagged, categories }) => {
          if (flagged !== true) return null;
          const named = Object.entries(
            typeof categories === 'object' && categories !== null ? categories : {},
          ).find(([, on]) => on === true);
          return named ? named[0] : 'flagged';
        });
      },
      {
        numOfAttempts: policy.attempts,
        startingDelay: policy.baseDelayMs,
        maxDelay: policy.maxDelayMs,
        jitter: 'full',
        retry: (error) => error instanceof ModelThrottled || error instanceof ModelUnavailable,
      },
    );
  }
}

function openAIEndpointOf(id: string) {
  const spec = parseModelId(id);
  if ((spec.provider !== 'openai' && spec.provider !== 'openai-compatible') || spec.completions) {
    throw new ModelRequestFailed(
      `Unknown safety screen "${id}": use ${LEXICON}, ${NO_SCREEN}, openai:<moderation model> or openai-compatible:<model>@<base URL>`,
    );
  }
  return spec;
}

/** Throws `ModelRequestFailed` when `id` names no screen (checked by "Prepare run" before any call). */
export function checkSafetyScreenId(id: string): void {
  if (id !== LEXICON && id !== NO_SCREEN) openAIEndpointOf(id);
}

/** The screen `id` names; undefined for `none`. */
export function createSafetyScreen(id: string): SafetyScreen | undefined {
  if (id === NO_SCREEN) return undefined;
  if (id === LEXICON) return new LexiconScreen();
  return new ModerationScreen(id, openAIEndpointOf(id));
}
