/**
 * Batch mode (run input `batch`): the instance-generation calls of an iteration go to the provider's
 * batch API as one job, at the provider's batch price, instead of one on-demand call each. This module
 * is the port (`BatchJobs`), the records of a job (which logical call each is) and the bounds of the
 * state machine's poll loop; `bedrock.ts` is the Amazon Bedrock batch inference adapter.
 *
 * The replies come back into the run's call ledger, under the very call keys the "Generate instances"
 * Map items ask for (`<iteration>#chunk-<n>#<task id>/instances-<round>`, same prompt hash): the Map
 * item's call runner serves a recorded reply instead of calling the model (`ModelCalls.call`), so the
 * Map, its parsers, filters, teacher and judge run unchanged; a record the job did not answer is made on
 * demand there.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ModelRequestFailed } from '../errors.ts';
import { callKeyPrefix } from '../model-calls.ts';
import { OPENAI_BASE_URL, type OpenAIEndpoint, parseModelId } from '../models/model-ids.ts';
import type { ModelReply, ModelRequest } from '../ports.ts';

/** A provider's batch job window: Bedrock and OpenAI both give a job 24 hours (then it expires). */
export const BATCH_WINDOW_HOURS = 24;

/**
 * Bedrock's default quota "Minimum number of records per batch inference job": a job of fewer records
 * is refused, so an iteration with fewer instance calls is made on demand instead.
 */
export const BEDROCK_MIN_RECORDS = 100;

/**
 * The polls of one job: enough to cover the provider's window at `pollSeconds` apart, plus one (the
 * look after the window, which finds the job expired). The loop's bound in the state machine.
 */
export function maxPolls(pollSeconds: number): number {
  return Math.ceil((BATCH_WINDOW_HOURS * 3600) / Math.max(1, pollSeconds)) + 1;
}

/**
 * One record of a job: the logical call it stands for. Written next to the input (`records.jsonl`); the
 * prompt hash a reply is recorded under is read from the job's output (what was sent), not from here.
 */
export const BatchRecord = z.object({
  recordId: z.string().min(1),
  /** The Map item (chunk index) whose ledger scope the reply goes to. */
  chunk: z.int().nonnegative(),
  /** The call's key within that scope: `<task id>/instances-<round>`. */
  key: z.string().min(1),
  stage: z.literal('generate-instances'),
});
export type BatchRecord = z.infer<typeof BatchRecord>;

/** The call key a record's reply is recorded under: the Map item's (its chunk's ledger scope). */
export const recordCallKey = (iteration: number, record: Pick<BatchRecord, 'chunk' | 'key'>): string =>
  `${callKeyPrefix({ iteration, scope: `chunk-${record.chunk}` })}${record.key}`;

/**
 * The record id of a call: 11 alphanumeric characters (the form of Bedrock's examples) hashed from its
 * chunk and key, so a retried submit names every call as the first attempt did, whichever it plans.
 */
export function recordId(chunk: number, key: string): string {
  const hash = BigInt(`0x${createHash('sha256').update(`${chunk}/${key}`).digest('hex').slice(0, 15)}`);
  return hash.toString(36).padStart(11, '0').slice(-11);
}

/** What the last look of the poll loop stores when the job has completed: how many looks it took. */
export const BatchCompletion = z.object({ looks: z.int().positive() });
export type BatchCompletion = z.infer<typeof BatchCompletion>;

/** What the poll loop carries in the state (`$.batch`), from "Submit the instance batch" and each look. */
export const BatchState = z.object({
  /**
   * `on-demand`: no job (too few records), the Map makes the calls; `submitted`, then `running`: a job
   * runs; `completed`: its replies are in the run's call ledger.
   */
  status: z.enum(['on-demand', 'submitted', 'running', 'completed']),
  jobId: z.string().min(1).optional(),
  records: z.int().nonnegative(),
  /** Looks at the job so far, and the most there may be (`maxPolls`): the loop's bound. */
  polls: z.int().nonnegative(),
  maxPolls: z.int().positive(),
  /** The Wait state's seconds between two looks. */
  waitSeconds: z.int().nonnegative(),
  /** Why there is no job (`on-demand`). */
  reason: z.string().optional(),
  /** Once completed: records answered, and records the job failed (made on demand by the Map). */
  answered: z.int().nonnegative().optional(),
  failedRecords: z.int().nonnegative().optional(),
});
export type BatchState = z.infer<typeof BatchState>;

/** The providers with a batch API this project drives. */
export const BatchProvider = z.enum(['bedrock', 'openai']);

/**
 * What "Submit the instance batch" did (`runs/<run>/iteration-<n>/batch/submission.json`): the job it
 * started, or why it started none. "Save iteration" reads it for the iteration's batch figures.
 */
export const BatchSubmission = z.object({
  provider: BatchProvider,
  /** Absent when no job was started (fewer records than `minRecords`). */
  jobId: z.string().min(1).optional(),
  records: z.int().nonnegative(),
  minRecords: z.int().nonnegative(),
  reason: z.string().optional(),
});
export type BatchSubmission = z.infer<typeof BatchSubmission>;

/** A job's state as the provider reports it. */
export type BatchStatus =
  | { status: 'running'; providerStatus: string }
  | { status: 'completed'; providerStatus: string }
  | { status: 'failed'; providerStatus: string; message: string };

/** One answered (or failed) record of a finished job; `promptHash` of the request it answered. */
export type BatchResult =
  | { recordId: string; promptHash: string; reply: Pick<ModelReply, 'text' | 'finish' | 'usage'> }
  | { recordId: string; error: string };

/** What a job is asked to do. */
export interface BatchJobSpec {
  runId: string;
  /** Deterministic per run and iteration: a retried submit names the same job. */
  name: string;
  /** The provider's model id (without the `bedrock:` prefix). */
  modelId: string;
  inputKey: string;
  outputPrefix: string;
  /** The requests, by record id, to write as the job's input. */
  records: { recordId: string; request: ModelRequest }[];
}

/** A provider's batch API. */
export interface BatchJobs {
  /** The provider, for messages. */
  readonly provider: z.infer<typeof BatchProvider>;
  /** The fewest records a job may have. */
  readonly minRecords: number;
  /**
   * Writes the input and starts the job, or gets the one an earlier attempt started (the same name and
   * idempotency token): never two jobs for one iteration. Returns the job id.
   */
  submit(spec: BatchJobSpec): Promise<string>;
  status(jobId: string): Promise<BatchStatus>;
  /** The records of a finished job, read from its output. */
  results(jobId: string, inputKey: string, outputPrefix: string): Promise<BatchResult[]>;
}

/** A job's name: the run and iteration, hashed to the providers' name limits (Bedrock: 63 characters). */
export function batchJobName(runId: string, iteration: number): string {
  const hash = createHash('sha256').update(runId).digest('hex').slice(0, 16);
  return `selfinstruct-${hash}-i${iteration}`;
}

/** The idempotency token of a job (Bedrock's `clientRequestToken`). */
export const batchToken = (name: string) => createHash('sha256').update(name).digest('hex').slice(0, 32);

/**
 * The base URLs, besides OpenAI's own, whose server offers OpenAI's Batch API (files and batches):
 * `SELFINSTRUCT_OPENAI_BATCH_ENDPOINTS`, comma-separated (the tests' stand-in). Unset: OpenAI's only.
 */
export const OPENAI_BATCH_ENDPOINTS_ENV = 'SELFINSTRUCT_OPENAI_BATCH_ENDPOINTS';

/** The OpenAI endpoint of a model whose server has OpenAI's Batch API, or undefined. */
export function openAIBatchEndpoint(modelId: string): OpenAIEndpoint | undefined {
  let spec: ReturnType<typeof parseModelId>;
  try {
    spec = parseModelId(modelId);
  } catch {
    return undefined;
  }
  if (!('baseURL' in spec) || spec.completions) return undefined;
  const extra = (process.env[OPENAI_BATCH_ENDPOINTS_ENV] ?? '')
    .split(',')
    .map((url) => url.trim().replace(/\/+$/, ''))
    .filter(Boolean);
  return spec.baseURL === OPENAI_BASE_URL || extra.includes(spec.baseURL) ? spec : undefined;
}

/** The model ids with a batch API this project drives, and why another is refused. */
export function checkBatchModel(modelId: string): void {
  if (modelId.startsWith('bedrock:')) return;
  if (openAIBatchEndpoint(modelId)) return;
  throw new ModelRequestFailed(
    `batch mode needs a model with a batch API; supported: bedrock:<model id> (Amazon Bedrock batch inference, Converse format) and openai:<model> (OpenAI's Batch API, chat completions), not "${modelId}"`,
  );
}
