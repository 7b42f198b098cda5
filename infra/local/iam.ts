/**
 * IAM on the local stack: every AWS request a handler makes is evaluated against the policies of that
 * function's role, as synthesized in the template (intrinsics resolved with the local resource names),
 * by a maintained IAM policy evaluator (`@cloud-copilot/iam-simulate`), and denied the way the service
 * denies it: S3 `AccessDenied` (403, XML), DynamoDB, Bedrock, Secrets Manager and Step Functions
 * `AccessDeniedException`, each with AWS's message naming the principal, action and resource.
 *
 * What the request maps to (action, resource, condition keys) is read from the HTTP request the SDK
 * built, as the service would: S3's REST method, path, query and copy-source header (`s3:prefix` for a
 * listing), DynamoDB's `X-Amz-Target` and body (`TableName`, `IndexName`, `RequestItems`,
 * `TransactItems`), Bedrock's `/model/{id}/converse` path (the foundation model or inference profile in
 * the signing region) and `/guardrail/{id}/version/{v}/apply` path (the guardrail), the Bedrock control
 * plane's batch inference jobs (`/model-invocation-job`: the model, the job, and `iam:PassRole` of the
 * service role with `iam:PassedToService`), the JSON protocols' `X-Amz-Target` for Secrets Manager and Step Functions.
 */
import { Readable } from 'node:stream';
import type { AwsService } from '../../functions/shared/config.ts';
import { inferenceProfileModel } from '../bedrock-ids.ts';
import { type CfnTemplate, type LocalNames, resolveIntrinsics, resourcesOfType } from './template.ts';

/** The parts of an SDK HTTP request the mapping reads. */
export interface SdkHttpRequest {
  method: string;
  hostname: string;
  path: string;
  query?: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
}

/** One action on one resource that a request needs, with its condition keys. */
export interface Authorization {
  action: string;
  resource: string;
  context?: Record<string, string | string[]>;
}

/** What an SDK request is, for IAM and for fault predicates. */
export interface AwsRequest {
  service: AwsService;
  /** The API operation, e.g. `PutObject`, `UpdateItem`, `Converse`. */
  operation: string;
  /** Every authorization the request needs (a transaction or a copy needs several). */
  authorizations: Authorization[];
  /** S3 object key, or the DynamoDB item's `pk`/`sk` joined by `/`, when the request names one. */
  key?: string;
}

/** Where the local stack stands: the region and account its ARNs use. */
export interface Place {
  region: string;
  account: string;
}

const header = (request: SdkHttpRequest, name: string) => {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(request.headers)) if (key.toLowerCase() === wanted) return value;
  return undefined;
};

/** A request body as text (bytes decoded as such: the SDK's JSON bodies warn on string methods). */
const textBody = (request: SdkHttpRequest): string =>
  typeof request.body === 'string'
    ? request.body
    : request.body instanceof Uint8Array
      ? new TextDecoder().decode(request.body)
      : '';

const jsonBody = (request: SdkHttpRequest): Record<string, unknown> => {
  try {
    return JSON.parse(textBody(request) || '{}') as Record<string, unknown>;
  } catch {
    return {};
  }
};

/** The region a SigV4-signed request is scoped to (`Credential=<key>/<date>/<region>/<service>/…`). */
export const signingRegion = (request: SdkHttpRequest): string | undefined =>
  /Credential=[^/]+\/\d+\/([^/]+)\//.exec(header(request, 'authorization') ?? '')?.[1];

function describeS3(request: SdkHttpRequest): AwsRequest {
  const [bucket = '', ...rest] = request.path.replace(/^\//, '').split('/');
  const key = rest.length > 0 ? decodeURIComponent(rest.join('/')) : undefined;
  const query = request.query ?? {};
  const bucketArn = `arn:aws:s3:::${decodeURIComponent(bucket)}`;
  const objectArn = `${bucketArn}/${key ?? ''}`;
  const method = request.method.toUpperCase();
  const of = (operation: string, ...authorizations: Authorization[]): AwsRequest => ({
    service: 's3',
    operation,
    authorizations,
    ...(key === undefined ? {} : { key }),
  });
  if (key === undefined || key === '') {
    if (method === 'GET' && 'location' in query) {
      return of('GetBucketLocation', { action: 's3:GetBucketLocation', resource: bucketArn });
    }
    if (method === 'GET' && 'uploads' in query) {
      return of('ListMultipartUploads', { action: 's3:ListBucketMultipartUploads', resource: bucketArn });
    }
    if (method === 'GET' && 'versions' in query) {
      return of('ListObjectVersions', { action: 's3:ListBucketVersions', resource: bucketArn });
    }
    if (method === 'GET' || method === 'HEAD') {
      const prefix = typeof query.prefix === 'string' ? query.prefix : '';
      return of(method === 'HEAD' ? 'HeadBucket' : 'ListObjects', {
        action: 's3:ListBucket',
        resource: bucketArn,
        ...(method === 'GET' ? { context: { 's3:prefix': prefix } } : {}),
      });
    }
    if (method === 'PUT') return of('CreateBucket', { action: 's3:CreateBucket', resource: bucketArn });
    if (method === 'POST' && 'delete' in query) {
      const keys = [...textBody(request).matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1] ?? '');
      return of(
        'DeleteObjects',
        ...keys.map((k) => ({ action: 's3:DeleteObject', resource: `${bucketArn}/${k}` })),
      );
    }
    return of(`${method} bucket`, { action: 's3:*', resource: bucketArn });
  }
  if (method === 'GET' && 'uploadId' in query) {
    return of('ListParts', { action: 's3:ListMultipartUploadParts', resource: objectArn });
  }
  if (method === 'GET' || method === 'HEAD') {
    return of(method === 'HEAD' ? 'HeadObject' : 'GetObject', {
      action: 's3:GetObject',
      resource: objectArn,
    });
  }
  if (method === 'DELETE') {
    return 'uploadId' in query
      ? of('AbortMultipartUpload', { action: 's3:AbortMultipartUpload', resource: objectArn })
      : of('DeleteObject', { action: 's3:DeleteObject', resource: objectArn });
  }
  // A multipart upload is s3:PutObject throughout (create, parts, complete), as S3 authorizes it;
  // aborting it is s3:AbortMultipartUpload (above); a part copied from an object also reads the source.
  const copySource = header(request, 'x-amz-copy-source');
  if (method === 'PUT' && copySource) {
    const source = decodeURIComponent(copySource.replace(/^\//, '').split('?')[0] ?? '');
    return of(
      'uploadId' in query ? 'UploadPartCopy' : 'CopyObject',
      { action: 's3:GetObject', resource: `arn:aws:s3:::${source}` },
      { action: 's3:PutObject', resource: objectArn },
    );
  }
  const operation =
    method === 'POST'
      ? 'uploads' in query
        ? 'CreateMultipartUpload'
        : 'CompleteMultipartUpload'
      : 'uploadId' in query
        ? 'UploadPart'
        : 'PutObject';
  return of(operation, { action: 's3:PutObject', resource: objectArn });
}

/** DynamoDB's actions of the operations inside a transaction. */
const TRANSACT_ACTIONS: Record<string, string> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
  Get: 'dynamodb:GetItem',
};

function describeDynamoDb(request: SdkHttpRequest, place: Place): AwsRequest {
  const operation = (header(request, 'x-amz-target') ?? '').split('.').at(-1) ?? '';
  const body = jsonBody(request);
  const table = (name: unknown, index?: unknown) =>
    `arn:aws:dynamodb:${place.region}:${place.account}:table/${String(name)}${index ? `/index/${String(index)}` : ''}`;
  const itemKey = (item: unknown) => {
    const attributes = item as Record<string, { S?: string }> | undefined;
    const pk = attributes?.pk?.S;
    return pk === undefined ? undefined : `${pk}/${attributes?.sk?.S ?? ''}`;
  };
  let authorizations: Authorization[];
  if (operation === 'TransactWriteItems' || operation === 'TransactGetItems') {
    authorizations = ((body.TransactItems ?? []) as Record<string, { TableName?: string }>[]).flatMap(
      (item) =>
        Object.entries(item).map(([kind, op]) => ({
          action: TRANSACT_ACTIONS[kind] ?? `dynamodb:${kind}`,
          resource: table(op.TableName),
        })),
    );
  } else if (operation === 'BatchGetItem' || operation === 'BatchWriteItem') {
    authorizations = Object.keys((body.RequestItems ?? {}) as object).map((name) => ({
      action: `dynamodb:${operation}`,
      resource: table(name),
    }));
  } else if (typeof body.TableName === 'string') {
    authorizations = [{ action: `dynamodb:${operation}`, resource: table(body.TableName, body.IndexName) }];
  } else {
    authorizations = [{ action: `dynamodb:${operation}`, resource: '*' }];
  }
  const key = itemKey(body.Key ?? body.Item);
  return { service: 'dynamodb', operation, authorizations, ...(key === undefined ? {} : { key }) };
}

/** Bedrock runtime paths and the IAM action each needs. */
const BEDROCK_OPERATIONS: Record<string, [string, string]> = {
  converse: ['Converse', 'bedrock:InvokeModel'],
  'converse-stream': ['ConverseStream', 'bedrock:InvokeModelWithResponseStream'],
  invoke: ['InvokeModel', 'bedrock:InvokeModel'],
  'invoke-with-response-stream': ['InvokeModelWithResponseStream', 'bedrock:InvokeModelWithResponseStream'],
};

function describeBedrock(request: SdkHttpRequest, place: Place): AwsRequest {
  const region = signingRegion(request) ?? place.region;
  // ApplyGuardrail: `/guardrail/{id or ARN}/version/{version}/apply`, on the guardrail (all versions).
  const guardrail = /^\/guardrail\/([^/]+)\/version\/[^/]+\/apply$/.exec(request.path);
  if (guardrail) {
    const identifier = decodeURIComponent(guardrail[1] ?? '');
    const resource = identifier.startsWith('arn:')
      ? identifier
      : `arn:aws:bedrock:${region}:${place.account}:guardrail/${identifier}`;
    return {
      service: 'bedrock-runtime',
      operation: 'ApplyGuardrail',
      authorizations: [{ action: 'bedrock:ApplyGuardrail', resource }],
    };
  }
  const match = /^\/model\/([^/]+)\/([a-z-]+)$/.exec(request.path);
  const [operation, action] = BEDROCK_OPERATIONS[match?.[2] ?? ''] ?? [request.path, 'bedrock:InvokeModel'];
  const modelId = decodeURIComponent(match?.[1] ?? '');
  const foundation = (id: string) => `arn:aws:bedrock:${region}::foundation-model/${id}`;
  const base = inferenceProfileModel(modelId);
  const resources = modelId.startsWith('arn:')
    ? [modelId]
    : base
      ? [`arn:aws:bedrock:${region}:${place.account}:inference-profile/${modelId}`, foundation(base)]
      : [foundation(modelId)];
  return {
    service: 'bedrock-runtime',
    operation,
    authorizations: resources.map((resource) => ({ action, resource })),
  };
}

/**
 * The Bedrock control plane's batch inference operations (REST): `POST /model-invocation-job` needs
 * `bedrock:CreateModelInvocationJob` on the model and on the job, and `iam:PassRole` on the service role
 * it names, passed to Bedrock (`iam:PassedToService`), as AWS authorizes it; `GET
 * /model-invocation-job/{id}` needs `bedrock:GetModelInvocationJob` on the job;
 * `POST /model-invocation-job/{id}/stop`, `bedrock:StopModelInvocationJob`.
 */
function describeBedrockControl(request: SdkHttpRequest, place: Place): AwsRequest {
  const region = signingRegion(request) ?? place.region;
  const job = (id: string) =>
    id.startsWith('arn:') ? id : `arn:aws:bedrock:${region}:${place.account}:model-invocation-job/${id}`;
  const method = request.method.toUpperCase();
  if (method === 'POST' && request.path === '/model-invocation-job') {
    const body = jsonBody(request);
    const modelId = String(body.modelId ?? '');
    const base = inferenceProfileModel(modelId);
    const models = modelId.startsWith('arn:')
      ? [modelId]
      : base
        ? [`arn:aws:bedrock:${region}:${place.account}:inference-profile/${modelId}`]
        : [`arn:aws:bedrock:${region}::foundation-model/${modelId}`];
    return {
      service: 'bedrock',
      operation: 'CreateModelInvocationJob',
      authorizations: [
        ...models.map((resource) => ({ action: 'bedrock:CreateModelInvocationJob', resource })),
        { action: 'bedrock:CreateModelInvocationJob', resource: job(String(body.jobName ?? '')) },
        {
          action: 'iam:PassRole',
          resource: String(body.roleArn ?? ''),
          context: { 'iam:PassedToService': 'bedrock.amazonaws.com' },
        },
      ],
    };
  }
  const match = /^\/model-invocation-job\/([^/]+)(\/stop)?$/.exec(request.path);
  if (!match) {
    return {
      service: 'bedrock',
      operation: request.path,
      authorizations: [{ action: 'bedrock:*', resource: '*' }],
    };
  }
  const operation = match[2] ? 'StopModelInvocationJob' : 'GetModelInvocationJob';
  return {
    service: 'bedrock',
    operation,
    authorizations: [{ action: `bedrock:${operation}`, resource: job(decodeURIComponent(match[1] ?? '')) }],
  };
}

function describeJsonService(service: AwsService, request: SdkHttpRequest, place: Place): AwsRequest {
  const operation = (header(request, 'x-amz-target') ?? '').split('.').at(-1) ?? request.path;
  const body = jsonBody(request);
  if (service === 'secretsmanager') {
    const id = String(body.SecretId ?? '*');
    const resource = id.startsWith('arn:')
      ? id
      : `arn:aws:secretsmanager:${place.region}:${place.account}:secret:${id}-LOCAL0`;
    return { service, operation, authorizations: [{ action: `secretsmanager:${operation}`, resource }] };
  }
  const resource = String(body.executionArn ?? body.stateMachineArn ?? '*');
  return { service, operation, authorizations: [{ action: `states:${operation}`, resource }] };
}

/** What an SDK request of `service` is (see the module comment). */
export function describeRequest(service: AwsService, request: SdkHttpRequest, place: Place): AwsRequest {
  switch (service) {
    case 's3':
      return describeS3(request);
    case 'dynamodb':
      return describeDynamoDb(request, place);
    case 'bedrock-runtime':
      return describeBedrock(request, place);
    case 'bedrock':
      return describeBedrockControl(request, place);
    case 'secretsmanager':
    case 'sfn':
      return describeJsonService(service, request, place);
    case 'cloudformation': {
      const operation = /Action=(\w+)/.exec(textBody(request))?.[1] ?? 'Unknown';
      return {
        service,
        operation,
        authorizations: [{ action: `cloudformation:${operation}`, resource: '*' }],
      };
    }
  }
}

/** A principal: a function's role as the template defines it. */
export interface Principal {
  /** The function's name (its logical id locally). */
  functionName: string;
  /** The role's name (its logical id locally). */
  roleName: string;
  /** The role's identity policies, intrinsics resolved. */
  policies: { name: string; policy: unknown }[];
}

/** A request IAM refused, and why. */
export interface Denial {
  action: string;
  resource: string;
  /** `explicit` when a Deny statement matched. */
  kind: 'explicit' | 'implicit';
  message: string;
}

/**
 * Each function's role policies from the template: the inline `Policies` of its role and every
 * `AWS::IAM::Policy` attached to it. AWS managed policies are not in the template and are left out
 * (the one CDK attaches, AWSLambdaBasicExecutionRole, only allows writing the function's own logs,
 * which the handlers never do through the SDK): leaving an allow out can only make the local stack
 * stricter.
 */
export function principalsFromTemplate(template: CfnTemplate, names: LocalNames): Map<string, Principal> {
  const policiesOf = rolePolicies(template, names);
  const principals = new Map<string, Principal>();
  for (const [id, resource] of resourcesOfType(template, 'AWS::Lambda::Function')) {
    const role = roleOf(resource.Properties?.Role);
    if (!role) continue;
    principals.set(id, { functionName: id, roleName: role, policies: policiesOf(role) });
  }
  return principals;
}

/**
 * The state machine's role as a principal (its session named after the machine), for what Step
 * Functions itself does as that role: start a Distributed Map's child executions.
 */
export function stateMachinePrincipal(template: CfnTemplate, names: LocalNames): Principal | undefined {
  const [machine] = resourcesOfType(template, 'AWS::StepFunctions::StateMachine');
  const role = roleOf(machine?.[1].Properties?.RoleArn);
  if (!machine || !role) return undefined;
  return { functionName: machine[0], roleName: role, policies: rolePolicies(template, names)(role) };
}

/** The logical id of the role an `Fn::GetAtt [role, Arn]` names. */
const roleOf = (arn: unknown): string | undefined =>
  (arn as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt']?.[0];

/** A role's policies: its inline `Policies` and every `AWS::IAM::Policy` attached to it, resolved. */
function rolePolicies(template: CfnTemplate, names: LocalNames) {
  const attached = new Map<string, { name: string; policy: unknown }[]>();
  for (const [id, resource] of resourcesOfType(template, 'AWS::IAM::Policy')) {
    for (const role of (resource.Properties?.Roles ?? []) as { Ref?: string }[]) {
      if (!role.Ref) continue;
      const list = attached.get(role.Ref) ?? [];
      list.push({ name: id, policy: resolveIntrinsics(resource.Properties?.PolicyDocument, names) });
      attached.set(role.Ref, list);
    }
  }
  return (role: string) => {
    const inline = (
      (template.Resources[role]?.Properties?.Policies ?? []) as {
        PolicyName: string;
        PolicyDocument: unknown;
      }[]
    ).map((p) => ({ name: p.PolicyName, policy: resolveIntrinsics(p.PolicyDocument, names) }));
    return [...inline, ...(attached.get(role) ?? [])];
  };
}

type Simulate = typeof import('@cloud-copilot/iam-simulate').runSimulation;
let simulator: Promise<Simulate> | undefined;

/** Loads the evaluator (a dev dependency: the deployed functions never bundle it). */
export function loadEvaluator(): Promise<Simulate> {
  simulator ??= import('@cloud-copilot/iam-simulate').then(
    (module) => module.runSimulation,
    (error: unknown) => {
      simulator = undefined;
      throw new Error(
        `local IAM enforcement needs @cloud-copilot/iam-simulate (npm ci); --no-iam turns it off (${(error as Error).message})`,
      );
    },
  );
  return simulator;
}

/** Evaluates requests against principals' policies, remembering every decision (they don't change). */
export class IamEvaluator {
  private readonly decisions = new WeakMap<Principal, Map<string, Promise<Denial | undefined>>>();

  constructor(
    private readonly place: Place,
    private readonly simulate: Simulate,
  ) {}

  /** The first authorization of `request` that `principal` is refused, or `undefined` when all are allowed. */
  async check(principal: Principal, authorizations: readonly Authorization[]): Promise<Denial | undefined> {
    let decisions = this.decisions.get(principal);
    if (!decisions) {
      decisions = new Map();
      this.decisions.set(principal, decisions);
    }
    for (const authorization of authorizations) {
      const key = JSON.stringify(authorization);
      let decision = decisions.get(key);
      if (!decision) {
        decision = this.evaluate(principal, authorization);
        decisions.set(key, decision);
      }
      const denial = await decision;
      if (denial) return denial;
    }
    return undefined;
  }

  private async evaluate(principal: Principal, { action, resource, context }: Authorization) {
    const result = await this.simulate(
      {
        request: {
          principal: `arn:aws:iam::${this.place.account}:role/${principal.roleName}`,
          action,
          resource: { resource, accountId: this.place.account },
          // In AWS the SDK speaks TLS: policies that deny plain HTTP must not deny the local servers.
          contextVariables: { 'aws:SecureTransport': 'true', ...context },
        },
        identityPolicies: principal.policies,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      },
      {},
    );
    if (result.resultType === 'error') {
      throw new Error(`local IAM: cannot evaluate ${action} on ${resource}: ${result.errors.message}`);
    }
    if (result.overallResult === 'Allowed') return undefined;
    const kind = result.overallResult === 'ExplicitlyDenied' ? 'explicit' : 'implicit';
    const who = `arn:aws:sts::${this.place.account}:assumed-role/${principal.roleName}/${principal.functionName}`;
    const why =
      kind === 'explicit'
        ? 'with an explicit deny in an identity-based policy'
        : `because no identity-based policy allows the ${action} action`;
    const on = action.startsWith('s3:') ? `"${resource}"` : resource;
    return {
      action,
      resource,
      kind,
      message: `User: ${who} is not authorized to perform: ${action} on resource: ${on} ${why}`,
    } satisfies Denial;
  }
}

/** An HTTP response as the SDK's deserializers read it. */
export interface SdkHttpResponse {
  statusCode: number;
  reason?: string;
  headers: Record<string, string>;
  body: Readable;
}

const respond = (statusCode: number, headers: Record<string, string>, body: string): SdkHttpResponse => ({
  statusCode,
  headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
  body: Readable.from([Buffer.from(body)]),
});

const xmlEscape = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The response `service` gives a request IAM refused. */
export function denialResponse(service: AwsService, denial: Denial): SdkHttpResponse {
  const requestId = crypto.randomUUID();
  switch (service) {
    case 's3':
      return respond(
        403,
        { 'content-type': 'application/xml', 'x-amz-request-id': requestId },
        `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${xmlEscape(denial.message)}</Message><RequestId>${requestId}</RequestId><HostId>local</HostId></Error>`,
      );
    case 'cloudformation':
      return respond(
        403,
        { 'content-type': 'text/xml' },
        `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>${xmlEscape(denial.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
    case 'bedrock-runtime':
    case 'bedrock':
      return respond(
        403,
        {
          'content-type': 'application/json',
          'x-amzn-errortype': 'AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/',
          'x-amzn-requestid': requestId,
        },
        JSON.stringify({ message: denial.message }),
      );
    case 'dynamodb':
      return respond(
        400,
        { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': requestId },
        JSON.stringify({
          __type: 'com.amazon.coral.service#AccessDeniedException',
          Message: denial.message,
        }),
      );
    case 'secretsmanager':
    case 'sfn':
      return respond(
        400,
        {
          'content-type': service === 'sfn' ? 'application/x-amz-json-1.0' : 'application/x-amz-json-1.1',
          'x-amzn-requestid': requestId,
        },
        JSON.stringify({ __type: 'AccessDeniedException', message: denial.message }),
      );
  }
}
