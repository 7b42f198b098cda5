/**
 * `BatchJobs` on Amazon Bedrock batch inference (`CreateModelInvocationJob`, `GetModelInvocationJob`),
 * with the `Converse` model invocation type: each record's `modelInput` is the body of a Converse
 * request, built by the same function as the on-demand adapter's (`converseBody`), and each
 * `modelOutput` a Converse response, read by the same function (`converseReply`). So one format serves
 * every Bedrock text model the on-demand path serves (Amazon Nova, Anthropic Claude, Meta Llama,
 * Mistral …), rather than one native InvokeModel body per family.
 *
 * Bedrock reads the input and writes the output with a service role of its own (`BATCH_ROLE_ARN`, which
 * bedrock.amazonaws.com assumes): its output for the input file `<name>.jsonl` is
 * `<output prefix><job id>/<name>.jsonl.out`, one line per record, `{recordId, modelInput, modelOutput}`
 * or `{recordId, modelInput, error: {errorCode, errorMessage}}`, in no particular order.
 *
 * The control-plane client is built on first use, so the standard `AWS_ENDPOINT_URL_BEDROCK` variable
 * can point it at a local stand-in (tests).
 */
import {
  BedrockClient,
  CreateModelInvocationJobCommand,
  GetModelInvocationJobCommand,
} from '@aws-sdk/client-bedrock';
import type { ConverseCommandOutput } from '@aws-sdk/client-bedrock-runtime';
import { awsClientConfig } from '../config.ts';
import { fromJsonLines } from '../json-lines.ts';
import { promptHash } from '../model-calls.ts';
import { bedrockError, converseBody, converseReply } from '../models/bedrock.ts';
import type { ModelRequest, ObjectStore } from '../ports.ts';
import {
  BATCH_WINDOW_HOURS,
  type BatchJobSpec,
  type BatchJobs,
  type BatchResult,
  type BatchStatus,
  BEDROCK_MIN_RECORDS,
  batchToken,
} from './jobs.ts';

const clients = new Map<string, BedrockClient>();
/** The control-plane client, built once per endpoint and identity (as the runtime's `bedrockClient`). */
function control(): BedrockClient {
  const env = process.env;
  const key = [env.AWS_ENDPOINT_URL_BEDROCK, env.AWS_REGION, env.AWS_PROFILE, env.AWS_ACCESS_KEY_ID].join(
    '|',
  );
  let client = clients.get(key);
  if (!client) {
    client = new BedrockClient(awsClientConfig('bedrock', { maxAttempts: 3 }));
    clients.set(key, client);
  }
  return client;
}

/** One input line of a job: the record id and the Converse body of its request. */
export function bedrockBatchLine(recordId: string, request: ModelRequest): string {
  return JSON.stringify({ recordId, modelInput: converseBody(request) });
}

/** An output line of a job. */
interface OutputLine {
  recordId?: string;
  modelInput?: unknown;
  modelOutput?: Pick<ConverseCommandOutput, 'output' | 'stopReason' | 'usage'>;
  error?: { errorCode?: number | string; errorMessage?: string };
}

/**
 * The results in a job's output file, each with the hash of the prompt its `modelInput` holds (what was
 * sent, so a reply is only ever served for that prompt). A line without a record id is left out.
 */
export function parseBedrockBatchOutput(text: string): BatchResult[] {
  const results: BatchResult[] = [];
  for (const line of fromJsonLines<OutputLine>(text)) {
    if (line.recordId === undefined) continue;
    if (!line.modelOutput || line.error) {
      results.push({
        recordId: line.recordId,
        error: `${line.error?.errorCode ?? 'error'}: ${line.error?.errorMessage ?? 'no model output'}`,
      });
      continue;
    }
    const input = (line.modelInput ?? {}) as ReturnType<typeof converseBody>;
    const request = {
      system: input.system?.[0]?.text,
      prompt: input.messages?.[0]?.content?.[0]?.text ?? '',
    };
    results.push({
      recordId: line.recordId,
      promptHash: promptHash(request),
      reply: converseReply(line.modelOutput, request),
    });
  }
  return results;
}

/** Bedrock's job statuses as the poll loop reads them (`PartiallyCompleted`: its failed records go on demand). */
export function bedrockJobStatus(status: string | undefined, message: string | undefined): BatchStatus {
  const providerStatus = status ?? 'Unknown';
  switch (status) {
    case 'Completed':
    case 'PartiallyCompleted':
      return { status: 'completed', providerStatus };
    case 'Failed':
    case 'Stopped':
    case 'Stopping':
    case 'Expired':
      return {
        status: 'failed',
        providerStatus,
        message: `Bedrock batch job ${providerStatus.toLowerCase()}${message ? `: ${message}` : ''}`,
      };
    default:
      // Submitted, Validating, Scheduled, InProgress.
      return { status: 'running', providerStatus };
  }
}

/** The file name Bedrock gives the output of an input file. */
const outputKey = (jobId: string, inputKey: string, outputPrefix: string) =>
  `${outputPrefix}${jobId.split('/').at(-1)}/${inputKey.split('/').at(-1)}.out`;

export class BedrockBatchJobs implements BatchJobs {
  readonly provider = 'bedrock' as const;
  readonly minRecords = BEDROCK_MIN_RECORDS;

  constructor(
    private readonly objects: ObjectStore,
    private readonly bucket: string,
    /** The service role Bedrock assumes to read the input and write the output. */
    private readonly roleArn: string,
  ) {}

  async submit(spec: BatchJobSpec): Promise<string> {
    const lines = spec.records.map(({ recordId, request }) => bedrockBatchLine(recordId, request));
    await this.objects.put(spec.inputKey, `${lines.join('\n')}\n`, 'application/jsonl');
    try {
      // The same token returns the job an earlier attempt created (Bedrock ignores the repeat).
      const reply = await control().send(
        new CreateModelInvocationJobCommand({
          jobName: spec.name,
          clientRequestToken: batchToken(spec.name),
          roleArn: this.roleArn,
          modelId: spec.modelId,
          modelInvocationType: 'Converse',
          inputDataConfig: {
            s3InputDataConfig: { s3Uri: `s3://${this.bucket}/${spec.inputKey}`, s3InputFormat: 'JSONL' },
          },
          outputDataConfig: { s3OutputDataConfig: { s3Uri: `s3://${this.bucket}/${spec.outputPrefix}` } },
          timeoutDurationInHours: BATCH_WINDOW_HOURS,
        }),
      );
      return reply.jobArn as string;
    } catch (error) {
      throw bedrockError(error, spec.modelId, `batch job ${spec.name} of model ${spec.modelId}`);
    }
  }

  async status(jobId: string): Promise<BatchStatus> {
    try {
      const job = await control().send(new GetModelInvocationJobCommand({ jobIdentifier: jobId }));
      return bedrockJobStatus(job.status, job.message);
    } catch (error) {
      throw bedrockError(error, jobId, `batch job ${jobId}`);
    }
  }

  async results(jobId: string, inputKey: string, outputPrefix: string): Promise<BatchResult[]> {
    return parseBedrockBatchOutput(
      (await this.objects.getText(outputKey(jobId, inputKey, outputPrefix))) ?? '',
    );
  }
}
