/**
 * `BatchJobs` on OpenAI's Batch API: the job's input uploaded as a file (`files.create`, purpose
 * `batch`), one line per record `{custom_id, method: "POST", url: "/v1/chat/completions", body}`, `body`
 * the very request the on-demand adapter sends (`chatBody`); the job started with `batches.create`
 * (`completion_window: "24h"`), looked at with `batches.retrieve`, and its `output_file_id` and
 * `error_file_id` read through `files.content`. Output lines come in no particular order:
 * `{custom_id, response: {status_code, body}, error}`.
 *
 * Idempotent submit: OpenAI's Batch API takes no client token, so the submit keeps its own note in the
 * pool table (`PoolStore.noteBatchSubmit`, per run and job name): before anything is created it notes
 * when it begins (only the first attempt's time is kept), and right after `batches.create` it stores
 * the batch id there. A retry that finds the id returns it. One that finds only the time (the first
 * attempt died between creating the batch and storing its id) pages through `batches.list` (newest
 * first, `after` cursor) for a batch carrying its job's name in `metadata` (`selfinstruct_job`), down
 * to the batches created before that time (less `CLOCK_SKEW_SECONDS`): every batch the first attempt
 * could have created is newer, however many other batches the organization created since. The note is
 * in DynamoDB rather than S3 because "Generate instances" may not list the bucket, so S3 would answer a
 * missing key with 403, which the submit could not tell from a denial.
 *
 * The input is also written to S3 (`inputKey`): the output holds no request, and a reply is recorded
 * under the hash of the prompt that was sent, read back from there.
 */
import type OpenAI from 'openai';
import { toFile } from 'openai';
import { fromJsonLines } from '../json-lines.ts';
import { promptHash } from '../model-calls.ts';
import type { OpenAIEndpoint } from '../models/model-ids.ts';
import { chatBody, openAIClient, openAIError } from '../models/openai.ts';
import { estimatedUsage } from '../models/usage.ts';
import type { ModelRequest, ObjectStore, PoolStore } from '../ports.ts';
import type { BatchJobSpec, BatchJobs, BatchResult, BatchStatus } from './jobs.ts';

/** The endpoint every record of a job calls. */
export const OPENAI_BATCH_URL = '/v1/chat/completions';

/** One input line of a job. */
export function openAIBatchLine(
  endpoint: Pick<OpenAIEndpoint, 'provider' | 'model' | 'jsonMode'>,
  recordId: string,
  request: ModelRequest,
): string {
  return JSON.stringify({
    custom_id: recordId,
    method: 'POST',
    url: OPENAI_BATCH_URL,
    body: chatBody(endpoint, request),
  });
}

interface InputLine {
  custom_id?: string;
  body?: { messages?: { role: string; content: string }[] };
}

interface OutputLine {
  custom_id?: string;
  response?: {
    status_code?: number;
    body?: {
      choices?: { message?: { content?: string | null }; finish_reason?: string | null }[];
      usage?: { prompt_tokens?: number; completion_tokens?: number };
      error?: { message?: string };
    };
  } | null;
  error?: { code?: string; message?: string } | null;
}

/** The request a record sent, from the job's input line. */
function sentRequest(line: InputLine | undefined): Pick<ModelRequest, 'system' | 'prompt'> {
  const messages = line?.body?.messages ?? [];
  return {
    system: messages.find((message) => message.role === 'system')?.content,
    prompt: messages.find((message) => message.role === 'user')?.content ?? '',
  };
}

/**
 * The results in a job's output and error files, each answered one with the hash of the prompt its
 * input line sent. A line without a custom id is left out.
 */
export function parseOpenAIBatchOutput(input: string, output: string, errors = ''): BatchResult[] {
  const sent = new Map(fromJsonLines<InputLine>(input).map((line) => [line.custom_id ?? '', line] as const));
  const results: BatchResult[] = [];
  for (const line of [...fromJsonLines<OutputLine>(output), ...fromJsonLines<OutputLine>(errors)]) {
    if (line.custom_id === undefined) continue;
    const status = line.response?.status_code;
    const choice = line.response?.body?.choices?.[0];
    if (line.error || status !== 200 || !choice) {
      const reason = line.error?.message ?? line.response?.body?.error?.message ?? 'no reply';
      results.push({
        recordId: line.custom_id,
        error: `${line.error?.code ?? status ?? 'error'}: ${reason}`,
      });
      continue;
    }
    const request = sentRequest(sent.get(line.custom_id));
    const text = choice.message?.content ?? '';
    const usage = line.response?.body?.usage;
    results.push({
      recordId: line.custom_id,
      promptHash: promptHash(request),
      reply: {
        text,
        finish: choice.finish_reason === 'length' ? 'length' : 'stop',
        usage:
          typeof usage?.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number'
            ? { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens, estimated: false }
            : estimatedUsage(request, text),
      },
    });
  }
  return results;
}

/** OpenAI's batch statuses as the poll loop reads them. */
export function openAIBatchStatus(status: string | undefined, message: string | undefined): BatchStatus {
  const providerStatus = status ?? 'unknown';
  switch (status) {
    case 'completed':
      return { status: 'completed', providerStatus };
    case 'failed':
    case 'expired':
    case 'cancelling':
    case 'cancelled':
      return {
        status: 'failed',
        providerStatus,
        message: `OpenAI batch ${providerStatus}${message ? `: ${message}` : ''}`,
      };
    default:
      // validating, in_progress, finalizing.
      return { status: 'running', providerStatus };
  }
}

/**
 * How far before the first attempt's noted start a retried submit still looks for its batch: the
 * function's clock and OpenAI's `created_at` may disagree by this much.
 */
export const CLOCK_SKEW_SECONDS = 15 * 60;

/** Where a submit notes its start and its batch id (the pool table). */
export type BatchSubmitNotes = Pick<PoolStore, 'noteBatchSubmit' | 'recordBatchJob'>;

export class OpenAIBatchJobs implements BatchJobs {
  readonly provider = 'openai' as const;
  /** OpenAI takes a job of any size. */
  readonly minRecords = 1;

  constructor(
    private readonly objects: ObjectStore,
    private readonly endpoint: OpenAIEndpoint,
    private readonly notes: BatchSubmitNotes,
  ) {}

  async submit(spec: BatchJobSpec): Promise<string> {
    const lines = spec.records.map(({ recordId, request }) =>
      openAIBatchLine(this.endpoint, recordId, request),
    );
    const text = `${lines.join('\n')}\n`;
    await this.objects.put(spec.inputKey, text, 'application/jsonl');
    const { client, apiKey } = await openAIClient(this.endpoint);
    const note = await this.notes.noteBatchSubmit(spec.runId, spec.name, new Date().toISOString());
    if (note?.jobId !== undefined) return note.jobId;
    let jobId: string;
    try {
      // An earlier attempt began and noted no batch: it may have died after creating one.
      jobId =
        (note && (await this.findBatch(client, spec.name, note.startedAt))) ??
        (await this.create(client, spec.name, text));
    } catch (error) {
      throw openAIError(error, this.endpoint, apiKey);
    }
    await this.notes.recordBatchJob(spec.runId, spec.name, jobId);
    return jobId;
  }

  private async create(client: OpenAI, job: string, text: string): Promise<string> {
    const file = await client.files.create({
      file: await toFile(Buffer.from(text), `${job}.jsonl`),
      purpose: 'batch',
    });
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: OPENAI_BATCH_URL,
      completion_window: '24h',
      metadata: { selfinstruct_job: job },
    });
    return batch.id;
  }

  /**
   * The batch named `job` that a submit begun at `startedAt` created, looking through every batch
   * created since (newest first), however many; undefined when there is none.
   */
  private async findBatch(client: OpenAI, job: string, startedAt: string): Promise<string | undefined> {
    const since = Math.floor(Date.parse(startedAt) / 1000) - CLOCK_SKEW_SECONDS;
    for await (const batch of client.batches.list({ limit: 100 })) {
      if (batch.created_at < since) return undefined;
      if ((batch.metadata as Record<string, string> | null)?.selfinstruct_job === job) return batch.id;
    }
    return undefined;
  }

  async status(jobId: string): Promise<BatchStatus> {
    const { client, apiKey } = await openAIClient(this.endpoint);
    try {
      const batch = await client.batches.retrieve(jobId);
      return openAIBatchStatus(batch.status, batch.errors?.data?.[0]?.message);
    } catch (error) {
      throw openAIError(error, this.endpoint, apiKey);
    }
  }

  async results(jobId: string, inputKey: string): Promise<BatchResult[]> {
    const { client, apiKey } = await openAIClient(this.endpoint);
    try {
      const batch = await client.batches.retrieve(jobId);
      const read = async (id: string | null | undefined) =>
        id ? await (await client.files.content(id)).text() : '';
      return parseOpenAIBatchOutput(
        (await this.objects.getText(inputKey)) ?? '',
        await read(batch.output_file_id),
        await read(batch.error_file_id),
      );
    } catch (error) {
      throw openAIError(error, this.endpoint, apiKey);
    }
  }
}
