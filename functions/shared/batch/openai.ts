/**
 * `BatchJobs` on OpenAI's Batch API: the job's input uploaded as a file (`files.create`, purpose
 * `batch`), one line per record `{custom_id, method: "POST", url: "/v1/chat/completions", body}`, `body`
 * the very request the on-demand adapter sends (`chatBody`); the job started with `batches.create`
 * (`completion_window: "24h"`), looked at with `batches.retrieve`, and its `output_file_id` and
 * `error_file_id` read through `files.content`. Output lines come in no particular order:
 * `{custom_id, response: {status_code, body}, error}`.
 *
 * Idempotent submit: OpenAI's Batch API takes no client token, so each batch carries its job's name in
 * `metadata` (`selfinstruct_job`, per run and iteration) and a submit first looks for it among the
 * organization's newest batches (`batches.list`, newest first, at most `LOOKUP_LIMIT`): a retried submit,
 * minutes after the first, finds the batch that attempt started. Recording the id in S3 instead would need
 * the function to tell a missing key from a denied one, that is `s3:ListBucket` on the whole bucket, which
 * "Generate instances" does not have (it reads by key only).
 *
 * The input is also written to S3 (`inputKey`): the output holds no request, and a reply is recorded
 * under the hash of the prompt that was sent, read back from there.
 */
import { toFile } from 'openai';
import { fromJsonLines } from '../json-lines.ts';
import { promptHash } from '../model-calls.ts';
import type { OpenAIEndpoint } from '../models/model-ids.ts';
import { chatBody, openAIClient, openAIError } from '../models/openai.ts';
import { estimatedUsage } from '../models/usage.ts';
import type { ModelRequest, ObjectStore } from '../ports.ts';
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

/** The newest batches a submit looks through for one an earlier attempt started. */
export const LOOKUP_LIMIT = 500;

export class OpenAIBatchJobs implements BatchJobs {
  readonly provider = 'openai' as const;
  /** OpenAI takes a job of any size. */
  readonly minRecords = 1;

  constructor(
    private readonly objects: ObjectStore,
    private readonly endpoint: OpenAIEndpoint,
  ) {}

  async submit(spec: BatchJobSpec): Promise<string> {
    const lines = spec.records.map(({ recordId, request }) =>
      openAIBatchLine(this.endpoint, recordId, request),
    );
    const text = `${lines.join('\n')}\n`;
    await this.objects.put(spec.inputKey, text, 'application/jsonl');
    const { client, apiKey } = await openAIClient(this.endpoint);
    try {
      let seen = 0;
      for await (const batch of client.batches.list({ limit: 100 })) {
        if ((batch.metadata as Record<string, string> | null)?.selfinstruct_job === spec.name)
          return batch.id;
        if (++seen >= LOOKUP_LIMIT) break;
      }
      const file = await client.files.create({
        file: await toFile(Buffer.from(text), `${spec.name}.jsonl`),
        purpose: 'batch',
      });
      const batch = await client.batches.create({
        input_file_id: file.id,
        endpoint: OPENAI_BATCH_URL,
        completion_window: '24h',
        metadata: { selfinstruct_job: spec.name },
      });
      return batch.id;
    } catch (error) {
      throw openAIError(error, this.endpoint, apiKey);
    }
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
