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
 * - `bedrock-guardrail`: Amazon Bedrock Guardrails' `ApplyGuardrail` with the deployment's guardrail
 *   (CDK context `selfinstruct:guardrail`: created by the stack from its policies, or an existing one
 *   named there), or `bedrock-guardrail:<id>:<version>` for another version of that same guardrail: the
 *   functions may apply that guardrail alone (IAM), so "Prepare run" refuses any other. One call per
 *   text, under the run's `callConcurrency`; candidate instructions are screened as `INPUT` (they become
 *   prompts: the prompt-attack filter applies), instances as `OUTPUT` (model answers). Category: the
 *   blocking content filter's type (`violence`, `hate`, `prompt-attack` …), `topic-<name>` for a denied
 *   topic, `denied-word` or `profanity` for the word filters. Each call is billed by text unit (up to
 *   1,000 characters) per policy: it is recorded in the run's call ledger (stage `screen-safety`, its
 *   content-filter and denied-topic units as input tokens) and priced from the price table's
 *   `bedrock-guardrail` entry.
 * - `none`: no screen.
 * Model output is untrusted: the screen only reads it and returns category names from its own list.
 */
import type { ApplyGuardrailCommandOutput } from '@aws-sdk/client-bedrock-runtime';
import type { RegExpMatcher } from 'obscenity';
import { ConfigurationError, ModelRequestFailed, ModelUnavailable } from './errors.ts';
import {
  promptHash,
  retryPolicy,
  ServiceCalls,
  type ServiceCallsOptions,
  withRetries,
} from './model-calls.ts';
import { parseModelId } from './models/model-ids.ts';
import { SAFETY_STAGE } from './ports.ts';
import type { Usage } from './schemas.ts';

/** `safetyScreen` that turns the screen off. */
export const NO_SCREEN = 'none';
/** The default screen. */
export const LEXICON = 'lexicon';
/** `safetyScreen` of the deployment's guardrail (`bedrock-guardrail:<id>:<version>` names a version). */
export const BEDROCK_GUARDRAIL = 'bedrock-guardrail';
/** The price table entry of `ApplyGuardrail` calls (USD per million billed text units). */
export const GUARDRAIL_PRICE_ID = BEDROCK_GUARDRAIL;
/** The CDK context key of the deployment's guardrail (see `infra/guardrail.ts`). */
export const GUARDRAIL_CONTEXT = 'selfinstruct:guardrail';
/** The environment variables that hand the deployment's guardrail to the functions. */
export const GUARDRAIL_ENV = {
  id: 'SELFINSTRUCT_GUARDRAIL_ID',
  version: 'SELFINSTRUCT_GUARDRAIL_VERSION',
} as const;

/** The reason a screened text is dropped for. */
export type UnsafeReason = `unsafe-${string}`;
export const unsafeReason = (category: string): UnsafeReason =>
  `unsafe-${category.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;

/**
 * What the screened texts are: candidate `instructions` (prompts to be) or generated `instances`
 * (answers); a screen that tells inputs from outputs (a guardrail) applies the matching policies.
 */
export type ScreenedText = 'instructions' | 'instances';

/** Screens texts; one category per text, or null when it passes. */
export interface SafetyScreen {
  readonly id: string;
  /** What this invocation's billed screening calls cost, when the screen is billed. */
  readonly usage?: Usage;
  screen(texts: readonly string[], kind?: ScreenedText): Promise<(string | null)[]>;
}

/** Where a billed screen records its calls, and how many it makes at once. */
export interface SafetyScreenOptions extends ServiceCallsOptions {
  /** Where the deployment's guardrail is read from. @default process.env */
  env?: NodeJS.ProcessEnv;
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
    const { describeEndpoint, openAIClient, openAIError } = await import('./models/openai.ts');
    return withRetries(async () => {
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
    }, retryPolicy());
  }
}

/** A Bedrock guardrail version. */
export interface GuardrailRef {
  /** The guardrail's id (the last part of its ARN). */
  id: string;
  /** `DRAFT` or a version number. */
  version: string;
}

const GUARDRAIL_ID = /^bedrock-guardrail:(.+):(DRAFT|[1-9][0-9]{0,7})$/;

/**
 * The guardrail a `bedrock-guardrail…` screen id names, checked against the deployment's (from
 * `GUARDRAIL_ENV`): `ConfigurationError` when the deployment has none or `id` names another guardrail
 * (the functions may apply the deployment's alone), `ModelRequestFailed` when `id` is malformed.
 */
export function guardrailOf(id: string, env: NodeJS.ProcessEnv = process.env): GuardrailRef {
  const deployed = env[GUARDRAIL_ENV.id];
  const deployedVersion = env[GUARDRAIL_ENV.version];
  const how = `deploy with -c ${GUARDRAIL_CONTEXT}='{}' (the stack creates one with the default policies; see the README's "Safety screen")`;
  if (!deployed || !deployedVersion) {
    throw new ConfigurationError(`safety screen "${id}": this deployment has no Bedrock guardrail: ${how}`);
  }
  if (id === BEDROCK_GUARDRAIL) return { id: deployed, version: deployedVersion };
  const match = GUARDRAIL_ID.exec(id);
  if (!match) {
    throw new ModelRequestFailed(
      `Unknown safety screen "${id}": use ${BEDROCK_GUARDRAIL} or ${BEDROCK_GUARDRAIL}:<guardrail id or ARN>:<version or DRAFT>`,
    );
  }
  const identifier = match[1] as string;
  // An ARN ends in `guardrail/<id>`.
  const named = identifier.startsWith('arn:') ? identifier.split('/').at(-1) : identifier;
  if (named !== deployed) {
    throw new ConfigurationError(
      `safety screen "${id}": the functions may apply this deployment's guardrail ${deployed} only (IAM grants bedrock:ApplyGuardrail on it alone); to screen with another, name it in CDK context ${GUARDRAIL_CONTEXT} ({"id": "<id>", "version": "<version>"}) and deploy`,
    );
  }
  return { id: deployed, version: match[2] as string };
}

/** The category names of the content filters (`HATE` → `hate`, `PROMPT_ATTACK` → `prompt-attack`). */
const filterCategory = (type: string) => type.toLowerCase().replace(/_/g, '-');

/**
 * The category an `ApplyGuardrail` reply blocks a text for, or null when the guardrail did not
 * intervene: the first blocking content filter (`violence`, `hate`, `insults`, `sexual`, `misconduct`,
 * `prompt-attack`), else denied topic (`topic-<name>`), else word filter (`profanity` for the managed
 * list, `denied-word` for the custom words), else sensitive information; `guardrail` when the reply names
 * none. A filter in detect mode (action `NONE`) blocks nothing.
 */
export function guardrailCategory(
  reply: Pick<ApplyGuardrailCommandOutput, 'action' | 'assessments'>,
): string | null {
  if (reply.action !== 'GUARDRAIL_INTERVENED') return null;
  for (const assessment of reply.assessments ?? []) {
    const filter = assessment.contentPolicy?.filters?.find((f) => f.action === 'BLOCKED');
    if (filter?.type) return filterCategory(filter.type);
    const topic = assessment.topicPolicy?.topics?.find((t) => t.action === 'BLOCKED');
    if (topic) return `topic-${topic.name ?? 'denied'}`;
    const words = assessment.wordPolicy;
    if (words?.managedWordLists?.some((w) => w.action === 'BLOCKED')) return 'profanity';
    if (words?.customWords?.some((w) => w.action === 'BLOCKED')) return 'denied-word';
    const sensitive = assessment.sensitiveInformationPolicy;
    if (
      sensitive?.piiEntities?.some((e) => e.action === 'BLOCKED') ||
      sensitive?.regexes?.some((r) => r.action === 'BLOCKED')
    ) {
      return 'sensitive-information';
    }
  }
  return 'guardrail';
}

/**
 * The text units of an `ApplyGuardrail` reply that are billed at the price table's `bedrock-guardrail`
 * rate: content filters and denied topics ($0.15 per 1,000 units each as of 2026-11); word filters are
 * free, and the other policies are not configured by the stack.
 */
export const billedGuardrailUnits = (reply: Pick<ApplyGuardrailCommandOutput, 'usage'>): number =>
  (reply.usage?.contentPolicyUnits ?? 0) + (reply.usage?.topicPolicyUnits ?? 0);

/**
 * The `bedrock-guardrail` screen: one `ApplyGuardrail` call per text, made by the shared runner of billed
 * calls (`ServiceCalls`: adaptive limit of `concurrency` calls at once, backoff while the function has
 * time, each billed call in the run's ledger); a call still failing fails the stage with its error, for
 * the state machine's Retry (an unscreened text must not pass).
 */
export class GuardrailScreen implements SafetyScreen {
  private readonly calls: ServiceCalls;

  constructor(
    readonly id: string,
    readonly guardrail: GuardrailRef,
    options: SafetyScreenOptions = {},
  ) {
    this.calls = new ServiceCalls('guardrail', options);
  }

  /** Usage billed by this invocation's calls. */
  get usage(): Usage {
    return this.calls.usage;
  }

  async screen(texts: readonly string[], kind: ScreenedText = 'instructions'): Promise<(string | null)[]> {
    const source = kind === 'instances' ? 'OUTPUT' : 'INPUT';
    // ApplyGuardrail refuses empty text; there is nothing in it to flag.
    return Promise.all(texts.map((text) => (text.trim() === '' ? null : this.#call(text, source))));
  }

  async #call(text: string, source: 'INPUT' | 'OUTPUT'): Promise<string | null> {
    const { ApplyGuardrailCommand } = await import('@aws-sdk/client-bedrock-runtime');
    const { bedrockClient, bedrockError } = await import('./models/bedrock.ts');
    const { id, version } = this.guardrail;
    const reply = await this.calls.call(
      async () => {
        try {
          return await bedrockClient().send(
            new ApplyGuardrailCommand({
              guardrailIdentifier: id,
              guardrailVersion: version,
              source,
              content: [{ text: { text } }],
            }),
          );
        } catch (error) {
          throw bedrockError(error, id, `guardrail ${id}:${version}`);
        }
      },
      (reply) => ({
        stage: SAFETY_STAGE,
        promptHash: promptHash({ prompt: text }),
        model: `${BEDROCK_GUARDRAIL}:${id}:${version}`,
        inputTokens: billedGuardrailUnits(reply),
        estimated: false,
      }),
    );
    return guardrailCategory(reply);
  }
}

function openAIEndpointOf(id: string) {
  const spec = parseModelId(id);
  if ((spec.provider !== 'openai' && spec.provider !== 'openai-compatible') || spec.completions) {
    throw new ModelRequestFailed(
      `Unknown safety screen "${id}": use ${LEXICON}, ${NO_SCREEN}, ${BEDROCK_GUARDRAIL}, openai:<moderation model> or openai-compatible:<model>@<base URL>`,
    );
  }
  return spec;
}

const isGuardrail = (id: string) => id === BEDROCK_GUARDRAIL || id.startsWith(`${BEDROCK_GUARDRAIL}:`);

/**
 * Throws when `id` names no screen this deployment can run (checked by "Prepare run" before any call):
 * `ModelRequestFailed` for an unknown one, `ConfigurationError` for a guardrail the deployment lacks.
 */
export function checkSafetyScreenId(id: string, env: NodeJS.ProcessEnv = process.env): void {
  if (isGuardrail(id)) guardrailOf(id, env);
  else if (id !== LEXICON && id !== NO_SCREEN) openAIEndpointOf(id);
}

/** The screen `id` names; undefined for `none`. `options` serve the billed screens. */
export function createSafetyScreen(id: string, options: SafetyScreenOptions = {}): SafetyScreen | undefined {
  if (id === NO_SCREEN) return undefined;
  if (id === LEXICON) return new LexiconScreen();
  if (isGuardrail(id)) return new GuardrailScreen(id, guardrailOf(id, options.env), options);
  return new ModerationScreen(id, openAIEndpointOf(id));
}
