/**
 * The Self-Instruct workflow: one Lambda per stage and the Standard Step Functions state machine that
 * orchestrates them (JSONPath, Lambda tasks only, so the same definition also runs locally).
 *
 *   Start run → Prepare run → Plan instructions → Generate instructions (Distributed Map over batches
 *   of calls) → Collect instructions → Filter and deduplicate → Generate instances (Distributed Map over
 *   chunks of ids; both Maps through `per-item-map.ts`) → Save iteration
 *   → Enough instructions? ─ no → Plan instructions
 *                          ├ no, but this execution's history is full → Continue in a new execution
 *                          │   (the run's next execution, `<run>-2` …, goes on from "Prepare run")
 *                          └ yes → Export dataset → Done
 *   A stage's error (after its retries) fails the execution at that stage, so a redrive resumes there;
 *   an EventBridge rule on the execution's end runs Record failure (status, readable cause, lease back).
 */
import * as path from 'node:path';
import { ArnFormat, Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { BATCH_ROLE_ENV } from '../functions/shared/batch/index.ts';
import { ConfigurationError } from '../functions/shared/errors.ts';
import { BATCH_INPUT_FOLDER, BATCH_OUTPUT_FOLDER, RUNS_PREFIX } from '../functions/shared/keys.ts';
import { DEFAULT_OPERATOR_LIMITS, LIMIT_SETTINGS, type OperatorLimits } from '../functions/shared/limits.ts';
import { GUARDRAIL_ENV } from '../functions/shared/safety.ts';
import {
  BATCH_JOB_STATES,
  CONTROL_STATES,
  INSTRUCTION_BATCH_STATES,
  STAGES,
  type StageKey,
  type StageSpec,
} from '../functions/stages.ts';
import { inferenceProfileModel } from './bedrock-ids.ts';
import type { DeployedGuardrail } from './guardrail.ts';
import { perItemMap } from './per-item-map.ts';
import { ENTRY_METADATA, PROJECT_ROOT } from './project.ts';
import { RoleWithUnscopedPolicy } from './roles.ts';
import { type InvokeStage, shardedGate } from './sharded-gate.ts';

/** Errors worth retrying with backoff: Lambda's own transient faults and the model adapters' named ones. */
export const RETRYABLE_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.Unknown',
  'Sandbox.Timedout',
  'Runtime.ExitError',
  'Runtime.OutOfMemory',
  'ModelThrottled',
  'ModelUnavailable',
  'States.Timeout',
];

export interface SelfInstructWorkflowProps {
  /** Bucket for seeds, pool snapshots and index, raw model replies and exports. */
  readonly bucket: s3.IBucket;
  /** Table with one item per pool instruction and per run. */
  readonly table: dynamodb.ITableV2;
  /**
   * Bedrock model ids (or inference profile ids) the functions may invoke, e.g. `amazon.nova-micro-v1:0`.
   * @default - none: only the offline model can be used
   */
  readonly bedrockModelIds?: string[];
  /**
   * Bedrock embedding model ids the near-duplicate gate may invoke, e.g. `amazon.titan-embed-text-v2:0`.
   * @default - none: the offline embedder and OpenAI-compatible servers only
   */
  readonly bedrockEmbeddingModelIds?: string[];
  /**
   * Bedrock model ids the judge may invoke besides `bedrockModelIds` (a judge of another model).
   * @default - none: the judge is the run's model, offline or an OpenAI-compatible server
   */
  readonly bedrockJudgeModelIds?: string[];
  /**
   * Bedrock model ids the teacher of explained responses may invoke besides `bedrockModelIds`.
   * @default - none: the teacher is the run's model, offline or an OpenAI-compatible server
   */
  readonly bedrockTeacherModelIds?: string[];
  /**
   * Secret holding the API key of an OpenAI-compatible provider; readable only by the stages that
   * call the model, which find it through `MODEL_API_KEY_SECRET_ARN`.
   * @default - none: only Bedrock and the offline model can be used
   */
  readonly apiKeySecret?: secretsmanager.ISecret;
  /**
   * Log retention of the functions and the state machine.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What runs may do: the model endpoints the API key may go to, the cap on model calls at once, the
   * reserved concurrency of the model-calling functions (see `functions/shared/limits.ts`).
   * @default DEFAULT_OPERATOR_LIMITS
   */
  readonly limits?: OperatorLimits;
  /**
   * The Bedrock guardrail of the safety screen `bedrock-guardrail` (see `infra/guardrail.ts`): the
   * screening stages may apply it, and they and "Prepare run" (which refuses the screen without it) get
   * its id and version.
   * @default - none: the screen `bedrock-guardrail` is refused
   */
  readonly guardrail?: DeployedGuardrail;
}

/**
 * The environment that carries the operator's limits to a function (read by `operatorLimitsFromEnv`):
 * the allowed endpoints to the stages that call the model and to "Prepare run", which also checks runs
 * against the caps.
 */
function limitsEnvironment(limits: OperatorLimits, spec: StageSpec): Record<string, string> {
  if (!spec.callsModel && !spec.callsEmbeddingModel && spec !== STAGES.prepare) return {};
  const env: Record<string, string> = {
    [LIMIT_SETTINGS.allowedModelEndpoints.env]: limits.allowedModelEndpoints.join(','),
  };
  if (spec === STAGES.prepare) {
    env[LIMIT_SETTINGS.maxModelCallsInFlight.env] = String(limits.maxModelCallsInFlight);
    if (limits.modelFunctionConcurrency !== undefined) {
      env[LIMIT_SETTINGS.modelFunctionConcurrency.env] = String(limits.modelFunctionConcurrency);
    }
  }
  return env;
}

/**
 * What invoking a Bedrock model id needs: the foundation model in this region, or, for a cross-region
 * inference profile, the profile in this account and its foundation model in every region it routes to.
 */
export function bedrockResources(stack: Stack, modelId: string): string[] {
  const model = inferenceProfileModel(modelId);
  if (!model) {
    return [
      stack.formatArn({
        service: 'bedrock',
        account: '',
        resource: 'foundation-model',
        resourceName: modelId,
      }),
    ];
  }
  return [
    stack.formatArn({ service: 'bedrock', resource: 'inference-profile', resourceName: modelId }),
    stack.formatArn({
      service: 'bedrock',
      account: '',
      region: '*',
      resource: 'foundation-model',
      resourceName: model,
    }),
  ];
}

/**
 * Grants a stage function what its registry entry says it touches, and nothing else: reads and puts
 * under its S3 prefixes, its access to the table, and, for a stage that calls the model (or the
 * embedding model), the API key secret and the deployed Bedrock models (or embedding models).
 */
function grantStageAccess(fn: lambda.Function, spec: StageSpec, props: SelfInstructWorkflowProps): void {
  // Listing is granted with reading (s3:List* on the bucket): a prefix a stage lists, it reads.
  const unread = spec.s3.list.filter((prefix) => !spec.s3.read.includes(prefix));
  if (unread.length > 0) {
    throw new ConfigurationError(`stage "${spec.state}" lists ${unread.join(', ')} but does not read it`);
  }
  for (const prefix of spec.s3.read) props.bucket.grantRead(fn, `${prefix}*`);
  // Objects by key only: grantRead would add listing the bucket (s3:List*), which these stages must not.
  for (const prefix of spec.s3.get) {
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['s3:GetObject'],
      resourceArns: [props.bucket.arnForObjects(`${prefix}*`)],
    });
  }
  for (const prefix of spec.s3.write) props.bucket.grantPut(fn, `${prefix}*`);
  if (spec.dynamodb === 'readWrite') props.table.grantReadWriteData(fn);
  if (spec.dynamodb === 'read') props.table.grantReadData(fn);
  const { guardrail } = props;
  if (guardrail && (spec.screensSafety || spec === STAGES.prepare)) {
    fn.addEnvironment(GUARDRAIL_ENV.id, guardrail.id);
    fn.addEnvironment(GUARDRAIL_ENV.version, guardrail.version);
  }
  if (guardrail && spec.screensSafety) {
    // No grant helper for a guardrail either: the one action, on that guardrail's ARN alone (its
    // versions share it).
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['bedrock:ApplyGuardrail'],
      resourceArns: [guardrail.arn],
    });
  }
  if (!spec.callsModel && !spec.callsEmbeddingModel) return;
  if (props.apiKeySecret) {
    props.apiKeySecret.grantRead(fn);
    fn.addEnvironment('MODEL_API_KEY_SECRET_ARN', props.apiKeySecret.secretArn);
  }
  const modelIds = [
    ...(spec.callsModel ? (props.bedrockModelIds ?? []) : []),
    ...(spec.callsJudgeModel ? (props.bedrockJudgeModelIds ?? []) : []),
    ...(spec.callsTeacherModel ? (props.bedrockTeacherModelIds ?? []) : []),
    ...(spec.callsEmbeddingModel ? (props.bedrockEmbeddingModelIds ?? []) : []),
  ];
  if (modelIds.length > 0) {
    // aws-cdk-lib has no grant for a Bedrock model: the grant primitive, on exactly the model's ARNs.
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['bedrock:InvokeModel'],
      resourceArns: modelIds.flatMap((modelId) => bedrockResources(Stack.of(fn), modelId)),
    });
  }
}

/**
 * The service role Bedrock assumes to run the batch jobs of this stack (batch mode): it reads the
 * iterations' batch input folders and writes their output folders, nothing else, and only a batch
 * inference job of this account and region may assume it (the confused-deputy conditions AWS
 * documents for batch inference service roles).
 */
function batchServiceRole(scope: Construct, bucket: s3.IBucket): iam.Role {
  const stack = Stack.of(scope);
  const role = new iam.Role(scope, 'BatchInferenceRole', {
    description:
      'Assumed by Amazon Bedrock to run the batch inference jobs of Self-Instruct runs (batch mode)',
    assumedBy: new iam.ServicePrincipal('bedrock.amazonaws.com').withConditions({
      StringEquals: { 'aws:SourceAccount': stack.account },
      ArnEquals: {
        'aws:SourceArn': stack.formatArn({
          service: 'bedrock',
          resource: 'model-invocation-job',
          resourceName: '*',
        }),
      },
    }),
  });
  bucket.grantRead(role, `${RUNS_PREFIX}*/${BATCH_INPUT_FOLDER}*`);
  bucket.grantPut(role, `${RUNS_PREFIX}*/${BATCH_OUTPUT_FOLDER}*`);
  return role;
}

/**
 * A stage that drives batch jobs (`StageSpec.batchJobs`): the batch role's ARN in its environment;
 * `bedrock:CreateModelInvocationJob` on the deployed models and on this account's jobs, `iam:PassRole`
 * on the batch role, to Bedrock only; `bedrock:GetModelInvocationJob` on this account's jobs.
 */
function grantBatchAccess(
  fn: lambda.Function,
  spec: StageSpec,
  role: iam.IRole,
  props: SelfInstructWorkflowProps,
): void {
  if (!spec.batchJobs) return;
  const stack = Stack.of(fn);
  const models = (props.bedrockModelIds ?? []).flatMap((modelId) => bedrockResources(stack, modelId));
  // Without a deployed Bedrock model there is nothing to batch: no grant (the submit is refused).
  if (models.length === 0) return;
  fn.addEnvironment(BATCH_ROLE_ENV, role.roleArn);
  const jobs = stack.formatArn({ service: 'bedrock', resource: 'model-invocation-job', resourceName: '*' });
  iam.Grant.addToPrincipal({
    grantee: fn,
    actions: ['bedrock:CreateModelInvocationJob'],
    resourceArns: [...models, jobs],
  });
  iam.Grant.addToPrincipal({ grantee: fn, actions: ['bedrock:GetModelInvocationJob'], resourceArns: [jobs] });
  iam.Grant.addToPrincipal({
    grantee: fn,
    actions: ['iam:PassRole'],
    resourceArns: [role.roleArn],
    conditions: { StringEquals: { 'iam:PassedToService': 'bedrock.amazonaws.com' } },
  });
}

/** The stage functions and the state machine of a Self-Instruct pipeline. */
export class SelfInstructWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly functions: Record<StageKey, nodejs.NodejsFunction>;
  /** Each function's role: its grants in the default policy, its X-Ray statement apart (`roles.ts`). */
  readonly roles: Record<StageKey, RoleWithUnscopedPolicy>;
  /** The state machine's role: Lambda invocations, and its X-Ray and log-delivery statements apart. */
  readonly stateMachineRole: RoleWithUnscopedPolicy;
  /** The role Bedrock assumes to run batch jobs (batch mode). */
  readonly batchRole: iam.Role;

  constructor(scope: Construct, id: string, props: SelfInstructWorkflowProps) {
    super(scope, id);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const limits = props.limits ?? DEFAULT_OPERATOR_LIMITS;

    this.batchRole = batchServiceRole(this, props.bucket);
    const roles: Partial<Record<StageKey, RoleWithUnscopedPolicy>> = {};
    const makeFunction = (key: StageKey, spec: StageSpec) => {
      const entry = path.join(PROJECT_ROOT, 'functions', spec.folder, 'handler.ts');
      const logGroup = new logs.LogGroup(this, `${spec.id}Logs`, {
        retention,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      // Writes its own log group, instead of AWSLambdaBasicExecutionRole's logs:PutLogEvents on any group.
      const role = new RoleWithUnscopedPolicy(this, `${spec.id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Stage "${spec.state}"`,
      });
      logGroup.grantWrite(role);
      roles[key] = role;
      const fn = new nodejs.NodejsFunction(this, spec.id, {
        entry,
        handler: 'handler',
        description: spec.description,
        role,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        timeout: Duration.seconds(spec.timeoutSeconds),
        memorySize: spec.memoryMb,
        ephemeralStorageSize:
          spec.ephemeralStorageMb === undefined ? undefined : Size.mebibytes(spec.ephemeralStorageMb),
        reservedConcurrentExecutions: spec.callsModel ? limits.modelFunctionConcurrency : undefined,
        tracing: lambda.Tracing.ACTIVE,
        loggingFormat: lambda.LoggingFormat.JSON,
        logGroup,
        projectRoot: PROJECT_ROOT,
        depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
        environment: {
          BUCKET_NAME: props.bucket.bucketName,
          TABLE_NAME: props.table.tableName,
          POWERTOOLS_SERVICE_NAME: 'selfinstruct',
          POWERTOOLS_LOG_LEVEL: 'INFO',
          NODE_OPTIONS: '--enable-source-maps',
          ...limitsEnvironment(limits, spec),
        },
        bundling: {
          format: nodejs.OutputFormat.ESM,
          target: 'node22',
          minify: true,
          sourceMap: true,
          mainFields: ['module', 'main'],
          // The AWS SDK goes into the bundle too (CDK's default leaves `@aws-sdk/*` to the Lambda runtime's
          // copy): the functions then run the SDK versions of the lockfile, the ones the tests ran, and the
          // libraries the runtime need not carry (lib-storage, lib-dynamodb) are there.
          externalModules: [],
          // ESM bundles of CommonJS dependencies still call require().
          banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
          commandHooks: {
            beforeBundling: () => [],
            beforeInstall: () => [],
            // Prompt templates are read at run time from ./prompts next to the bundle.
            afterBundling: (inputDir: string, outputDir: string) => [
              `if [ -d "${inputDir}/functions/${spec.folder}/prompts" ]; then cp -R "${inputDir}/functions/${spec.folder}/prompts" "${outputDir}/prompts"; fi`,
            ],
          },
        },
      });
      (fn.node.defaultChild as lambda.CfnFunction).addMetadata(
        ENTRY_METADATA,
        path.relative(PROJECT_ROOT, entry).split(path.sep).join('/'),
      );
      grantStageAccess(fn, spec, props);
      grantBatchAccess(fn, spec, this.batchRole, props);
      return fn;
    };

    this.functions = Object.fromEntries(
      Object.entries(STAGES).map(([key, spec]) => [key, makeFunction(key as StageKey, spec)]),
    ) as Record<StageKey, nodejs.NodejsFunction>;
    this.roles = roles as Record<StageKey, RoleWithUnscopedPolicy>;
    const f = this.functions;

    /** The Task state of a stage: named, timed and wired from the registry. */
    const invoke: InvokeStage = (stage, options = {}, name = STAGES[stage].state) => {
      const task = new tasks.LambdaInvoke(this, name, {
        lambdaFunction: f[stage],
        payloadResponseOnly: false,
        retryOnServiceExceptions: false,
        resultSelector: { 'Payload.$': '$.Payload' },
        taskTimeout: sfn.Timeout.duration(Duration.seconds(STAGES[stage].timeoutSeconds)),
        ...options,
      });
      task.addRetry({
        errors: RETRYABLE_ERRORS,
        interval: Duration.seconds(2),
        backoffRate: 2,
        maxAttempts: 6,
        maxDelay: Duration.seconds(60),
        jitterStrategy: sfn.JitterType.FULL,
      });
      return task;
    };

    // The run state that goes round the loop, read from the state and from a stage's reply, and the
    // execution the stage runs in (a redriven stage asks Step Functions about it: see `holdPool`).
    const runState = {
      'runId.$': '$.runId',
      'config.$': '$.config',
      'progress.$': '$.progress',
      'execution.$': '$$.Execution.Id',
    };
    const runStateFromPayload = {
      'runId.$': '$.Payload.runId',
      'config.$': '$.Payload.config',
      'progress.$': '$.Payload.progress',
    };

    const start = new sfn.Pass(this, CONTROL_STATES.start, {
      parameters: { 'runId.$': '$$.Execution.Name', 'input.$': '$' },
    });
    const prepare = invoke('prepare', {
      resultSelector: runStateFromPayload,
    });
    // "Generate instructions" as a Map of batches (generate-instructions/batches.ts): the plan's items
    // are call ranges, each batch stores its candidates under keys of its own, the collection joins them.
    const planInstructions = invoke(
      'generateInstructions',
      {
        payload: sfn.TaskInput.fromObject({ ...runState, instructions: { phase: 'plan' } }),
        resultSelector: { 'prompts.$': '$.Payload.prompts', 'batches.$': '$.Payload.batches' },
        resultPath: '$.instructionPlan',
      },
      INSTRUCTION_BATCH_STATES.plan,
    );
    // A Distributed Map like the instances' (per-item-map.ts): each batch is a child execution, so the
    // parent's history grows by the Map Run's events, not by the batches'.
    const instructionsMap = perItemMap(this, STAGES.generateInstructions.mapState, {
      itemsPath: '$.instructionPlan.batches',
      // Batches at once: the run's Map concurrency, so that mapConcurrency × callConcurrency still
      // bounds the model calls in flight (the operator's maxModelCallsInFlight checks that product).
      maxConcurrencyPath: '$.config.mapConcurrency',
      itemSelector: {
        ...runState,
        instructions: {
          phase: 'batch',
          'prompts.$': '$.instructionPlan.prompts',
          'batch.$': '$$.Map.Item.Value',
        },
      },
      // The batches' results are in S3 (their `result` keys): the collection reads them there.
      resultPath: sfn.JsonPath.DISCARD,
    });
    instructionsMap.itemProcessor(
      invoke('generateInstructions', { resultSelector: { 'batch.$': '$.Payload.batch' } }),
    );
    const collectInstructions = invoke(
      'generateInstructions',
      {
        payload: sfn.TaskInput.fromObject({
          ...runState,
          instructions: { phase: 'collect', 'batches.$': '$.instructionPlan.batches' },
        }),
        resultSelector: {
          'candidatesKey.$': '$.Payload.candidatesKey',
          'prompts.$': '$.Payload.prompts',
          'candidates.$': '$.Payload.candidates',
          'malformed.$': '$.Payload.malformed',
          'droppedByTruncation.$': '$.Payload.droppedByTruncation',
          'lost.$': '$.Payload.lost',
          'usage.$': '$.Payload.usage',
        },
        resultPath: '$.generated',
      },
      INSTRUCTION_BATCH_STATES.collect,
    );
    const generate = planInstructions.next(instructionsMap).next(collectInstructions);
    const filterPayload = { ...runState, 'candidatesKey.$': '$.generated.candidatesKey' };
    const filter = invoke('filter', {
      payload: sfn.TaskInput.fromObject(filterPayload),
      resultSelector: { 'chunks.$': '$.Payload.chunks', 'counts.$': '$.Payload.counts' },
      resultPath: '$.gated',
    });
    const instancesMap = perItemMap(this, STAGES.generateInstances.mapState, {
      itemsPath: '$.gated.chunks',
      maxConcurrencyPath: '$.config.mapConcurrency',
      itemSelector: {
        ...runState,
        'chunk.$': '$$.Map.Item.Value',
      },
      resultPath: '$.instances',
    });
    instancesMap.itemProcessor(
      invoke('generateInstances', {
        resultSelector: {
          'chunk.$': '$.Payload.chunk',
          'counts.$': '$.Payload.counts',
          'usage.$': '$.Payload.usage',
        },
      }),
    );
    const save = invoke('saveIteration', {
      payload: sfn.TaskInput.fromObject({
        ...runState,
        'generated.$': '$.generated',
        'gated.$': '$.gated',
        'instances.$': '$.instances',
        // The execution's 7-day timeout counts from here (see `nextIterationFits`).
        'executionStartTime.$': '$$.Execution.StartTime',
      }),
      // Replaces the whole state: only runId, config and progress go round the loop.
      resultSelector: runStateFromPayload,
    });
    const exportDataset = invoke('exportDataset', {
      payload: sfn.TaskInput.fromObject(runState),
      resultSelector: { 'summary.$': '$.Payload' },
      resultPath: '$.export',
    });
    const done = new sfn.Succeed(this, CONTROL_STATES.done, { outputPath: '$.export.summary' });

    const goOn = [
      sfn.Condition.numberLessThanJsonPath('$.progress.added', '$.config.target'),
      sfn.Condition.numberLessThanJsonPath('$.progress.iteration', '$.config.maxIterations'),
      // The budget: false when one more iteration like the last would cross maxCostUsd.
      sfn.Condition.booleanEquals('$.progress.withinBudget', true),
      // The diversity plateau: true when new diversity stayed below the run's floor long enough.
      sfn.Condition.booleanEquals('$.progress.diversityPlateau', false),
    ];
    const enough = new sfn.Choice(this, CONTROL_STATES.enough)
      .when(
        sfn.Condition.and(...goOn, sfn.Condition.booleanEquals('$.progress.withinHistory', true)),
        planInstructions,
        {
          comment:
            'Below the target, the iteration cap and the budget, diversity still growing: another iteration',
        },
      )
      .when(sfn.Condition.and(...goOn), this.continueRun(), {
        comment: "Another iteration, but this execution's history may not hold it: in a new execution",
      })
      .otherwise(exportDataset.next(done));

    instancesMap.next(save).next(enough);
    const definition = start
      .next(prepare)
      .next(generate)
      .next(
        shardedGate(this, {
          invoke,
          filter,
          filterPayload,
          runState,
          next: this.batchStates(invoke, runState, instancesMap),
        }),
      );

    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachineRole = new RoleWithUnscopedPolicy(this, 'StateMachineRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      comment: 'Self-Instruct: grow an instruction dataset from seed tasks with an LLM',
      // Its X-Ray and log-delivery statements (on `*`) go to a policy of their own (see roles.ts).
      role: this.stateMachineRole,
      tracingEnabled: true,
      timeout: Duration.days(7),
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });

    // A stage that may be the first of a redrive asks Step Functions whether its execution is running
    // (`holdPool`). A policy of its own, attached once the state machine exists: in the functions'
    // default policies it would make the state machine depend on itself through them.
    const stack = Stack.of(this);
    const machineName = stack.splitArn(
      this.stateMachine.stateMachineArn,
      ArnFormat.COLON_RESOURCE_NAME,
    ).resourceName;
    new iam.Policy(this, 'OwnExecutionStatus', {
      roles: Object.entries(STAGES)
        .filter(([, spec]) => spec.takesLeaseBack)
        .map(([key]) => this.roles[key as StageKey]),
      statements: [
        new iam.PolicyStatement({
          actions: ['states:DescribeExecution'],
          resources: [
            stack.formatArn({
              service: 'states',
              resource: 'execution',
              resourceName: `${machineName}:*`,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ],
        }),
      ],
    });

    for (const [name, metric] of [
      ['RunsFailed', this.stateMachine.metricFailed()],
      ['RunsTimedOut', this.stateMachine.metricTimedOut()],
    ] as const) {
      new cloudwatch.Alarm(this, name, {
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `A Self-Instruct run ${name === 'RunsFailed' ? 'failed' : 'timed out'}`,
      });
    }

    // Step Functions reports every end of an execution to EventBridge: an unsuccessful one is recorded
    // on the run (readable cause, status) and the pool's lease is given back. Lambda retries the
    // asynchronous invocation twice on an error.
    new events.Rule(this, 'RunEndedUnsuccessfully', {
      description: 'Records a failed, timed-out or aborted Self-Instruct run and gives its pool back',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: [this.stateMachine.stateMachineArn],
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
        },
      },
      targets: [new targets.LambdaFunction(f.recordFailure, { retryAttempts: 2 })],
    });
  }

  /**
   * The hand-off of a run whose execution's history is full ("Save iteration" said one more iteration
   * might not fit): starts this state machine again as the run's next execution, `<run>-<n>` (the name
   * `executionName` gives), with the run's state as its input (`ContinuedRun`: its "Prepare run" takes
   * the run up from there), and ends this one with the name it handed over to. The name and input are
   * the same on every attempt, so a retry is idempotent (Step Functions starts an execution of the same
   * name and input once); if the next execution has already ended, its name is taken all the same. The
   * state machine's role may start it: the Distributed Maps' grant of `states:StartExecution` on itself.
   */
  private continueRun(): sfn.IChainable {
    const nextName = "States.Format('{}-{}', $.runId, States.MathAdd($.progress.execution, 1))";
    const continued = new sfn.Pass(this, CONTROL_STATES.continued, {
      parameters: { 'runId.$': '$.runId', 'continuedAs.$': nextName },
    });
    const handOff = new sfn.CustomState(this, CONTROL_STATES.continue, {
      stateJson: {
        Type: 'Task',
        Resource: 'arn:aws:states:::states:startExecution',
        Parameters: {
          'StateMachineArn.$': '$$.StateMachine.Id',
          'Name.$': nextName,
          Input: {
            continueRun: { 'runId.$': '$.runId', 'config.$': '$.config', 'progress.$': '$.progress' },
            // Links the two executions in the console.
            'AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$': '$$.Execution.Id',
          },
        },
        ResultPath: null,
      },
    });
    handOff
      // Started by an earlier attempt and already ended: the run went on there.
      .addRetry({ errors: ['StepFunctions.ExecutionAlreadyExistsException'], maxAttempts: 0 })
      .addRetry({
        errors: ['States.TaskFailed'],
        interval: Duration.seconds(2),
        backoffRate: 2,
        maxAttempts: 6,
        maxDelay: Duration.seconds(60),
        jitterStrategy: sfn.JitterType.FULL,
      })
      .addCatch(continued, {
        errors: ['StepFunctions.ExecutionAlreadyExistsException'],
        resultPath: sfn.JsonPath.DISCARD,
      });
    return handOff.next(continued);
  }

  /**
   * Batch mode's states before the instances Map (run input `batch`): submit the iteration's instance
   * calls as one batch job, then Wait and look again until it is done, at most `maxPolls` looks (the
   * provider's 24 h window at `batchPollSeconds`), then the Map, which finds the replies recorded. A job
   * that failed, or is still running at the last look, fails the run at "Check the instance batch"
   * (`BatchJobFailed`). Without `batch` (or without a job: too few records),
   * straight to the Map. Both steps run in the "Generate instances" function (its prompts, its grants).
   */
  private batchStates(
    invoke: InvokeStage,
    runState: Record<string, string>,
    next: sfn.IChainable,
  ): sfn.Choice {
    // A step of the "Generate instances" function: its input besides the run state, its reply in $.batching.
    const batchStep = (state: string, input: Record<string, string>) =>
      invoke(
        'generateInstances',
        {
          payload: sfn.TaskInput.fromObject({ ...runState, ...input }),
          resultSelector: { 'batch.$': '$.Payload' },
          resultPath: '$.batching',
        },
        state,
      );
    const submit = batchStep(BATCH_JOB_STATES.submit, { step: 'submit-batch', 'chunks.$': '$.gated.chunks' });
    const check = batchStep(BATCH_JOB_STATES.check, { step: 'check-batch', 'batch.$': '$.batching.batch' });
    const wait = new sfn.Wait(this, BATCH_JOB_STATES.wait, {
      time: sfn.WaitTime.secondsPath('$.batching.batch.waitSeconds'),
    });
    // The loop's bound is the look counter in the state: "Check the instance batch" fails the run
    // (`BatchJobFailed`) at `maxPolls` looks, so a redrive starts there and looks again (no Fail state).
    const done = new sfn.Choice(this, BATCH_JOB_STATES.done)
      .when(sfn.Condition.stringEquals('$.batching.batch.status', 'completed'), next, {
        comment: 'The replies are in the call ledger: the Map serves them',
      })
      .otherwise(wait);
    wait.next(check).next(done);
    const submitted = new sfn.Choice(this, BATCH_JOB_STATES.submitted);
    return new sfn.Choice(this, BATCH_JOB_STATES.choice)
      .when(
        // A run started before batch mode has no `batch` in its config.
        sfn.Condition.and(
          sfn.Condition.isPresent('$.config.batch'),
          sfn.Condition.booleanEquals('$.config.batch', true),
        ),
        submit.next(
          submitted
            .when(sfn.Condition.stringEquals('$.batching.batch.status', 'submitted'), wait)
            .otherwise(next),
        ),
        { comment: "Batch mode: the instance calls go to the provider's batch API" },
      )
      .otherwise(next);
  }
}
