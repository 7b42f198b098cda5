/**
 * The stage functions' permissions as synthesized: what each may do in S3, DynamoDB, Secrets Manager
 * and Bedrock, read from the IAM policies of its role in the template, and the cdk-nag guard that keeps
 * `Resource: "*"` to the actions that have no narrower form.
 */
import { App } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { beforeAll, describe, expect, it } from 'vitest';
import { LIMIT_SETTINGS } from '../../functions/shared/limits.ts';
import { GUARDRAIL_ENV } from '../../functions/shared/safety.ts';
import { INLINE_MAP_MAX_CONCURRENCY } from '../../functions/shared/schemas.ts';
import { STAGES } from '../../functions/stages.ts';
import { buildApp, propsFromContext } from '../../infra/app.ts';
import type { CfnTemplate } from '../../infra/local/template.ts';
import { ENTRY_METADATA } from '../../infra/project.ts';
import { UNSCOPED_ACTIONS } from '../../infra/roles.ts';

interface Statement {
  Effect: string;
  Action: string[];
  Resource: string[];
}

/** An IAM pattern (`*` wildcards) as a regular expression. */
const glob = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);

/**
 * A template with its tokens written readably: `<id>` for a `Ref`, `<id>.Arn` for a `Fn::GetAtt`, joins
 * joined, `<id>.ArnPart6` for a part of an ARN, and the local stack's account, region and partition for the pseudo parameters.
 */
function readable(node: unknown): unknown {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': 'us-east-1',
    'AWS::AccountId': '000000000000',
    'AWS::URLSuffix': 'amazonaws.com',
  };
  if (Array.isArray(node)) return node.map(readable);
  if (node === null || typeof node !== 'object') return node;
  const {
    Ref,
    'Fn::GetAtt': getAtt,
    'Fn::Join': join,
    'Fn::Select': select,
  } = node as Record<string, unknown>;
  if (typeof Ref === 'string') return pseudo[Ref] ?? `<${Ref}>`;
  if (Array.isArray(getAtt)) return `<${getAtt[0]}>.${getAtt[1]}`;
  if (Array.isArray(join)) return (readable(join[1]) as unknown[]).join(join[0]);
  // A part of an ARN (CDK's `splitArn`): `<id>.ArnPart6` for part 6 of the ARN `<id>` refers to.
  if (Array.isArray(select)) {
    const [
      index,
      {
        'Fn::Split': [, of],
      },
    ] = select as [number, { 'Fn::Split': [string, unknown] }];
    return `${readable(of)}.ArnPart${index}`;
  }
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, readable(value)]));
}

/** A synthesized stack, read as the tests need it. */
function synthesize(context: Record<string, unknown> = {}) {
  const { app, stack } = buildApp(new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } }));
  const raw = app.synth().getStackByName(stack.stackName).template as CfnTemplate;
  const template = readable(raw) as CfnTemplate;
  const [bucketId] = Object.entries(raw.Resources).find(([, r]) => r.Type === 'AWS::S3::Bucket') ?? [];
  const [tableId] =
    Object.entries(raw.Resources).find(([, r]) => r.Type === 'AWS::DynamoDB::GlobalTable') ?? [];
  const resources = Object.entries(template.Resources);

  /** The properties of the stage functions by folder (`prepare`, `record-failure` …). */
  const functions = new Map(
    resources.flatMap(([, r]) => {
      const entry = r.Metadata?.[ENTRY_METADATA];
      return typeof entry === 'string' ? [[entry.split('/')[1] as string, r.Properties ?? {}] as const] : [];
    }),
  );
  const propertiesOf = (folder: string) => {
    const properties = functions.get(folder);
    if (!properties) throw new Error(`no function for ${folder}`);
    return properties;
  };
  /** A stage function's role, `<logical id>`. */
  const roleOf = (folder: string) => String(propertiesOf(folder).Role).replace(/\.Arn$/, '');
  /** Every statement of every policy attached to a stage function's role. */
  const statementsOf = (folder: string): Statement[] => {
    const role = roleOf(folder);
    return resources.flatMap(([, r]) => {
      const properties = r.Properties ?? {};
      if (r.Type !== 'AWS::IAM::Policy' || !(properties.Roles as string[]).includes(role)) return [];
      const { Statement } = properties.PolicyDocument as { Statement: Record<string, unknown>[] };
      return Statement.map((s) => ({
        Effect: String(s.Effect),
        Action: [s.Action].flat() as string[],
        Resource: [s.Resource].flat() as string[],
      }));
    });
  };
  /** Whether a stage's policies allow `action` on `resource` (IAM's `*` wildcards in both). */
  const allows = (folder: string, action: string, resource: string) =>
    statementsOf(folder).some(
      (s) =>
        s.Effect === 'Allow' &&
        s.Action.some((a) => glob(a).test(action)) &&
        s.Resource.some((r) => glob(r).test(resource)),
    );
  const folders = [...functions.keys()].sort();
  return {
    template,
    propertiesOf,
    roleOf,
    /** A stage function's environment variables. */
    envOf: (folder: string) =>
      (propertiesOf(folder).Environment as { Variables: Record<string, string> }).Variables,
    folders,
    statementsOf,
    allows,
    bucket: `<${bucketId}>.Arn`,
    object: (key: string) => `<${bucketId}>.Arn/${key}`,
    table: `<${tableId}>.Arn`,
    /** The stages allowed `action` on `resource`. */
    who: (action: string, resource: string) => folders.filter((folder) => allows(folder, action, resource)),
  };
}

let plain: ReturnType<typeof synthesize>;

beforeAll(() => {
  plain = synthesize();
});

describe('the stages in S3', () => {
  const prefixes = [
    'defaults/',
    'seeds/',
    'uploads/',
    'pools/',
    'runs/',
    'exports/',
    'prices/',
    'templates/',
    'documents/',
  ];
  const reach = (action: string) =>
    Object.fromEntries(
      plain.folders.map((folder) => [
        folder,
        prefixes.filter((prefix) => plain.allows(folder, action, plain.object(`${prefix}p/x.jsonl`))),
      ]),
    );

  it('read exactly what their code reads: the seed file, pools, runs, price tables, templates and documents', () => {
    expect(reach('s3:GetObject')).toEqual({
      export: [],
      filter: ['pools/', 'runs/'],
      // Its range's segments and the iteration's gate objects, by key.
      'gate-shard': ['pools/', 'runs/'],
      // The chunk's templates; batch mode's job input, records and output, by key.
      'generate-instances': ['runs/', 'templates/'],
      'generate-instructions': ['pools/', 'runs/', 'templates/'],
      prepare: [
        'defaults/',
        'seeds/',
        'uploads/',
        'pools/',
        'exports/',
        'prices/',
        'templates/',
        'documents/',
      ],
      'record-failure': [],
      'save-iteration': ['runs/', 'prices/'],
    });
  });

  it('write exactly under the prefixes they own', () => {
    expect(reach('s3:PutObject')).toEqual({
      export: ['exports/'],
      filter: ['runs/'],
      'gate-shard': ['runs/'],
      'generate-instances': ['runs/'],
      'generate-instructions': ['runs/'],
      // A backtranslate run's passages, under its own folder.
      prepare: ['pools/', 'runs/'],
      'record-failure': [],
      'save-iteration': ['pools/', 'runs/'],
    });
    expect(plain.who('s3:DeleteObject', plain.object('runs/r/x'))).toEqual([]);
  });

  it('let "Export dataset" stream its files as multipart uploads and abort them, under exports/ only', () => {
    // grantPut's s3:PutObject covers create, parts and complete; its s3:Abort* the abort.
    expect(reach('s3:AbortMultipartUpload').export).toEqual(['exports/']);
    expect(reach('s3:PutObject').export).toEqual(['exports/']);
  });

  it('let no model-calling stage list the bucket (a replay reads the recorded calls from the table, templates are got by key)', () => {
    const listers = plain.who('s3:ListBucket', plain.bucket);
    // Listing comes with reading (CDK's grantRead): "Generate instructions" reads the pool's files.
    expect(listers).not.toContain('generate-instances');
    expect(listers).not.toContain('export');
    expect(listers).not.toContain('record-failure');
    expect(listers).not.toContain('gate-shard');
  });

  it('let exactly "Prepare run" read the documents, which no stage may write', () => {
    expect(plain.who('s3:GetObject', plain.object('documents/legal/contract.pdf'))).toEqual(['prepare']);
    expect(plain.who('s3:PutObject', plain.object('documents/legal/contract.pdf'))).toEqual([]);
  });

  it('let exactly "Prepare run" and "Save iteration" read a price table, and only under prices/', () => {
    expect(plain.who('s3:GetObject', plain.object('prices/run-1/mine.json'))).toEqual([
      'prepare',
      'save-iteration',
    ]);
    expect(plain.who('s3:GetObject', plain.object('mine.json'))).toEqual([]);
  });
});

describe('the stages in DynamoDB', () => {
  it('let "Record failure" read its run item (the pool to give back) and update it', () => {
    expect(plain.allows('record-failure', 'dynamodb:GetItem', plain.table)).toBe(true);
    expect(plain.allows('record-failure', 'dynamodb:UpdateItem', plain.table)).toBe(true);
  });

  it('let every stage but the gate shards read and write the table, "Generate instructions" included (its usage records)', () => {
    for (const action of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query']) {
      expect(plain.who(action, plain.table), action).toEqual(
        plain.folders.filter((folder) => folder !== 'gate-shard'),
      );
    }
  });
});

describe('Step Functions', () => {
  it('may be asked about the executions of this state machine by the stages that may start a redrive, and no other', () => {
    const [machine] = Object.entries(plain.template.Resources).find(
      ([, r]) => r.Type === 'AWS::StepFunctions::StateMachine',
    ) ?? [''];
    const executions = `arn:aws:states:us-east-1:000000000000:execution:<${machine}>.ArnPart6`;
    expect(plain.who('states:DescribeExecution', `${executions}:run-1`)).toEqual([
      'export',
      'filter',
      'generate-instances',
      'generate-instructions',
      'save-iteration',
    ]);
    // Not another state machine's executions, and nothing else of Step Functions.
    expect(
      plain.who('states:DescribeExecution', 'arn:aws:states:us-east-1:000000000000:execution:other:run-1'),
    ).toEqual([]);
    expect(plain.who('states:StopExecution', `${executions}:run-1`)).toEqual([]);
  });
});

describe('the model', () => {
  it('API key secret is readable by the stages that call a model only (the two text-model ones, the filter for embeddings)', () => {
    const secret = Object.entries(plain.template.Resources).find(
      ([, r]) => r.Type === 'AWS::SecretsManager::Secret',
    )?.[0];
    expect(plain.who('secretsmanager:GetSecretValue', `<${secret}>`)).toEqual([
      'filter',
      'generate-instances',
      'generate-instructions',
    ]);
    const withArn = plain.folders.filter((folder) => 'MODEL_API_KEY_SECRET_ARN' in plain.envOf(folder));
    expect(withArn).toEqual(['filter', 'generate-instances', 'generate-instructions']);
  });

  it('configured on Bedrock may be invoked by the model-calling stages only, that model only', () => {
    const nova = synthesize({ 'selfinstruct:model': 'bedrock:amazon.nova-micro-v1:0' });
    const arn = 'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0';

    expect(nova.who('bedrock:InvokeModel', arn)).toEqual(['generate-instances', 'generate-instructions']);
    expect(nova.who('bedrock:InvokeModel', arn.replace('nova-micro', 'nova-pro'))).toEqual([]);
    expect(plain.who('bedrock:InvokeModel', arn)).toEqual([]);
  });

  it('configured on Bedrock lets the filter alone invoke Titan Text Embeddings V2, for the near-duplicate gate', () => {
    const nova = synthesize({ 'selfinstruct:model': 'bedrock:amazon.nova-micro-v1:0' });
    const titan = 'arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0';

    expect(nova.who('bedrock:InvokeModel', titan)).toEqual(['filter']);
    expect(plain.who('bedrock:InvokeModel', titan)).toEqual([]);
  });
});

describe('batch mode', () => {
  const nova = synthesize({ 'selfinstruct:model': 'bedrock:amazon.nova-micro-v1:0' });
  /** The statements (with conditions) of the policies attached to a role, by its logical id. */
  const rawStatements = (role: string) =>
    Object.values(nova.template.Resources).flatMap((r) => {
      const properties = r.Properties ?? {};
      if (r.Type !== 'AWS::IAM::Policy' || !(properties.Roles as string[]).includes(role)) return [];
      return (properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
    });
  const batchRole = Object.entries(nova.template.Resources).find(
    ([id, r]) => r.Type === 'AWS::IAM::Role' && id.includes('BatchInferenceRole'),
  );

  it('lets "Generate instances" alone start Bedrock batch jobs of the deployed model and look at them', () => {
    const model = 'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0';
    expect(nova.who('bedrock:CreateModelInvocationJob', model)).toEqual(['generate-instances']);
    expect(nova.who('bedrock:CreateModelInvocationJob', model.replace('nova-micro', 'nova-pro'))).toEqual([]);
    const jobs = rawStatements(nova.roleOf('generate-instances')).filter((s) =>
      [s.Action].flat().includes('bedrock:GetModelInvocationJob'),
    );
    expect(jobs).toHaveLength(1);
    expect(JSON.stringify(jobs[0]?.Resource)).toMatch(/:model-invocation-job\/\*"?$/);
    // A deployment without a Bedrock model has nothing to batch: no batch permission at all.
    expect(plain.who('bedrock:CreateModelInvocationJob', model)).toEqual([]);
    expect(plain.who('bedrock:GetModelInvocationJob', '*')).toEqual([]);
  });

  it('passes the batch role to Bedrock only, and from "Generate instances" only', () => {
    const passing = nova.folders.filter((folder) =>
      rawStatements(nova.roleOf(folder)).some((s) => [s.Action].flat().includes('iam:PassRole')),
    );
    expect(passing).toEqual(['generate-instances']);
    const [pass] = rawStatements(nova.roleOf('generate-instances')).filter((s) =>
      [s.Action].flat().includes('iam:PassRole'),
    );
    expect(pass?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'bedrock.amazonaws.com' } });
    expect(JSON.stringify(pass?.Resource)).toContain(batchRole?.[0]);
    expect(nova.envOf('generate-instances').BATCH_ROLE_ARN).toContain(batchRole?.[0]);
  });

  it('gives Bedrock a role that reads the batch inputs and writes the batch outputs, nothing else', () => {
    const trust = JSON.stringify(batchRole?.[1].Properties?.AssumeRolePolicyDocument);
    expect(trust).toContain('bedrock.amazonaws.com');
    expect(trust).toContain('aws:SourceAccount');
    const statements = rawStatements(`<${batchRole?.[0]}>`).map((s) => ({
      Action: [s.Action].flat() as string[],
      Resource: [s.Resource].flat().map(String),
    }));
    const allows = (action: string, key: string) =>
      statements.some(
        (s) =>
          s.Action.some((a) => glob(a).test(action)) &&
          s.Resource.some((r) => glob(r).test(nova.object(key))),
      );
    const input = 'runs/r/iteration-1/batch/input/instances.jsonl';
    const output = 'runs/r/iteration-1/batch/output/job/instances.jsonl.out';
    expect(allows('s3:GetObject', input)).toBe(true);
    expect(allows('s3:PutObject', input)).toBe(false);
    expect(allows('s3:PutObject', output)).toBe(true);
    expect(allows('s3:GetObject', 'runs/r/iteration-1/candidates.jsonl')).toBe(false);
    expect(allows('s3:GetObject', 'pools/p/seeds.jsonl')).toBe(false);
  });
});

describe.each([
  ['judge', 'judgeModel', 'nova-pro'],
  ['teacher', 'teacherModel', 'nova-premier'],
])('a %s on another Bedrock model', (role, key, other) => {
  it('may be invoked by "Generate instances" alone, next to the run’s model', () => {
    const synthesized = synthesize({
      'selfinstruct:model': 'bedrock:amazon.nova-micro-v1:0',
      [`selfinstruct:${key}`]: `bedrock:amazon.${other}-v1:0`,
    });
    const nova = 'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0';
    const extra = nova.replace('nova-micro', other);
    expect(synthesized.who('bedrock:InvokeModel', extra)).toEqual(['generate-instances']);
    expect(synthesized.who('bedrock:InvokeModel', nova)).toEqual([
      'generate-instances',
      'generate-instructions',
    ]);
    // Without the context key the model is the run's: nothing more is granted.
    expect(
      synthesize({ 'selfinstruct:model': 'bedrock:amazon.nova-micro-v1:0' }).who(
        'bedrock:InvokeModel',
        extra,
      ),
      role,
    ).toEqual([]);
  });
});

describe('a Bedrock guardrail (CDK context selfinstruct:guardrail)', () => {
  let guarded: ReturnType<typeof synthesize>;
  const resourcesOf = (synthesized: ReturnType<typeof synthesize>, type: string) =>
    Object.entries(synthesized.template.Resources).filter(([, r]) => r.Type === type);

  beforeAll(() => {
    guarded = synthesize({
      'selfinstruct:guardrail': JSON.stringify({ filters: { VIOLENCE: 'HIGH' }, deniedWords: ['acme'] }),
    });
  });

  it('is created from the context’s policies, every other category at the default strength, with a version', () => {
    const [guardrail, ...more] = resourcesOf(guarded, 'AWS::Bedrock::Guardrail');
    expect(more).toEqual([]);
    const properties = guardrail?.[1].Properties ?? {};
    expect(properties.ContentPolicyConfig).toEqual({
      FiltersConfig: [
        { Type: 'HATE', InputStrength: 'MEDIUM', OutputStrength: 'MEDIUM' },
        { Type: 'INSULTS', InputStrength: 'MEDIUM', OutputStrength: 'MEDIUM' },
        { Type: 'SEXUAL', InputStrength: 'MEDIUM', OutputStrength: 'MEDIUM' },
        { Type: 'VIOLENCE', InputStrength: 'HIGH', OutputStrength: 'HIGH' },
        { Type: 'MISCONDUCT', InputStrength: 'MEDIUM', OutputStrength: 'MEDIUM' },
        // Prompt attacks are evaluated on inputs only.
        { Type: 'PROMPT_ATTACK', InputStrength: 'MEDIUM', OutputStrength: 'NONE' },
      ],
    });
    expect(properties.WordPolicyConfig).toEqual({
      WordsConfig: [{ Text: 'acme' }],
      ManagedWordListsConfig: [{ Type: 'PROFANITY' }],
    });
    expect(properties.TopicPolicyConfig).toBeUndefined();
    const [version] = resourcesOf(guarded, 'AWS::Bedrock::GuardrailVersion');
    expect(version?.[1].Properties?.GuardrailIdentifier).toBe(`<${guardrail?.[0]}>.GuardrailId`);
  });

  it('may be applied by the two screening stages alone, on its ARN alone', () => {
    const [[id] = []] = resourcesOf(guarded, 'AWS::Bedrock::Guardrail');
    const arn = `<${id}>.GuardrailArn`;

    expect(guarded.who('bedrock:ApplyGuardrail', arn)).toEqual(['filter', 'generate-instances']);
    const grants = guarded.folders.flatMap((folder) =>
      guarded.statementsOf(folder).filter((s) => s.Action.some((action) => action.includes('Guardrail'))),
    );
    expect(grants).toEqual([
      { Effect: 'Allow', Action: ['bedrock:ApplyGuardrail'], Resource: [arn] },
      { Effect: 'Allow', Action: ['bedrock:ApplyGuardrail'], Resource: [arn] },
    ]);
    expect(
      guarded.who('bedrock:ApplyGuardrail', 'arn:aws:bedrock:us-east-1:000000000000:guardrail/other'),
    ).toEqual([]);
  });

  it('is named to the screening stages and "Prepare run" by its id and version', () => {
    const [[id] = []] = resourcesOf(guarded, 'AWS::Bedrock::Guardrail');
    const [[versionId] = []] = resourcesOf(guarded, 'AWS::Bedrock::GuardrailVersion');
    const named = guarded.folders.filter((folder) => GUARDRAIL_ENV.id in guarded.envOf(folder));

    expect(named).toEqual(['filter', 'generate-instances', 'prepare']);
    for (const folder of named) {
      expect(guarded.envOf(folder)[GUARDRAIL_ENV.id]).toBe(`<${id}>.GuardrailId`);
      expect(guarded.envOf(folder)[GUARDRAIL_ENV.version]).toBe(`<${versionId}>.Version`);
    }
  });

  it('does not exist without the context: no guardrail, no grant, no variable', () => {
    expect(resourcesOf(plain, 'AWS::Bedrock::Guardrail')).toEqual([]);
    expect(resourcesOf(plain, 'AWS::Bedrock::GuardrailVersion')).toEqual([]);
    expect(JSON.stringify(plain.template)).not.toMatch(/ApplyGuardrail|SELFINSTRUCT_GUARDRAIL/);
  });

  it('may be an existing one: nothing created, that guardrail granted', () => {
    const existing = synthesize({ 'selfinstruct:guardrail': { id: 'abc123xyz', version: '2' } });

    expect(resourcesOf(existing, 'AWS::Bedrock::Guardrail')).toEqual([]);
    expect(
      existing.who('bedrock:ApplyGuardrail', 'arn:aws:bedrock:us-east-1:000000000000:guardrail/abc123xyz'),
    ).toEqual(['filter', 'generate-instances']);
    expect(existing.envOf('filter')[GUARDRAIL_ENV.version]).toBe('2');
  });

  it('fails synthesis when the context is not a valid setting, naming the key and the field', () => {
    expect(() => synthesize({ 'selfinstruct:guardrail': { filters: { VIOLENCE: 'EXTREME' } } })).toThrow(
      /selfinstruct:guardrail: filters.VIOLENCE/,
    );
  });
});

describe('a deployment with its own limits and a cross-region inference profile', () => {
  let limited: ReturnType<typeof synthesize>;
  const profile = 'us.anthropic.claude-3-5-haiku-20241022-v1:0';

  beforeAll(() => {
    limited = synthesize({
      'selfinstruct:model': `bedrock:${profile}`,
      'selfinstruct:allowedModelEndpoints': 'https://api.together.xyz/v1, http://127.0.0.1:8000/v1',
      'selfinstruct:maxModelCallsInFlight': 96,
      'selfinstruct:modelFunctionConcurrency': 12,
    });
  });

  it('lets the model-calling stages invoke the profile, and its model in the regions it routes to', () => {
    const model = 'anthropic.claude-3-5-haiku-20241022-v1:0';
    const invokers = ['generate-instances', 'generate-instructions'];

    expect(
      limited.who(
        'bedrock:InvokeModel',
        `arn:aws:bedrock:us-east-1:000000000000:inference-profile/${profile}`,
      ),
    ).toEqual(invokers);
    expect(
      limited.who('bedrock:InvokeModel', `arn:aws:bedrock:us-west-2::foundation-model/${model}`),
    ).toEqual(invokers);
  });

  it('reserves the operator’s concurrency for the model-calling stages', () => {
    const reserved = Object.fromEntries(
      limited.folders.map((folder) => [folder, limited.propertiesOf(folder).ReservedConcurrentExecutions]),
    );
    expect(reserved).toEqual({
      export: undefined,
      filter: undefined,
      'generate-instances': 12,
      'generate-instructions': 12,
      prepare: undefined,
      'record-failure': undefined,
      'save-iteration': undefined,
    });
  });

  it('hands the allowed endpoints to "Prepare run" and the model-calling stages, the caps to "Prepare run"', () => {
    const env = limited.envOf;
    const endpoints = 'https://api.together.xyz/v1,http://127.0.0.1:8000/v1';

    expect(
      limited.folders.filter((folder) => env(folder).SELFINSTRUCT_ALLOWED_MODEL_ENDPOINTS === endpoints),
    ).toEqual(['filter', 'generate-instances', 'generate-instructions', 'prepare']);
    expect(env('prepare')).toMatchObject({
      SELFINSTRUCT_MAX_MODEL_CALLS_IN_FLIGHT: '96',
      SELFINSTRUCT_MODEL_FUNCTION_CONCURRENCY: '12',
    });
    expect(env('generate-instructions').SELFINSTRUCT_MAX_MODEL_CALLS_IN_FLIGHT).toBeUndefined();
  });

  it('still grants no dangerous action on "*"', () => {
    expect(starStatements(limited)).toEqual([]);
  });

  it('starts its triggered runs with callConcurrency lowered to fit its cap of 96 (10 Map items × 9)', () => {
    const rules = Object.values(limited.template.Resources).filter((r) => r.Type === 'AWS::Events::Rule');
    const inputs = rules.flatMap((r) => {
      const target = (
        (r.Properties?.Targets ?? []) as { Input?: string; InputTransformer?: { InputTemplate: string } }[]
      )[0];
      const text = target?.Input ?? target?.InputTransformer?.InputTemplate;
      return text?.includes('mapConcurrency') ? [text] : [];
    });

    expect(inputs.length).toBeGreaterThan(0);
    for (const text of inputs) expect(text).toMatch(/"mapConcurrency":10,"callConcurrency":9,/);
  });
});

/** Statements of the stage roles that allow `bedrock:InvokeModel`, `secretsmanager:GetSecretValue` or `iam:PassRole` on `*`. */
function starStatements(synthesized: ReturnType<typeof synthesize>): Statement[] {
  return synthesized.folders.flatMap((folder) =>
    synthesized
      .statementsOf(folder)
      .filter(
        (s) =>
          s.Resource.includes('*') &&
          ['bedrock:InvokeModel', 'secretsmanager:GetSecretValue', 'iam:PassRole'].some((action) =>
            s.Action.some((a) => glob(a).test(action)),
          ),
      ),
  );
}

describe('Resource "*"', () => {
  it('is granted no stage for bedrock:InvokeModel, secretsmanager:GetSecretValue or iam:PassRole', () => {
    expect(starStatements(plain)).toEqual([]);
  });

  it('is kept to X-Ray and log delivery, in a policy of their own on each role', () => {
    const star = Object.entries(plain.template.Resources).flatMap(([id, r]) => {
      if (r.Type !== 'AWS::IAM::Policy') return [];
      const document = r.Properties?.PolicyDocument as {
        Statement: { Action: unknown; Resource: unknown }[];
      };
      return document.Statement.filter((s) => [s.Resource].flat().includes('*')).map((s) => ({
        policy: id.replace(/[0-9A-F]{8}$/, ''),
        actions: [s.Action].flat() as string[],
      }));
    });

    expect(star.filter(({ policy }) => !/RoleUnscopedPolicy$/.test(policy))).toEqual([]);
    for (const { actions } of star) for (const action of actions) expect(UNSCOPED_ACTIONS).toContain(action);
    expect(star.filter(({ policy }) => /^Workflow\w+RoleUnscopedPolicy$/.test(policy))).toHaveLength(
      Object.keys(STAGES).length + 2, // each function's X-Ray; the state machine's X-Ray and log delivery
    );
  });

  it('comes with no AWS managed policy on a stage role: each writes its own log group only', () => {
    for (const folder of plain.folders) {
      const role = plain.template.Resources[plain.roleOf(folder).slice(1, -1)];
      expect(role?.Type).toBe('AWS::IAM::Role');
      expect(role?.Properties?.ManagedPolicyArns, folder).toBeUndefined();
      const logs = plain.statementsOf(folder).filter((s) => s.Action.some((a) => a.startsWith('logs:')));
      expect(logs, folder).toHaveLength(1);
      const { LogGroup } = plain.propertiesOf(folder).LoggingConfig as { LogGroup: string };
      expect(logs[0]?.Resource).toEqual([`${LogGroup}.Arn`]);
    }
  });
});

describe('cdk-nag', () => {
  it('fails synthesis when a stage role gets bedrock:InvokeModel, secretsmanager:GetSecretValue or iam:PassRole on "*"', () => {
    const { app, stack } = buildApp(new App({ context: { 'aws:cdk:bundling-stacks': [] } }));
    const grant = (folder: keyof typeof STAGES, action: string) =>
      stack.workflow.functions[folder].addToRolePolicy(
        new iam.PolicyStatement({ actions: [action], resources: ['*'] }),
      );
    grant('generateInstructions', 'bedrock:InvokeModel');
    grant('generateInstances', 'secretsmanager:GetSecretValue');
    grant('recordFailure', 'iam:PassRole');

    let report = '';
    try {
      app.synth();
    } catch (error) {
      report = (error as Error).message;
    }

    for (const role of ['GenerateInstructionsRole', 'GenerateInstancesRole', 'RecordFailureRole']) {
      expect(report).toMatch(
        new RegExp(`Workflow/${role}/DefaultPolicy/Resource .*\\n.*AwsSolutions-IAM5\\[Resource::\\*\\]`),
      );
    }
  });

  it('fails synthesis on a wildcard grant nobody acknowledged', () => {
    const { app, stack } = buildApp(new App({ context: { 'aws:cdk:bundling-stacks': [] } }));
    stack.bucket.grantRead(stack.workflow.functions.recordFailure);

    expect(() => app.synth()).toThrow(/RecordFailureRole\/DefaultPolicy[\s\S]*AwsSolutions-IAM5/);
  });
});

describe('the operator limits', () => {
  it('come from the context, else from their environment variables (a local npm start), else the defaults', () => {
    const env = LIMIT_SETTINGS.allowedModelEndpoints.env;
    const saved = process.env[env];
    try {
      process.env[env] = 'https://api.groq.com/openai/v1';
      expect(propsFromContext(new App()).allowedModelEndpoints).toEqual(['https://api.groq.com/openai/v1']);
      const context = { 'selfinstruct:allowedModelEndpoints': ['https://api.together.xyz/v1'] };
      expect(propsFromContext(new App({ context })).allowedModelEndpoints).toEqual([
        'https://api.together.xyz/v1',
      ]);
      delete process.env[env];
      expect(propsFromContext(new App()).allowedModelEndpoints).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env[env];
      else process.env[env] = saved;
    }
  });
});

describe('synthesis refuses', () => {
  const build = (context: Record<string, unknown>) => () =>
    buildApp(new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } }));

  it.each([
    ['http://gpu-box:8000/v1', /plain http/],
    ['https://me:hunter2@api.together.xyz/v1', /carries credentials/],
    ['ftp://example.com', /not an http\(s\) URL/],
  ])('an allowed endpoint %s', (url, why) => {
    const synth = build({ 'selfinstruct:allowedModelEndpoints': [url] });

    expect(synth).toThrow(why);
    expect(synth).toThrow(/selfinstruct:allowedModelEndpoints/);
    expect(synth).not.toThrow(/hunter2/);
  });

  it('triggered runs that every run would refuse: a model outside the endpoints, a Map above the caps', () => {
    expect(build({ 'selfinstruct:model': 'openai-compatible:m@https://api.groq.com/openai/v1' })).toThrow(
      /triggered runs.*Model endpoint https:\/\/api\.groq\.com\/openai\/v1 is not allowed/,
    );
    expect(build({ 'selfinstruct:mapConcurrency': INLINE_MAP_MAX_CONCURRENCY + 1 })).toThrow(
      /at most 40 items at once/,
    );
    expect(build({ 'selfinstruct:mapConcurrency': 20, 'selfinstruct:modelFunctionConcurrency': 10 })).toThrow(
      /mapConcurrency 20 is above the 10 .*selfinstruct:modelFunctionConcurrency/,
    );
  });
});
