/**
 * What an SDK request needs from IAM, read from the HTTP request as the service reads it, and the
 * evaluator's verdict on a role's policies.
 */
import { describe, expect, it } from 'vitest';
import { describeRequest, IamEvaluator, loadEvaluator, type SdkHttpRequest } from '../../infra/local/iam.ts';
import { GRANT_PUT_ACTIONS, roleWith } from '../support/iam-roles.ts';

const place = { region: 'eu-west-1', account: '000000000000' };
const http = (request: Partial<SdkHttpRequest>): SdkHttpRequest => ({
  method: 'GET',
  hostname: '127.0.0.1',
  path: '/',
  headers: {},
  ...request,
});
/** The role of a function `Filter` with one policy of these statements. */
const principalWith = (...statements: object[]) => roleWith('Filter', 'FilterRole', statements);
const dynamo = (operation: string, body: object) =>
  describeRequest(
    'dynamodb',
    http({
      method: 'POST',
      headers: { 'x-amz-target': `DynamoDB_20120810.${operation}` },
      body: new TextEncoder().encode(JSON.stringify(body)),
    }),
    place,
  );

describe('the IAM authorizations of a request', () => {
  it('lists an S3 prefix as s3:ListBucket on the bucket with the s3:prefix condition key', () => {
    const request = describeRequest(
      's3',
      http({ path: '/bucket', query: { 'list-type': '2', prefix: 'runs/r1/' } }),
      place,
    );
    expect(request.authorizations).toEqual([
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::bucket', context: { 's3:prefix': 'runs/r1/' } },
    ]);
  });

  it('copies an object with s3:GetObject on the source and s3:PutObject on the target', () => {
    const request = describeRequest(
      's3',
      http({
        method: 'PUT',
        path: '/bucket/pools/p/index.bin',
        headers: { 'x-amz-copy-source': 'bucket/runs/r%2Fx.bin' },
      }),
      place,
    );
    expect(request).toMatchObject({ operation: 'CopyObject', key: 'pools/p/index.bin' });
    expect(request.authorizations).toEqual([
      { action: 's3:GetObject', resource: 'arn:aws:s3:::bucket/runs/r/x.bin' },
      { action: 's3:PutObject', resource: 'arn:aws:s3:::bucket/pools/p/index.bin' },
    ]);
  });

  it('checks each item of a DynamoDB transaction with its own action, and a Query on an index on the index', () => {
    expect(
      dynamo('TransactWriteItems', {
        TransactItems: [
          { Put: { TableName: 'T' } },
          { Update: { TableName: 'T' } },
          { ConditionCheck: { TableName: 'U' } },
        ],
      }).authorizations.map((a) => `${a.action} ${a.resource}`),
    ).toEqual([
      'dynamodb:PutItem arn:aws:dynamodb:eu-west-1:000000000000:table/T',
      'dynamodb:UpdateItem arn:aws:dynamodb:eu-west-1:000000000000:table/T',
      'dynamodb:ConditionCheckItem arn:aws:dynamodb:eu-west-1:000000000000:table/U',
    ]);
    expect(dynamo('Query', { TableName: 'T', IndexName: 'byRun' }).authorizations).toEqual([
      { action: 'dynamodb:Query', resource: 'arn:aws:dynamodb:eu-west-1:000000000000:table/T/index/byRun' },
    ]);
    expect(dynamo('PutItem', { TableName: 'T', Item: { pk: { S: 'POOL#p' }, sk: { S: 'META' } } }).key).toBe(
      'POOL#p/META',
    );
  });

  it('invokes a Bedrock inference profile: the profile and its foundation model, in the signing region', () => {
    const request = describeRequest(
      'bedrock-runtime',
      http({
        method: 'POST',
        path: `/model/${encodeURIComponent('us.anthropic.claude-3-5-haiku-20241022-v1:0')}/converse`,
        headers: {
          authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20260101/us-west-2/bedrock/aws4_request, …',
        },
      }),
      place,
    );
    expect(request.authorizations).toEqual([
      {
        action: 'bedrock:InvokeModel',
        resource:
          'arn:aws:bedrock:us-west-2:000000000000:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0',
      },
      {
        action: 'bedrock:InvokeModel',
        resource: 'arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0',
      },
    ]);
  });

  it('applies a Bedrock guardrail: bedrock:ApplyGuardrail on the guardrail (any version), by id or ARN', async () => {
    const apply = (identifier: string) =>
      describeRequest(
        'bedrock-runtime',
        http({ method: 'POST', path: `/guardrail/${encodeURIComponent(identifier)}/version/3/apply` }),
        place,
      );
    const arn = 'arn:aws:bedrock:eu-west-1:000000000000:guardrail/gr0abc';

    expect(apply('gr0abc')).toEqual({
      service: 'bedrock-runtime',
      operation: 'ApplyGuardrail',
      authorizations: [{ action: 'bedrock:ApplyGuardrail', resource: arn }],
    });
    expect(apply(arn).authorizations).toEqual([{ action: 'bedrock:ApplyGuardrail', resource: arn }]);
    const iam = new IamEvaluator(place, await loadEvaluator());
    const principal = principalWith({ Effect: 'Allow', Action: 'bedrock:ApplyGuardrail', Resource: arn });
    expect(await iam.check(principal, apply('gr0abc').authorizations)).toBeUndefined();
    expect(await iam.check(principal, apply('other1').authorizations)).toMatchObject({ kind: 'implicit' });
  });
});

/** The requests of a multipart upload of `exports/r/dataset.jsonl` to bucket `b`, and their actions. */
const multipart = {
  CreateMultipartUpload: { method: 'POST', query: { uploads: '' } },
  UploadPart: { method: 'PUT', query: { partNumber: '1', uploadId: 'u1' } },
  CompleteMultipartUpload: { method: 'POST', query: { uploadId: 'u1' } },
  AbortMultipartUpload: { method: 'DELETE', query: { uploadId: 'u1' } },
  ListParts: { method: 'GET', query: { uploadId: 'u1' } },
} satisfies Record<string, Partial<SdkHttpRequest>>;
const multipartRequest = (operation: keyof typeof multipart) =>
  describeRequest('s3', http({ path: '/b/exports/r/dataset.jsonl', ...multipart[operation] }), place);

describe('the IAM authorizations of a multipart upload', () => {
  it('are s3:PutObject to create, upload a part and complete, s3:AbortMultipartUpload to abort, as S3 authorizes them', () => {
    const actions = Object.fromEntries(
      (Object.keys(multipart) as (keyof typeof multipart)[]).map((operation) => {
        const request = multipartRequest(operation);
        expect(request.operation).toBe(operation);
        return [operation, request.authorizations.map((a) => `${a.action} ${a.resource}`)];
      }),
    );
    const object = 'arn:aws:s3:::b/exports/r/dataset.jsonl';
    expect(actions).toEqual({
      CreateMultipartUpload: [`s3:PutObject ${object}`],
      UploadPart: [`s3:PutObject ${object}`],
      CompleteMultipartUpload: [`s3:PutObject ${object}`],
      AbortMultipartUpload: [`s3:AbortMultipartUpload ${object}`],
      ListParts: [`s3:ListMultipartUploadParts ${object}`],
    });
    expect(describeRequest('s3', http({ path: '/b', query: { uploads: '' } }), place).authorizations).toEqual(
      [{ action: 's3:ListBucketMultipartUploads', resource: 'arn:aws:s3:::b' }],
    );
    expect(
      describeRequest(
        's3',
        http({
          method: 'PUT',
          path: '/b/exports/r/x',
          query: { partNumber: '2', uploadId: 'u1' },
          headers: { 'x-amz-copy-source': 'b/runs/r/y' },
        }),
        place,
      ),
    ).toMatchObject({
      operation: 'UploadPartCopy',
      authorizations: [
        { action: 's3:GetObject', resource: 'arn:aws:s3:::b/runs/r/y' },
        { action: 's3:PutObject', resource: 'arn:aws:s3:::b/exports/r/x' },
      ],
    });
  });

  it('are allowed by CDK’s grantPut on the prefix, and refused to a role without them', async () => {
    const iam = new IamEvaluator(place, await loadEvaluator());
    const check = (principal: ReturnType<typeof principalWith>, operation: keyof typeof multipart) =>
      iam.check(principal, multipartRequest(operation).authorizations);
    // What `bucket.grantPut(fn, 'exports/*')` synthesizes (aws-cdk-lib's BUCKET_PUT_ACTIONS).
    const grantPut = principalWith({
      Effect: 'Allow',
      Action: GRANT_PUT_ACTIONS,
      Resource: 'arn:aws:s3:::b/exports/*',
    });
    for (const operation of ['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload'] as const) {
      expect(await check(grantPut, operation)).toBeUndefined();
    }
    expect(await check(grantPut, 'AbortMultipartUpload')).toBeUndefined();

    const putOnly = principalWith({
      Effect: 'Allow',
      Action: 's3:PutObject',
      Resource: 'arn:aws:s3:::b/exports/*',
    });
    expect(await check(putOnly, 'UploadPart')).toBeUndefined();
    expect(await check(putOnly, 'AbortMultipartUpload')).toMatchObject({
      action: 's3:AbortMultipartUpload',
      kind: 'implicit',
    });
    const abortOnly = principalWith({
      Effect: 'Allow',
      Action: 's3:AbortMultipartUpload',
      Resource: 'arn:aws:s3:::b/exports/*',
    });
    for (const operation of ['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload'] as const) {
      expect(await check(abortOnly, operation)).toMatchObject({ action: 's3:PutObject', kind: 'implicit' });
    }
    const elsewhere = principalWith({ Effect: 'Allow', Action: 's3:*', Resource: 'arn:aws:s3:::b/runs/*' });
    expect(await check(elsewhere, 'CreateMultipartUpload')).toMatchObject({ kind: 'implicit' });
    expect(await check(elsewhere, 'AbortMultipartUpload')).toMatchObject({ kind: 'implicit' });
  });
});

describe('the evaluator', () => {
  it('allows what a statement grants, and refuses the rest naming principal, action and resource', async () => {
    const iam = new IamEvaluator(place, await loadEvaluator());
    const principal = principalWith(
      {
        Effect: 'Allow',
        Action: ['s3:GetObject*', 's3:List*'],
        Resource: ['arn:aws:s3:::b', 'arn:aws:s3:::b/pools/*'],
      },
      { Effect: 'Deny', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/pools/secret' },
    );
    expect(
      await iam.check(principal, [{ action: 's3:GetObject', resource: 'arn:aws:s3:::b/pools/x' }]),
    ).toBeUndefined();
    expect(
      await iam.check(principal, [{ action: 's3:GetObject', resource: 'arn:aws:s3:::b/runs/x' }]),
    ).toMatchObject({
      kind: 'implicit',
      message:
        'User: arn:aws:sts::000000000000:assumed-role/FilterRole/Filter is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::b/runs/x" because no identity-based policy allows the s3:GetObject action',
    });
    expect(
      await iam.check(principal, [{ action: 's3:GetObject', resource: 'arn:aws:s3:::b/pools/secret' }]),
    ).toMatchObject({ kind: 'explicit' });
  });
});
