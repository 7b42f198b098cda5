/**
 * The deployable stack: an encrypted, private, versioned bucket; the DynamoDB table; the workflow; and
 * the triggers besides the console: an upload of a seed file under `seeds/` starts a run on that seed
 * set, an upload of a document under `documents/<pool>/` starts an instruction backtranslation run on its
 * folder, and a nightly schedule grows a pool by a configured number of tasks.
 */
import * as path from 'node:path';
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { parseRunInput } from '../functions/prepare/core.ts';
import { ConfigurationError } from '../functions/shared/errors.ts';
import { DEFAULT_SEED_KEY, DOCUMENTS_PREFIX, SEED_UPLOAD_PREFIX } from '../functions/shared/keys.ts';
import {
  checkOperatorLimits,
  DEFAULT_OPERATOR_LIMITS,
  endpointProblem,
  LIMIT_SETTINGS,
  type OperatorLimits,
} from '../functions/shared/limits.ts';
import { defaultEmbeddingModel } from '../functions/shared/models/embedding-ids.ts';
import { type DeployedGuardrail, deployGuardrail, type GuardrailSetting } from './guardrail.ts';
import { PROJECT_ROOT } from './project.ts';
import { SelfInstructWorkflow } from './workflow.ts';

/** What a deployment can be configured with (CDK context keys `selfinstruct:<name>`, see README). */
export interface SelfInstructStackProps extends StackProps {
  /**
   * Model of the nightly run, and the Bedrock model the functions may call: `offline` or `bedrock:<id>`.
   * @default 'offline'
   */
  readonly model?: string;
  /**
   * Judge of the triggered runs (run input `judgeModel`), and a Bedrock model "Generate instances" may
   * call besides `model`: `none`, `offline` or `bedrock:<id>`.
   * @default - the run's model
   */
  readonly judgeModel?: string;
  /**
   * Teacher of the triggered runs' explained responses (run input `teacherModel`), and a Bedrock model
   * "Generate instances" may call besides `model`: `offline` or `bedrock:<id>`. Setting it does not make
   * the triggered runs explained (their `responseStyle` stays `direct`); it lets runs that ask for it call it.
   * @default - the run's model
   */
  readonly teacherModel?: string;
  /** @default 'default' */
  readonly profile?: 'self-instruct' | 'alpaca' | 'default';
  /**
   * Tasks the nightly run adds to its pool.
   * @default 200
   */
  readonly nightlyGrowBy?: number;
  /**
   * Pool the nightly run grows.
   * @default 'default'
   */
  readonly nightlyPool?: string;
  /**
   * EventBridge schedule expression of the nightly run; an empty string disables it.
   * @default 'cron(0 3 * * ? *)' (03:00 UTC)
   */
  readonly nightlySchedule?: string;
  /** @default 10 */
  readonly mapConcurrency?: number;
  /** @default 0.7 */
  readonly rougeThreshold?: number;
  /**
   * Name of an existing Secrets Manager secret with the API key of an OpenAI-compatible provider.
   * @default - the stack creates an empty secret `SelfInstruct/ModelApiKey` to put the key in
   */
  readonly apiKeySecretName?: string;
  /**
   * Keep the bucket and table when the stack is deleted.
   * @default true
   */
  readonly retainData?: boolean;
  /**
   * Base URLs (or origins) the model API key may be sent to: `https`, or `http` to a loopback host.
   * @default DEFAULT_OPERATOR_LIMITS.allowedModelEndpoints (OpenAI's API and Ollama's local address)
   */
  readonly allowedModelEndpoints?: string[];
  /**
   * Upper bound on a run's `mapConcurrency × callConcurrency`.
   * @default DEFAULT_OPERATOR_LIMITS.maxModelCallsInFlight (320)
   */
  readonly maxModelCallsInFlight?: number;
  /**
   * Reserved concurrency of each model-calling function; a run's `mapConcurrency` may not exceed it.
   * @default - none reserved
   */
  readonly modelFunctionConcurrency?: number;
  /**
   * The Bedrock guardrail of the safety screen `bedrock-guardrail` (context `selfinstruct:guardrail`, see
   * `infra/guardrail.ts`): policies for a guardrail the stack creates, or an existing one's id and version.
   * @default - none: runs may not use `bedrock-guardrail`
   */
  readonly guardrail?: GuardrailSetting;
}

/**
 * The operator's limits from the props, checked: a bad value fails synthesis, naming its context key,
 * rather than every run.
 */
export function operatorLimits(props: SelfInstructStackProps): OperatorLimits {
  const { allowedModelEndpoints, maxModelCallsInFlight, modelFunctionConcurrency } = LIMIT_SETTINGS;
  const endpoints = props.allowedModelEndpoints ?? DEFAULT_OPERATOR_LIMITS.allowedModelEndpoints;
  for (const url of endpoints) {
    const problem = endpointProblem(url);
    if (problem) throw new ConfigurationError(`${allowedModelEndpoints.context}: ${problem}`);
  }
  const count = (value: number | undefined, context: string) => {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
      throw new ConfigurationError(`${context} must be a positive integer`);
    }
    return value;
  };
  return {
    allowedModelEndpoints: endpoints,
    maxModelCallsInFlight:
      count(props.maxModelCallsInFlight, maxModelCallsInFlight.context) ??
      DEFAULT_OPERATOR_LIMITS.maxModelCallsInFlight,
    modelFunctionConcurrency: count(props.modelFunctionConcurrency, modelFunctionConcurrency.context),
  };
}

export class SelfInstructStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly table: dynamodb.TableV2;
  readonly workflow: SelfInstructWorkflow;
  readonly apiKeySecret: secretsmanager.ISecret;
  /** Bedrock model ids the model-calling stages may invoke. */
  readonly bedrockModelIds: string[];
  /** Bedrock embedding model ids the near-duplicate gate may invoke (the default of a Bedrock run's). */
  readonly bedrockEmbeddingModelIds: string[];
  /** Bedrock model ids the judge may invoke (`selfinstruct:judgeModel`, when another Bedrock model). */
  readonly bedrockJudgeModelIds: string[];
  /** Bedrock model ids the teacher may invoke (`selfinstruct:teacherModel`, when another Bedrock model). */
  readonly bedrockTeacherModelIds: string[];
  /** The guardrail the screening stages may apply, when the deployment has one. */
  readonly guardrail?: DeployedGuardrail;

  constructor(scope: Construct, id: string, props: SelfInstructStackProps = {}) {
    super(scope, id, props);
    const removalPolicy = props.retainData === false ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const model = props.model ?? 'offline';
    const limits = operatorLimits(props);
    this.bedrockModelIds = model.startsWith('bedrock:') ? [model.slice('bedrock:'.length)] : [];
    const judgeModel = props.judgeModel;
    this.bedrockJudgeModelIds =
      judgeModel?.startsWith('bedrock:') && judgeModel !== model ? [judgeModel.slice('bedrock:'.length)] : [];
    const teacherModel = props.teacherModel;
    this.bedrockTeacherModelIds =
      teacherModel?.startsWith('bedrock:') && teacherModel !== model
        ? [teacherModel.slice('bedrock:'.length)]
        : [];
    const embeddingModel = defaultEmbeddingModel(model);
    this.bedrockEmbeddingModelIds = embeddingModel.startsWith('bedrock:')
      ? [embeddingModel.slice('bedrock:'.length)]
      : [];

    this.bucket = new s3.Bucket(this, 'DataBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      eventBridgeEnabled: true,
      removalPolicy,
      autoDeleteObjects: props.retainData === false,
      lifecycleRules: [{ noncurrentVersionExpiration: Duration.days(30) }],
    });

    this.table = new dynamodb.TableV2(this, 'PoolTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryptionV2.awsManagedKey(),
      removalPolicy,
    });

    // The key of an external model provider lives here, never in the code, the environment or the logs.
    this.apiKeySecret = props.apiKeySecretName
      ? secretsmanager.Secret.fromSecretNameV2(this, 'ModelApiKey', props.apiKeySecretName)
      : new secretsmanager.Secret(this, 'ModelApiKey', {
          secretName: 'SelfInstruct/ModelApiKey',
          description: 'API key of the OpenAI-compatible model provider (set it after deploying)',
        });

    this.guardrail = props.guardrail === undefined ? undefined : deployGuardrail(this, props.guardrail);

    this.workflow = new SelfInstructWorkflow(this, 'Workflow', {
      bucket: this.bucket,
      table: this.table,
      apiKeySecret: this.apiKeySecret,
      bedrockModelIds: this.bedrockModelIds,
      bedrockEmbeddingModelIds: this.bedrockEmbeddingModelIds,
      bedrockJudgeModelIds: this.bedrockJudgeModelIds,
      bedrockTeacherModelIds: this.bedrockTeacherModelIds,
      limits,
      guardrail: this.guardrail,
    });
    const { stateMachine } = this.workflow;

    // The bundled seed set, where runs find it when their input names none.
    new s3deploy.BucketDeployment(this, 'DefaultSeeds', {
      sources: [
        s3deploy.Source.asset(path.join(PROJECT_ROOT, 'seeds'), { exclude: ['*', '!seed_tasks.jsonl'] }),
      ],
      destinationBucket: this.bucket,
      destinationKeyPrefix: path.posix.dirname(DEFAULT_SEED_KEY),
      prune: false,
      retainOnDelete: false,
    });

    const mapConcurrency = props.mapConcurrency ?? 10;
    // The run input's default callConcurrency, lowered to fit a deployment whose cap on calls in flight
    // is below mapConcurrency × it (e.g. 96: 10 × 9), so that its triggered runs are not refused.
    const { callConcurrency } = parseRunInput({}, 'triggered');
    const fitting = Math.max(
      1,
      Math.min(callConcurrency, Math.floor(limits.maxModelCallsInFlight / mapConcurrency)),
    );
    const runDefaults = {
      profile: props.profile ?? 'default',
      model,
      mapConcurrency,
      ...(fitting < callConcurrency ? { callConcurrency: fitting } : {}),
      rougeThreshold: props.rougeThreshold ?? 0.7,
      ...(judgeModel === undefined ? {} : { judgeModel }),
    };
    // The triggered runs would all fail in "Prepare run": fail here instead.
    try {
      checkOperatorLimits(parseRunInput(runDefaults, 'triggered'), limits);
    } catch (error) {
      throw new ConfigurationError(
        `the triggered runs' input (selfinstruct:model, selfinstruct:mapConcurrency, …) is not valid: ${(error as Error).message}`,
      );
    }

    // An upload under a prefix starts a run whose input names the uploaded key.
    const uploadStartsRun = (id: string, description: string, prefix: string, input: object) =>
      new events.Rule(this, id, {
        description,
        eventPattern: {
          source: ['aws.s3'],
          detailType: ['Object Created'],
          detail: { bucket: { name: [this.bucket.bucketName] }, object: { key: [{ prefix }] } },
        },
        targets: [
          new targets.SfnStateMachine(stateMachine, {
            input: events.RuleTargetInput.fromObject({ ...runDefaults, ...input, trigger: 'upload' }),
          }),
        ],
      });
    const uploadedKey = events.EventField.fromPath('$.detail.object.key');
    uploadStartsRun(
      'SeedUploadStartsRun',
      `Starts a Self-Instruct run when a seed file is uploaded under ${SEED_UPLOAD_PREFIX}`,
      SEED_UPLOAD_PREFIX,
      { seedKey: uploadedKey },
    );
    // Method backtranslate: a document uploaded under documents/<pool>/ starts a run on that pool, which
    // splits every document of the folder into passages ("Prepare run").
    uploadStartsRun(
      'DocumentUploadStartsRun',
      `Starts an instruction backtranslation run when a document is uploaded under ${DOCUMENTS_PREFIX}`,
      DOCUMENTS_PREFIX,
      { method: 'backtranslate', documents: uploadedKey },
    );

    const schedule = props.nightlySchedule ?? 'cron(0 3 * * ? *)';
    if (schedule !== '') {
      new events.Rule(this, 'NightlyRun', {
        description: 'Grows the pool every night',
        schedule: events.Schedule.expression(schedule),
        targets: [
          new targets.SfnStateMachine(stateMachine, {
            input: events.RuleTargetInput.fromObject({
              ...runDefaults,
              pool: props.nightlyPool ?? 'default',
              target: props.nightlyGrowBy ?? 200,
              maxIterations: 20,
              trigger: 'schedule',
            }),
          }),
        ],
      });
    }

    new CfnOutput(this, 'StateMachineArn', { value: stateMachine.stateMachineArn });
    new CfnOutput(this, 'BucketName', { value: this.bucket.bucketName });
    new CfnOutput(this, 'TableName', { value: this.table.tableName });
    new CfnOutput(this, 'ModelApiKeySecretArn', { value: this.apiKeySecret.secretArn });
  }
}
