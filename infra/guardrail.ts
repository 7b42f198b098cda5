/**
 * The deployment's Amazon Bedrock guardrail, the safety screen `bedrock-guardrail` applies
 * (`functions/shared/safety.ts`). CDK context `selfinstruct:guardrail` configures it:
 * - policies (a JSON object, `{}` for the defaults): the stack creates a guardrail (`CfnGuardrail`) and a
 *   version of it (`CfnGuardrailVersion`, replaced whenever the policies change, so the functions always
 *   apply the version that matches the context);
 * - `{"id": "<guardrail id>", "version": "<version>"}`: an existing guardrail, which the stack only grants.
 * Either way the screening functions get its id and version in their environment and may call
 * `bedrock:ApplyGuardrail` on that guardrail's ARN alone.
 */
import { createHash } from 'node:crypto';
import { Stack } from 'aws-cdk-lib';
import * as bedrock from 'aws-cdk-lib/aws-bedrock';
import { Construct } from 'constructs';
import { z } from 'zod';
import { ConfigurationError } from '../functions/shared/errors.ts';
import { GUARDRAIL_CONTEXT } from '../functions/shared/safety.ts';

/** Strengths of a content filter: how confident the classifier must be before it blocks. */
const Strength = z.enum(['NONE', 'LOW', 'MEDIUM', 'HIGH']);

/** The content filter categories of Bedrock Guardrails. */
export const CONTENT_FILTERS = [
  'HATE',
  'INSULTS',
  'SEXUAL',
  'VIOLENCE',
  'MISCONDUCT',
  'PROMPT_ATTACK',
] as const;

/**
 * The default strength of every category: `MEDIUM` blocks what the classifier finds with medium or high
 * confidence, so a task that only mentions a hard subject ("explain how vaccines kill bacteria") mostly
 * passes while offensive text does not; `HIGH` (which also blocks low confidence) would drop far more.
 */
export const DEFAULT_FILTER_STRENGTH = 'MEDIUM';

/** The policies of a guardrail the stack creates. */
export const GuardrailPolicies = z
  .object({
    /** Strength per content filter category; a category left out gets `DEFAULT_FILTER_STRENGTH`. */
    filters: z.partialRecord(z.enum(CONTENT_FILTERS), Strength).default({}),
    /** Denied topics (each costs as much as the content filters: billed per text unit). */
    deniedTopics: z
      .array(
        z
          .object({
            name: z.string().regex(/^[0-9a-zA-Z-_ !?.]{1,100}$/),
            definition: z.string().min(1).max(200),
            examples: z.array(z.string().min(1).max(100)).max(5).optional(),
          })
          .strict(),
      )
      .max(30)
      .default([]),
    /** Words and phrases to block (free). */
    deniedWords: z.array(z.string().min(1).max(100)).max(10_000).default([]),
    /** Block the managed profanity word list (free). @default true */
    profanity: z.boolean().default(true),
  })
  .strict();
export type GuardrailPolicies = z.infer<typeof GuardrailPolicies>;

/** An existing guardrail the deployment applies instead of creating one. */
export const ExistingGuardrail = z
  .object({
    id: z.string().regex(/^[a-z0-9]{1,64}$/, 'a guardrail id (the last part of its ARN)'),
    version: z.string().regex(/^(DRAFT|[1-9][0-9]{0,7})$/, 'DRAFT or a version number'),
  })
  .strict();
export type ExistingGuardrail = z.infer<typeof ExistingGuardrail>;

/** What `selfinstruct:guardrail` may say. */
export type GuardrailSetting = { existing: ExistingGuardrail } | { policies: GuardrailPolicies };

/**
 * Reads the context value: a JSON object (or its text, as `-c key='{…}'` passes it), `true` or
 * `"default"` for the default policies; `undefined` (or `false`/`""`) for no guardrail. Throws
 * `ConfigurationError` naming the context key and every bad field.
 */
export function parseGuardrailSetting(value: unknown): GuardrailSetting | undefined {
  if (value === undefined || value === false || value === '' || value === 'false') return undefined;
  let json = value;
  if (value === true || value === 'true' || value === 'default') json = {};
  else if (typeof value === 'string') {
    try {
      json = JSON.parse(value);
    } catch {
      throw new ConfigurationError(`${GUARDRAIL_CONTEXT} is not JSON: ${value}`);
    }
  }
  const problems = (error: z.ZodError) =>
    error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
  if (typeof json === 'object' && json !== null && 'id' in json) {
    const existing = ExistingGuardrail.safeParse(json);
    if (!existing.success) throw new ConfigurationError(`${GUARDRAIL_CONTEXT}: ${problems(existing.error)}`);
    return { existing: existing.data };
  }
  const policies = GuardrailPolicies.safeParse(json);
  if (!policies.success) throw new ConfigurationError(`${GUARDRAIL_CONTEXT}: ${problems(policies.error)}`);
  return { policies: policies.data };
}

/** The deployment's guardrail: its ARN (what IAM grants), its id and the version the functions apply. */
export interface DeployedGuardrail {
  readonly arn: string;
  readonly id: string;
  readonly version: string;
}

/** The message a blocked text would be replaced with (unused by the screen, which drops the text). */
const BLOCKED_MESSAGE = 'Blocked by the Self-Instruct safety screen.';

/** The guardrail the stack creates from `policies`, with a version of exactly those policies. */
export class SelfInstructGuardrail extends Construct implements DeployedGuardrail {
  readonly guardrail: bedrock.CfnGuardrail;
  readonly guardrailVersion: bedrock.CfnGuardrailVersion;
  readonly arn: string;
  readonly id: string;
  readonly version: string;

  constructor(scope: Construct, id: string, policies: GuardrailPolicies) {
    super(scope, id);
    const filtersConfig = CONTENT_FILTERS.map((type) => {
      const strength = policies.filters[type] ?? DEFAULT_FILTER_STRENGTH;
      // Bedrock evaluates prompt attacks on inputs only: their output strength must be NONE.
      return { type, inputStrength: strength, outputStrength: type === 'PROMPT_ATTACK' ? 'NONE' : strength };
    });
    const words = policies.deniedWords.map((text) => ({ text }));
    this.guardrail = new bedrock.CfnGuardrail(this, 'Guardrail', {
      name: `${Stack.of(this).stackName}-safety-screen`,
      description: 'Safety screen of generated instructions and instances (Self-Instruct)',
      blockedInputMessaging: BLOCKED_MESSAGE,
      blockedOutputsMessaging: BLOCKED_MESSAGE,
      contentPolicyConfig: { filtersConfig },
      ...(policies.deniedTopics.length > 0
        ? {
            topicPolicyConfig: {
              topicsConfig: policies.deniedTopics.map((topic) => ({ ...topic, type: 'DENY' })),
            },
          }
        : {}),
      ...(words.length > 0 || policies.profanity
        ? {
            wordPolicyConfig: {
              ...(words.length > 0 ? { wordsConfig: words } : {}),
              ...(policies.profanity ? { managedWordListsConfig: [{ type: 'PROFANITY' }] } : {}),
            },
          }
        : {}),
    });
    // A version is a snapshot taken when it is created: a new one (a replacement) for other policies.
    const digest = createHash('sha256').update(JSON.stringify(policies)).digest('hex').slice(0, 12);
    this.guardrailVersion = new bedrock.CfnGuardrailVersion(this, 'Version', {
      guardrailIdentifier: this.guardrail.attrGuardrailId,
      description: `Policies ${digest}`,
    });
    this.arn = this.guardrail.attrGuardrailArn;
    this.id = this.guardrail.attrGuardrailId;
    this.version = this.guardrailVersion.attrVersion;
  }
}

/** The deployment's guardrail for `setting`: created, or the existing one's ARN in this account and region. */
export function deployGuardrail(scope: Construct, setting: GuardrailSetting): DeployedGuardrail {
  if ('policies' in setting) return new SelfInstructGuardrail(scope, 'SafetyGuardrail', setting.policies);
  const { id, version } = setting.existing;
  const arn = Stack.of(scope).formatArn({ service: 'bedrock', resource: 'guardrail', resourceName: id });
  return { arn, id, version };
}
