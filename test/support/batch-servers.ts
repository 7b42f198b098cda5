/**
 * A local stand-in for Amazon Bedrock's batch inference control plane (REST over HTTP/1.1, as the
 * `@aws-sdk/client-bedrock` client speaks it), so batch mode is tested through the real SDK client:
 *
 * - `POST /model-invocation-job` (CreateModelInvocationJob): a job per `clientRequestToken` (the same
 *   token again returns the same job, as Bedrock's idempotency does; the same name with another token is
 *   a 409 `ConflictException`);
 * - `GET /model-invocation-job/{jobIdentifier}` (GetModelInvocationJob): `InProgress` until it has been
 *   looked at `pollsToComplete` times; then it reads the job's input JSONL from the local S3 server,
 *   answers each record's Converse body with the offline model (the same answers as the Bedrock runtime
 *   stand-in's), writes `<output>/<job id>/<input file>.out` and `manifest.json.out` where Bedrock
 *   would, and reports `Completed` (or `finalStatus`).
 *
 * Records named by `failRecord` get an `error` line instead of `modelOutput`, as Bedrock writes a
 * record whose inference failed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { OfflineModel } from '../../functions/shared/models/offline.ts';
import type { ObjectStore } from '../../functions/shared/ports.ts';
import { converseAnswer, listen } from './model-servers.ts';

export interface BatchStandInOptions {
  /** The object store of a bucket (the local S3 server's), where inputs are read and outputs written. */
  objects: (bucket: string) => ObjectStore;
  /** The region and account of the job ARNs (the local stack's, so its IAM policies match them). */
  region: string;
  account: string;
  /** Looks at a job before it finishes. @default 2 */
  pollsToComplete?: number;
  /** The status a finished job reports. @default 'Completed' */
  finalStatus?: 'Completed' | 'PartiallyCompleted' | 'Failed' | 'Expired' | 'Stopped';
  /** Records whose inference fails (an `error` line in the output), by id and position in the input. @default none */
  failRecord?: (recordId: string, index: number) => boolean;
  /** Seed of the offline model behind the replies. @default 'stand-in' */
  seed?: string;
}

/** A job as the stand-in keeps it. */
export interface StandInJob {
  jobArn: string;
  jobName: string;
  token: string | undefined;
  modelId: string;
  roleArn: string;
  invocationType: string | undefined;
  inputUri: string;
  outputUri: string;
  polls: number;
  status: string;
  message?: string;
  /** Records answered and failed, once finished. */
  answered?: number;
  failed?: number;
}

export interface BatchStandIn {
  /** For `AWS_ENDPOINT_URL_BEDROCK`. */
  url: string;
  jobs: StandInJob[];
  /** Every request, as method and path. */
  requests: { method: string; path: string }[];
  reset(): void;
  close(): Promise<void>;
}

const s3Location = (uri: string) => {
  const match = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!match) throw new Error(`not an S3 URI: ${uri}`);
  return { bucket: match[1] as string, key: match[2] as string };
};

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks).toString('utf8');
  return raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
}

function send(res: ServerResponse, status: number, body: unknown, errorType?: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    ...(errorType
      ? { 'x-amzn-errortype': `${errorType}:http://internal.amazon.com/coral/com.amazon.bedrock/` }
      : {}),
  });
  res.end(JSON.stringify(body));
}

export async function startBedrockBatchStandIn(options: BatchStandInOptions): Promise<BatchStandIn> {
  const model = new OfflineModel({ seed: options.seed ?? 'stand-in' });
  const jobs: StandInJob[] = [];
  const requests: { method: string; path: string }[] = [];
  let next = 0;

  /** Answers every record of a job's input and writes the output where Bedrock would. */
  async function run(job: StandInJob): Promise<void> {
    const input = s3Location(job.inputUri);
    const text = await options.objects(input.bucket).getText(input.key);
    if (text === undefined) {
      job.status = 'Failed';
      job.message = `The input file ${job.inputUri} does not exist`;
      return;
    }
    const lines: string[] = [];
    let answered = 0;
    let failed = 0;
    for (const [index, line] of text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .entries()) {
      const { recordId, modelInput } = JSON.parse(line) as {
        recordId: string;
        modelInput: Record<string, unknown>;
      };
      if (options.failRecord?.(recordId, index)) {
        failed++;
        lines.push(
          JSON.stringify({ recordId, modelInput, error: { errorCode: 400, errorMessage: 'bad request' } }),
        );
        continue;
      }
      const { response } = await converseAnswer({ model }, modelInput);
      answered++;
      lines.push(JSON.stringify({ recordId, modelInput, modelOutput: response }));
    }
    const output = s3Location(job.outputUri);
    const jobId = job.jobArn.split('/').at(-1);
    const folder = `${output.key}${output.key === '' || output.key.endsWith('/') ? '' : '/'}${jobId}/`;
    const store = options.objects(output.bucket);
    await store.put(
      `${folder}${input.key.split('/').at(-1)}.out`,
      `${lines.join('\n')}\n`,
      'application/jsonl',
    );
    await store.put(
      `${folder}manifest.json.out`,
      JSON.stringify({
        totalRecordCount: answered + failed,
        processedRecordCount: answered + failed,
        successRecordCount: answered,
        errorRecordCount: failed,
      }),
      'application/json',
    );
    job.answered = answered;
    job.failed = failed;
    job.status = options.finalStatus ?? 'Completed';
    if (job.status === 'Failed' || job.status === 'Expired' || job.status === 'Stopped') {
      job.message = `the stand-in's job ${job.status.toLowerCase()}`;
    }
  }

  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push({ method: req.method ?? 'GET', path });
      if (req.method === 'POST' && path === '/model-invocation-job') {
        const body = await readBody(req);
        const token = body.clientRequestToken as string | undefined;
        const same = token === undefined ? undefined : jobs.find((job) => job.token === token);
        if (same) return send(res, 200, { jobArn: same.jobArn });
        if (jobs.some((job) => job.jobName === body.jobName)) {
          return send(
            res,
            409,
            { message: `A job named ${String(body.jobName)} exists` },
            'ConflictException',
          );
        }
        const id = `stand${String(next++).padStart(7, '0')}`;
        const input = body.inputDataConfig as { s3InputDataConfig?: { s3Uri?: string } } | undefined;
        const output = body.outputDataConfig as { s3OutputDataConfig?: { s3Uri?: string } } | undefined;
        const job: StandInJob = {
          jobArn: `arn:aws:bedrock:${options.region}:${options.account}:model-invocation-job/${id}`,
          jobName: String(body.jobName),
          token,
          modelId: String(body.modelId),
          roleArn: String(body.roleArn),
          invocationType: body.modelInvocationType as string | undefined,
          inputUri: String(input?.s3InputDataConfig?.s3Uri ?? ''),
          outputUri: String(output?.s3OutputDataConfig?.s3Uri ?? ''),
          polls: 0,
          status: 'Submitted',
        };
        jobs.push(job);
        return send(res, 200, { jobArn: job.jobArn });
      }
      const match = /^\/model-invocation-job\/([^/]+)$/.exec(path);
      if (req.method === 'GET' && match) {
        const id = decodeURIComponent(match[1] ?? '');
        const job = jobs.find((j) => j.jobArn === id || j.jobName === id);
        if (!job) return send(res, 404, { message: `No job ${id}` }, 'ResourceNotFoundException');
        job.polls++;
        if (job.status === 'Submitted' || job.status === 'InProgress') {
          if (job.polls >= (options.pollsToComplete ?? 2)) await run(job);
          else job.status = 'InProgress';
        }
        return send(res, 200, {
          jobArn: job.jobArn,
          jobName: job.jobName,
          modelId: job.modelId,
          roleArn: job.roleArn,
          status: job.status,
          ...(job.message ? { message: job.message } : {}),
          submitTime: new Date().toISOString(),
          inputDataConfig: { s3InputDataConfig: { s3Uri: job.inputUri } },
          outputDataConfig: { s3OutputDataConfig: { s3Uri: job.outputUri } },
        });
      }
      send(res, 404, { message: `No route ${req.method} ${path}` }, 'UnknownOperationException');
    } catch (error) {
      send(res, 500, { message: (error as Error).message }, 'InternalServerException');
    }
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    jobs,
    requests,
    reset: () => {
      jobs.length = 0;
      requests.length = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
