/**
 * The Self-Instruct workflow: one Lambda per stage and the Standard Step Functions state machine that
 * orchestrates them (JSONPath, Lambda tasks only, so the same definition also runs locally).
 *
 *   Start run → Prepare run → Generate instructions → Filter and deduplicate → Generate instances (Map
 *   over chunks of ids) → Save iteration → Enough instructions? ─ no → Generate instructions
 *                                                              └ yes → Export dataset → Done
 *   A stage's error (after its retries) fails the execution at that stage, so `RedriveExecution` restarts
 *   it there; an EventBridge rule on the execution's end (FAILED, TIMED_OUT, ABORTED) runs Record failure.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
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

/** The project root: stage entries are `functions/<stage>/handler.ts` below it. */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** CloudFormation metadata key that names a function's handler module, read by the local runner. */
export const ENTRY_METADATA = 'SelfInstruct:Entry';

/**
 * Errors worth retrying with backoff: Lambda's own transient faults, what a crashed or timed-out
 * function reports (`Lambda.Unknown` for an out-of-memory kill or a timeout, `Sandbox.Timedout`,
 * `Runtime.ExitError`, `Runtime.OutOfMemory` on current runtimes: every stage is safe to run again),
 * and the model adapters' named ones.
 */
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
}

interface StageSpec {
  id: string;
  folder: string;
  description: string;
  timeout: Duration;
  memorySize: number;
  callsModel?: boolean;
}

const STAGES = {
  prepare: {
    id: 'PrepareRun',
    folder: 'prepare',
    description: 'Validates the run input and seed file, records the run and seeds the pool',
    timeout: Duration.minutes(5),
    memorySize: 1024,
  },
  generateInstructions: {
    id: 'GenerateInstructions',
    folder: 'generate-instructions',
    description: 'Asks the model for new instructions from seed and machine demonstrations',
    timeout: Duration.minutes(15),
    memorySize: 1024,
    callsModel: true,
  },
  filter: {
    id: 'FilterAndDeduplicate',
    folder: 'filter',
    description: 'Heuristic filters and the sequential ROUGE-L gate against the pool',
    timeout: Duration.minutes(15),
    memorySize: 3008,
  },
  generateInstances: {
    id: 'GenerateInstances',
    folder: 'generate-instances',
    description: 'Classifies one chunk of instructions and generates their instances',
    timeout: Duration.minutes(15),
    memorySize: 1024,
    callsModel: true,
  },
  saveIteration: {
    id: 'SaveIteration',
    folder: 'save-iteration',
    description: 'Adds the iteration to the pool and the run record',
    timeout: Duration.minutes(5),
    memorySize: 1024,
  },
  exportDataset: {
    id: 'ExportDataset',
    folder: 'export',
    description: 'Writes the dataset exports and the run summary',
    timeout: Duration.minutes(15),
    memorySize: 2048,
  },
  recordFailure: {
    id: 'RecordFailure',
    folder: 'record-failure',
    description: 'Marks a failed, timed-out or aborted run with a readable cause and gives its pool back',
    timeout: Duration.minutes(1),
    memorySize: 512,
  },
} satisfies Record<string, StageSpec>;

/** The model a cross-region inference profile id (`us.`, `eu.`, `apac.`, `global.` …) routes to, if it is one. */
export const inferenceProfileModel = (modelId: string) =>
  /^(us|eu|apac|us-gov|ca|jp|au|global)\.(.+)$/.exec(modelId)?.[2];

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

/** The stage functions and the state machine of a Self-Instruct pipeline. */
export class SelfInstructWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly functions: Record<keyof typeof STAGES, nodejs.NodejsFunction>;

  constructor(scope: Construct, id: string, props: SelfInstructWorkflowProps) {
    super(scope, id);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    const makeFunction = (spec: StageSpec) => {
      const entry = path.join(PROJECT_ROOT, 'functions', spec.folder, 'handler.ts');
      const fn = new nodejs.NodejsFunction(this, spec.id, {
        entry,
        handler: 'handler',
        description: spec.description,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        timeout: spec.timeout,
        memorySize: spec.memorySize,
        tracing: lambda.Tracing.ACTIVE,
        loggingFormat: lambda.LoggingFormat.JSON,
        logGroup: new logs.LogGroup(this, `${spec.id}Logs`, {
          retention,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        projectRoot: PROJECT_ROOT,
        depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
        environment: {
          BUCKET_NAME: props.bucket.bucketName,
          TABLE_NAME: props.table.tableName,
          POWERTOOLS_SERVICE_NAME: 'selfinstruct',
          POWERTOOLS_LOG_LEVEL: 'INFO',
          NODE_OPTIONS: '--enable-source-maps',
        },
        bundling: {
          format: nodejs.OutputFormat.ESM,
          target: 'node22',
          minify: true,
          sourceMap: true,
          mainFields: ['module', 'main'],
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
      if (spec.callsModel && props.apiKeySecret) {
        props.apiKeySecret.grantRead(fn);
        fn.addEnvironment('MODEL_API_KEY_SECRET_ARN', props.apiKeySecret.secretArn);
      }
      if (spec.callsModel && props.bedrockModelIds?.length) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['bedrock:InvokeModel'],
            resources: props.bedrockModelIds.flatMap((modelId) => bedrockResources(Stack.of(this), modelId)),
          }),
        );
      }
      return fn;
    };

    this.functions = Object.fromEntries(
      Object.entries(STAGES).map(([key, spec]) => [key, makeFunction(spec)]),
    ) as Record<keyof typeof STAGES, nodejs.NodejsFunction>;
    const f = this.functions;

    // Least privilege: each stage gets what it touches.
    props.bucket.grantRead(f.prepare);
    props.bucket.grantPut(f.prepare, 'pools/*');
    props.table.grantReadWriteData(f.prepare);
    props.bucket.grantRead(f.generateInstructions, 'pools/*');
    // A replay run reads the recorded run's replies.
    props.bucket.grantRead(f.generateInstructions, 'runs/*');
    props.bucket.grantPut(f.generateInstructions, 'runs/*');
    props.bucket.grantRead(f.filter, 'pools/*');
    props.bucket.grantRead(f.filter, 'runs/*');
    props.bucket.grantPut(f.filter, 'runs/*');
    props.table.grantReadWriteData(f.filter);
    props.bucket.grantRead(f.generateInstances, 'runs/*');
    props.bucket.grantPut(f.generateInstances, 'runs/*');
    props.table.grantReadWriteData(f.generateInstances);
    props.bucket.grantRead(f.saveIteration, 'runs/*');
    // The run's price table (`--prices`, run input priceTableKey).
    props.bucket.grantRead(f.saveIteration, 'prices/*');
    props.bucket.grantPut(f.saveIteration, 'pools/*');
    props.table.grantReadWriteData(f.saveIteration);
    props.table.grantReadWriteData(f.exportDataset);
    props.bucket.grantPut(f.exportDataset, 'exports/*');
    // Reads the run's pool, marks the run, gives the pool's lease back.
    props.table.grantReadWriteData(f.recordFailure);

    const invoke = (
      name: string,
      fn: lambda.IFunction,
      timeout: Duration,
      options: Partial<tasks.LambdaInvokeProps> = {},
    ) => {
      const task = new tasks.LambdaInvoke(this, name, {
        lambdaFunction: fn,
        payloadResponseOnly: false,
        retryOnServiceExceptions: false,
        resultSelector: { 'Payload.$': '$.Payload' },
        taskTimeout: sfn.Timeout.duration(timeout),
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

    // The run state that goes round the loop, read from the state and from a stage's reply.
    const runState = { 'runId.$': '$.runId', 'config.$': '$.config', 'progress.$': '$.progress' };
    const runStateFromPayload = {
      'runId.$': '$.Payload.runId',
      'config.$': '$.Payload.config',
      'progress.$': '$.Payload.progress',
    };

    const start = new sfn.Pass(this, 'Start run', {
      parameters: { 'runId.$': '$$.Execution.Name', 'input.$': '$' },
    });
    const prepare = invoke('Prepare run', f.prepare, STAGES.prepare.timeout, {
      resultSelector: runStateFromPayload,
    });
    const generate = invoke(
      'Generate instructions',
      f.generateInstructions,
      STAGES.generateInstructions.timeout,
      {
        payload: sfn.TaskInput.fromObject(runState),
        resultSelector: {
          'candidatesKey.$': '$.Payload.candidatesKey',
          'prompts.$': '$.Payload.prompts',
          'candidates.$': '$.Payload.candidates',
          'malformed.$': '$.Payload.malformed',
          'droppedByTruncation.$': '$.Payload.droppedByTruncation',
          'usage.$': '$.Payload.usage',
        },
        resultPath: '$.generated',
      },
    );
    const filter = invoke('Filter and deduplicate', f.filter, STAGES.filter.timeout, {
      payload: sfn.TaskInput.fromObject({
        ...runState,
        'candidatesKey.$': '$.generated.candidatesKey',
      }),
      resultSelector: { 'chunks.$': '$.Payload.chunks', 'counts.$': '$.Payload.counts' },
      resultPath: '$.gated',
    });
    const instancesMap = new sfn.Map(this, 'Generate instances', {
      itemsPath: '$.gated.chunks',
      maxConcurrencyPath: '$.config.mapConcurrency',
      itemSelector: {
        ...runState,
        'chunk.$': '$$.Map.Item.Value',
      },
      resultPath: '$.instances',
    });
    instancesMap.itemProcessor(
      invoke('Generate instances for a chunk', f.generateInstances, STAGES.generateInstances.timeout, {
        resultSelector: {
          'chunk.$': '$.Payload.chunk',
          'counts.$': '$.Payload.counts',
          'usage.$': '$.Payload.usage',
        },
      }),
    );
    const save = invoke('Save iteration', f.saveIteration, STAGES.saveIteration.timeout, {
      payload: sfn.TaskInput.fromObject({
        ...runState,
        'generated.$': '$.generated',
        'gated.$': '$.gated',
        'instances.$': '$.instances',
      }),
      // Replaces the whole state: only runId, config and progress go round the loop.
      resultSelector: runStateFromPayload,
    });
    const exportDataset = invoke('Export dataset', f.exportDataset, STAGES.exportDataset.timeout, {
      payload: sfn.TaskInput.fromObject(runState),
      resultSelector: { 'summary.$': '$.Payload' },
      resultPath: '$.export',
    });
    const done = new sfn.Succeed(this, 'Done', { outputPath: '$.export.summary' });

    const enough = new sfn.Choice(this, 'Enough instructions?')
      .when(
        sfn.Condition.and(
          sfn.Condition.numberLessThanJsonPath('$.progress.added', '$.config.target'),
          sfn.Condition.numberLessThanJsonPath('$.progress.iteration', '$.config.maxIterations'),
          // The budget: false when one more iteration like the last would cross maxCostUsd.
          sfn.Condition.booleanEquals('$.progress.withinBudget', true),
        ),
        generate,
        { comment: 'Below the target, the iteration cap and the budget: another iteration' },
      )
      .otherwise(exportDataset.next(done));

    const definition = start
      .next(prepare)
      .next(generate)
      .next(filter)
      .next(instancesMap)
      .next(save)
      .next(enough);

    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      comment: 'Self-Instruct: grow an instruction dataset from seed tasks with an LLM',
      tracingEnabled: true,
      timeout: Duration.days(7),
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
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
}
