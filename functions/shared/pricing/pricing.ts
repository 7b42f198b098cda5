/**
 * Prices, and what a run costs: model tokens priced from a versioned table shipped as data
 * (`prices.json`, us-east-1 on-demand list prices, with its sources), which a user can override with a
 * file of their own; the AWS side priced from the usage `aws-usage.ts` models.
 *
 * Nothing is priced silently: a model the table does not know gets no cost and a flag, never 0. Only
 * `offline` (and `offline:…`) and `replay:…` ids, which call no provider, are free.
 */
import { z } from 'zod';
import { SelfInstructError } from '../errors.ts';
import { parseModelId } from '../models/model-ids.ts';
import shipped from './prices.json' with { type: 'json' };

/** The price of one model, USD per million tokens. */
export const ModelPrice = z
  .object({
    inputPer1M: z.number().nonnegative(),
    outputPer1M: z.number().nonnegative(),
    /**
     * The share of these prices a batch call is billed (batch mode), when it is not `BATCH_PRICE_FACTOR`.
     */
    batchFactor: z.number().positive().max(1).optional(),
    notes: z.string().optional(),
  })
  .strict();
export type ModelPrice = z.infer<typeof ModelPrice>;

/**
 * The share of the on-demand price a batch call is billed: Amazon Bedrock prices batch inference at 50%
 * of on-demand for the models it batches, and OpenAI its Batch API likewise. An entry's `batchFactor`
 * overrides it.
 */
export const BATCH_PRICE_FACTOR = 0.5;

/** Unit prices of the AWS services a run uses, USD per unit, in one region. */
export const AwsPrices = z
  .object({
    region: z.string().min(1),
    /** Step Functions Standard, per state transition. */
    stepFunctionsPerStateTransition: z.number().nonnegative(),
    /** Lambda duration on arm64, per GB-second. */
    lambdaPerGbSecond: z.number().nonnegative(),
    lambdaPerRequest: z.number().nonnegative(),
    /**
     * Lambda ephemeral storage above the free 512 MB, per GB-second (x86 and arm64 alike). A table
     * without it gets us-east-1's price: the amounts are tiny (a GB for a minute is $0.0000019).
     */
    lambdaEphemeralPerGbSecond: z.number().nonnegative().default(0.0000000309),
    /** DynamoDB on demand, per write request unit (one write of up to 1 KB). */
    dynamodbPerWriteRequestUnit: z.number().nonnegative(),
    /** DynamoDB on demand, per read request unit (one strong or two eventual reads of up to 4 KB). */
    dynamodbPerReadRequestUnit: z.number().nonnegative(),
    /** S3 Standard PUT, COPY, POST and LIST requests. */
    s3PerPutRequest: z.number().nonnegative(),
    /** S3 Standard GET requests. */
    s3PerGetRequest: z.number().nonnegative(),
    notes: z.string().optional(),
  })
  .strict();
export type AwsPrices = z.infer<typeof AwsPrices>;

/** The price table: model prices keyed by the model id as the user writes it, and AWS unit prices. */
export const PriceTable = z
  .object({
    version: z.string().min(1),
    /** When the prices were checked. */
    date: z.iso.date(),
    /** The pages the prices were read from. */
    source: z.array(z.url()).min(1),
    currency: z.literal('USD'),
    notes: z.string().optional(),
    models: z.record(z.string().min(1), ModelPrice),
    aws: AwsPrices,
  })
  .strict();
export type PriceTable = z.infer<typeof PriceTable>;

/**
 * A user's override file: any model prices (added, or replacing the shipped entry of the same id
 * whole) and any AWS unit prices; `version`, `date` and `source` describe the override.
 */
export const PriceOverride = z
  .object({
    version: z.string().min(1).optional(),
    date: z.iso.date().optional(),
    source: z.array(z.url()).optional(),
    currency: z.literal('USD').optional(),
    notes: z.string().optional(),
    models: z.record(z.string().min(1), ModelPrice).optional(),
    aws: AwsPrices.partial().optional(),
  })
  .strict();
export type PriceOverride = z.infer<typeof PriceOverride>;

/** A price table or override that does not match its schema; the message names every bad field. */
export class PriceTableInvalid extends SelfInstructError {}

function parse<S extends z.ZodType>(schema: S, json: unknown, label: string): z.infer<S> {
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `  ${issue.path.join('.') || '(root)'}: ${issue.message}`,
  );
  throw new PriceTableInvalid(`${label} is invalid:\n${problems.join('\n')}`);
}

/** Validates a whole price table (parsed JSON). Throws `PriceTableInvalid` naming every bad field. */
export function parsePriceTable(json: unknown, label = 'Price table'): PriceTable {
  return parse(PriceTable, json, label);
}

let shippedTable: PriceTable | undefined;

/** The table shipped with the code (`prices.json`), validated once. */
export function shippedPrices(): PriceTable {
  shippedTable ??= parsePriceTable(shipped, 'functions/shared/pricing/prices.json');
  return shippedTable;
}

/**
 * Merges a user's override (parsed JSON, validated here) over `table`: a model entry replaces the entry
 * of the same id whole, AWS prices replace one by one, sources are added, and the version records both.
 * Takes parsed JSON so the CLI (`--prices <file>`) and a stage (a file in S3) can share it.
 */
export function withOverride(table: PriceTable, overrideJson: unknown, label = 'Price override'): PriceTable {
  const override = parse(PriceOverride, overrideJson, label);
  return parsePriceTable(
    {
      ...table,
      version: `${table.version}+${override.version ?? 'override'}`,
      date: override.date ?? table.date,
      source: [...new Set([...table.source, ...(override.source ?? [])])],
      notes: override.notes ?? table.notes,
      models: { ...table.models, ...override.models },
      aws: { ...table.aws, ...override.aws },
    },
    `${label} merged over price table ${table.version}`,
  );
}

/** Token counts to price. */
export interface TokenCounts {
  inputTokens: number;
  outputTokens: number;
}

/** What a model's tokens cost, or why they could not be priced. */
export type ModelCost =
  | {
      modelId: string;
      priced: true;
      /** The table entry used, or `free` for models that call no provider. */
      priceId: string;
      usd: number;
      inputUsd: number;
      outputUsd: number;
    }
  | {
      modelId: string;
      priced: false;
      usd: undefined;
      flag: 'unknown-model';
      message: string;
    };

/** A base URL on this machine (loopback): Ollama, vLLM, llama.cpp or LM Studio on the user's own hardware. */
const isLoopback = (baseURL: string) => {
  const host = new URL(baseURL).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
};

/**
 * Model ids with no per-token bill, so their model share is $0: the offline stand-in, replays of
 * recorded calls, and an OpenAI-compatible server on loopback (a local model; its hardware is not counted).
 */
export function isFreeModel(modelId: string): boolean {
  if (modelId === 'offline' || modelId.startsWith('offline:') || modelId.startsWith('replay:')) return true;
  try {
    const spec = parseModelId(modelId);
    return spec.provider === 'openai-compatible' && isLoopback(spec.baseURL);
  } catch {
    return false; // not a model id at all: unpriced, and the run rejects it
  }
}

/**
 * Prices `tokens` of `modelId` from `table`. An id the table does not have is not priced (`usd`
 * undefined, `flag: 'unknown-model'`), except the free ones (`isFreeModel`), which cost 0.
 * Lookup is by exact id: a cross-region inference profile (`bedrock:us.…`) needs its own entry, since
 * some profiles carry a premium over the base model. With `batch`, the tokens of batch calls (batch mode)
 * are priced at the entry's batch rate.
 */
export function modelCost(
  table: PriceTable,
  modelId: string,
  tokens: TokenCounts,
  { batch = false }: { batch?: boolean } = {},
): ModelCost {
  const found = table.models[modelId];
  // A batch call: the entry's prices times its batch factor (`BATCH_PRICE_FACTOR` by default).
  const factor = batch ? (found?.batchFactor ?? BATCH_PRICE_FACTOR) : 1;
  const price = found && { inputPer1M: found.inputPer1M * factor, outputPer1M: found.outputPer1M * factor };
  if (!price) {
    if (isFreeModel(modelId)) {
      return { modelId, priced: true, priceId: 'free', usd: 0, inputUsd: 0, outputUsd: 0 };
    }
    return {
      modelId,
      priced: false,
      usd: undefined,
      flag: 'unknown-model',
      message: `No price for model "${modelId}" in price table ${table.version}: add it with a prices file (--prices), e.g. {"models": {"${modelId}": {"inputPer1M": 0.1, "outputPer1M": 0.4}}}`,
    };
  }
  const inputUsd = (tokens.inputTokens * price.inputPer1M) / 1_000_000;
  const outputUsd = (tokens.outputTokens * price.outputPer1M) / 1_000_000;
  return { modelId, priced: true, priceId: modelId, usd: inputUsd + outputUsd, inputUsd, outputUsd };
}

/** AWS usage of a run (or an iteration), in the units AWS bills. */
export const AwsUsage = z.object({
  stateTransitions: z.number().nonnegative(),
  lambdaGbSeconds: z.number().nonnegative(),
  lambdaRequests: z.number().nonnegative(),
  /** Ephemeral storage configured above the free 512 MB × duration ("Export dataset"'s `/tmp`). */
  lambdaEphemeralGbSeconds: z.number().nonnegative(),
  dynamodbWriteUnits: z.number().nonnegative(),
  dynamodbReadUnits: z.number().nonnegative(),
  s3Puts: z.number().nonnegative(),
  s3Gets: z.number().nonnegative(),
});
export type AwsUsage = z.infer<typeof AwsUsage>;

/** One line of the AWS bill: how much of what, at which unit price. */
export interface CostLine {
  quantity: number;
  unitUsd: number;
  usd: number;
}

/** What the AWS side costs, in total and per item. */
export interface AwsCost {
  usd: number;
  breakdown: Record<keyof AwsUsage, CostLine>;
}

/** Prices AWS usage with the table's unit prices (free tiers not deducted). */
export function awsCost(table: PriceTable, usage: AwsUsage): AwsCost {
  const { aws } = table;
  const unit: Record<keyof AwsUsage, number> = {
    stateTransitions: aws.stepFunctionsPerStateTransition,
    lambdaGbSeconds: aws.lambdaPerGbSecond,
    lambdaRequests: aws.lambdaPerRequest,
    lambdaEphemeralGbSeconds: aws.lambdaEphemeralPerGbSecond,
    dynamodbWriteUnits: aws.dynamodbPerWriteRequestUnit,
    dynamodbReadUnits: aws.dynamodbPerReadRequestUnit,
    s3Puts: aws.s3PerPutRequest,
    s3Gets: aws.s3PerGetRequest,
  };
  const breakdown = Object.fromEntries(
    (Object.keys(unit) as (keyof AwsUsage)[]).map((key) => [
      key,
      { quantity: usage[key], unitUsd: unit[key], usd: usage[key] * unit[key] },
    ]),
  ) as Record<keyof AwsUsage, CostLine>;
  const usd = Object.values(breakdown).reduce((sum, line) => sum + line.usd, 0);
  return { usd, breakdown };
}

/** The headline figures of a run's cost. Amounts are `undefined` when a model could not be priced. */
export interface CostSummary {
  modelUsd: number | undefined;
  awsUsd: number;
  totalUsd: number | undefined;
  /** Total over the tasks the run added to the pool (passed the filters, the gate and the instance filters). */
  perAcceptedTaskUsd: number | undefined;
  per1000TasksUsd: number | undefined;
  /** AWS's part of the total, in [0, 1]. */
  awsShare: number | undefined;
  /** True when any figure comes from estimates (estimated token counts, a usage model) rather than bills. */
  estimated: boolean;
  /** Models that could not be priced, with the reason. */
  unpriced: string[];
}

/**
 * Sums model and AWS costs and divides them over the accepted tasks. `models` holds one cost per model
 * (or per stage); any unpriced one leaves the model, total and per-task figures undefined.
 */
export function summarizeCost({
  models,
  aws,
  acceptedTasks,
  estimated,
}: {
  models: readonly ModelCost[];
  aws: AwsCost;
  acceptedTasks: number;
  estimated: boolean;
}): CostSummary {
  const unpriced = models.flatMap((cost) => (cost.priced ? [] : [cost.message]));
  const modelUsd = unpriced.length > 0 ? undefined : models.reduce((sum, cost) => sum + (cost.usd ?? 0), 0);
  const totalUsd = modelUsd === undefined ? undefined : modelUsd + aws.usd;
  const perAcceptedTaskUsd =
    totalUsd === undefined || acceptedTasks <= 0 ? undefined : totalUsd / acceptedTasks;
  return {
    modelUsd,
    awsUsd: aws.usd,
    totalUsd,
    perAcceptedTaskUsd,
    per1000TasksUsd: perAcceptedTaskUsd === undefined ? undefined : perAcceptedTaskUsd * 1000,
    awsShare: totalUsd === undefined || totalUsd === 0 ? undefined : aws.usd / totalUsd,
    estimated,
    unpriced,
  };
}
