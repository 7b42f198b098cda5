/**
 * IAM on the local stack: every SDK request a handler makes is evaluated against its function's role as
 * synthesized, and refused the way the service refuses it. A run with a price table (a grant the
 * enforcement found missing) succeeds; the same stack with one grant removed from the template fails
 * with AccessDenied naming the action and the resource; each service's denial reaches the SDK as that
 * service's own error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockModel } from '../../functions/shared/models/bedrock.ts';
import type { RunSummary } from '../../functions/shared/records.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import type { CfnTemplate } from '../../infra/local/template.ts';
import { asFunction, GRANT_PUT_ACTIONS } from '../support/iam-roles.ts';
import { type StandIn, startBedrockStandIn } from '../support/model-servers.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-iam-'));
const small = { target: 1000, maxIterations: 1, promptsPerIteration: 3, chunkSize: 10 };
let bedrock: StandIn;

/** Removes `action` from the statements of the policies attached to the role of function `functionId`. */
function removeGrant(template: CfnTemplate, functionId: RegExp, action: string): void {
  const [fnId, fn] =
    Object.entries(template.Resources).find(
      ([id, resource]) => resource.Type === 'AWS::Lambda::Function' && functionId.test(id),
    ) ?? [];
  if (!fn) throw new Error(`no function ${functionId}`);
  const role = (fn.Properties?.Role as { 'Fn::GetAtt'?: [string] } | undefined)?.['Fn::GetAtt']?.[0];
  if (!role) throw new Error(`function ${fnId} has no role`);
  let removed = 0;
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== 'AWS::IAM::Policy') continue;
    const roles = resource.Properties?.Roles as { Ref: string }[];
    if (!roles.some((r) => r.Ref === role)) continue;
    const document = resource.Properties?.PolicyDocument as { Statement: { Action: string | string[] }[] };
    for (const statement of document.Statement) {
      const actions = [statement.Action].flat();
      if (actions.includes(action)) {
        statement.Action = actions.filter((a) => a !== action);
        removed++;
      }
    }
  }
  if (removed === 0) throw new Error(`no ${action} granted to ${fnId}`);
}

beforeAll(async () => {
  bedrock = await startBedrockStandIn();
}, 60_000);

afterAll(async () => {
  await bedrock.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the local stack with IAM enforced', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await LocalStack.start({ dataDir: path.join(work, 'enforced'), fresh: true, iam: true });
  }, 120_000);
  afterAll(() => stack.close());

  it('runs with a price table of the user’s: every stage may read what it needs', async () => {
    const key = 'prices/mine.json';
    await stack.objects.put(key, JSON.stringify({ version: 'mine', models: {} }), 'application/json');
    const result = await stack.execute({ ...small, pool: 'priced', priceTableKey: key });
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect((result.output as RunSummary).added).toBeGreaterThan(0);
  });

  it('answers a refused S3 request with S3’s AccessDenied, naming principal, action and resource', async () => {
    const error = await asFunction([], () => stack.objects.put('pools/x/file', 'x')).catch((e: Error) => e);
    expect(error).toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    expect((error as Error).message).toBe(
      `User: arn:aws:sts::000000000000:assumed-role/TestRole/TestFunction is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::${stack.bucketName}/pools/x/file" because no identity-based policy allows the s3:PutObject action`,
    );
  });

  it('streams a multipart upload under grantPut’s actions, and refuses it, or its abort, to a role without them', async () => {
    const MiB = 1024 * 1024;
    async function* body(fail: boolean) {
      for (let i = 0; i < 6; i++) yield 'x'.repeat(MiB);
      if (fail) throw new Error('the body failed');
    }
    const onExports = (...actions: string[]) => [
      { Effect: 'Allow', Action: actions, Resource: `arn:aws:s3:::${stack.bucketName}/exports/*` },
    ];
    // aws-cdk-lib's BUCKET_PUT_ACTIONS, what `grantPut` gives "Export dataset" on exports/.
    const grantPut = onExports(...GRANT_PUT_ACTIONS);
    await asFunction(grantPut, () => stack.objects.upload('exports/iam/big.jsonl', body(false)));
    expect((await stack.objects.getBytes('exports/iam/big.jsonl'))?.length).toBe(6 * MiB);
    await expect(
      asFunction(grantPut, () => stack.objects.upload('exports/iam/failed.jsonl', body(true))),
    ).rejects.toThrow('the body failed');

    const putOnly = onExports('s3:PutObject');
    const abortRefused = await asFunction(putOnly, () =>
      stack.objects.upload('exports/iam/failed.jsonl', body(true)),
    ).catch((e: Error) => e);
    expect(abortRefused).toMatchObject({ name: 'AccessDenied' });
    expect((abortRefused as Error).message).toContain(
      `not authorized to perform: s3:AbortMultipartUpload on resource: "arn:aws:s3:::${stack.bucketName}/exports/iam/failed.jsonl"`,
    );
    const abortOnly = onExports('s3:AbortMultipartUpload');
    const createRefused = await asFunction(abortOnly, () =>
      stack.objects.upload('exports/iam/other.jsonl', body(false)),
    ).catch((e: Error) => e);
    expect(createRefused).toMatchObject({ name: 'AccessDenied' });
    expect((createRefused as Error).message).toContain('s3:PutObject');
  });

  it('answers a missing key with 403, not 404, to a principal that may not list the bucket', async () => {
    const readOnly = [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }];
    const error = await asFunction(readOnly, () => stack.objects.getText('pools/none')).catch((e) => e);
    expect(error).toMatchObject({ name: 'AccessDenied' });
    expect((error as Error).message).toContain('s3:ListBucket');
    const withList = [...readOnly, { Effect: 'Allow', Action: 's3:ListBucket', Resource: '*' }];
    expect(await asFunction(withList, () => stack.objects.getText('pools/none'))).toBeUndefined();
  });

  it('answers a refused DynamoDB request with AccessDeniedException on the table', async () => {
    const error = await asFunction([], () => stack.pool.getRun('r')).catch((e: Error) => e);
    expect(error).toMatchObject({ name: 'AccessDeniedException' });
    expect((error as Error).message).toMatch(
      /not authorized to perform: dynamodb:GetItem on resource: arn:aws:dynamodb:[a-z0-9-]+:000000000000:table\//,
    );
  });

  it('answers a refused Bedrock call with AccessDeniedException on the foundation model', async () => {
    // The user's own AWS configuration, which the Bedrock client uses (the stand-in accepts any key).
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDUSER',
      AWS_SECRET_ACCESS_KEY: 'user-secret',
    });
    const model = new BedrockModel('bedrock:amazon.nova-micro-v1:0');
    const call = () =>
      model.generate({
        stage: 'generate-instructions',
        format: 'instructions/default',
        kind: 'chat',
        prompt: 'hi',
        temperature: 1,
        topP: 1,
        maxTokens: 10,
      });
    bedrock.reset();
    const error = await asFunction([], call).catch((e: Error) => e);
    expect(error).toMatchObject({ name: 'ModelRequestFailed' });
    expect((error as Error).message).toMatch(
      /bedrock:InvokeModel on resource: arn:aws:bedrock:eu-west-1::foundation-model\/amazon.nova-micro-v1:0/,
    );
    expect(bedrock.requests).toHaveLength(0);
    const allowed = [
      {
        Effect: 'Allow',
        Action: 'bedrock:InvokeModel',
        Resource: 'arn:aws:bedrock:*::foundation-model/amazon.nova-micro-v1:0',
      },
    ];
    expect((await asFunction(allowed, call)).text.length).toBeGreaterThan(0);
  });
});

describe('the local stack with one grant removed from the template', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await LocalStack.start({
      dataDir: path.join(work, 'missing-grant'),
      fresh: true,
      iam: true,
      editTemplate: (template) => removeGrant(template, /SaveIteration/, 's3:PutObject'),
    });
  }, 120_000);
  afterAll(() => stack.close());

  it('fails the run at that stage with AccessDenied naming the action and the resource', async () => {
    const result = await stack.execute({ ...small, pool: 'denied' }, { retryIntervalMs: 10 });
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('AccessDenied');
    expect(result.cause).toMatch(
      new RegExp(
        `assumed-role/\\w*SaveIteration\\w*/\\w*SaveIteration\\w* is not authorized to perform: s3:PutObject on resource: \\\\"arn:aws:s3:::${stack.bucketName}/pools/denied/`,
      ),
    );
    const failedStates = result.events.flatMap((e) => (e.type === 'StateFailed' ? [e.state.name] : []));
    expect(failedStates).toContain('Save iteration');
    // Record failure ran on the status-change event: the run is marked with the readable cause.
    expect(result.deliveries).toEqual([
      expect.objectContaining({ rule: expect.stringMatching(/RunEndedUnsuccessfully/) }),
    ]);
    expect(result.deliveries[0]?.error).toBeUndefined();
    const run = await stack.pool.getRun(result.executionName);
    expect(run).toMatchObject({ status: 'FAILED', error: 'AccessDenied' });
    expect(run?.cause).toMatch(/^User: .* s3:PutObject on resource: "arn:aws:s3:::/);
  });
});

describe('the same template with enforcement off (the debugging switch)', () => {
  it('runs', async () => {
    const off = await LocalStack.start({
      dataDir: path.join(work, 'off'),
      fresh: true,
      iam: false,
      editTemplate: (template) => removeGrant(template, /SaveIteration/, 's3:PutObject'),
    });
    try {
      const result = await off.execute({ ...small, pool: 'allowed' });
      expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    } finally {
      await off.close();
    }
  }, 120_000);
});
