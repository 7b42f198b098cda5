/**
 * The local stack: the synthesized state machine definition, executed by aws-local-stepfunctions, with
 * each Lambda task routed to the same handler module the function bundles, in the environment the
 * template gives it, against local S3 and DynamoDB servers. There is no other orchestrator.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { type RunOptions, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';

type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;

/** One entry of the local execution's event log. */
export type EventLog =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

import { DynamoPoolStore } from '../../functions/shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../../functions/shared/adapters/s3.ts';
import { s3ClientConfig } from '../../functions/shared/config.ts';
import { ENTRY_METADATA, PROJECT_ROOT } from '../project.ts';
import { type LocalServers, pointSdkAt, startLocalServers } from './servers.ts';
import {
  type CfnTemplate,
  definitionChecked,
  LOCAL_ACCOUNT,
  LOCAL_REGION,
  type LoadedTemplate,
  type LocalNames,
  loadTemplate,
  markDefinitionChecked,
  resolveIntrinsics,
  resourcesOfType,
} from './template.ts';

// aws-local-stepfunctions uses Promise.withResolvers (Node 22+).
if (!('withResolvers' in Promise)) {
  Object.assign(Promise, {
    withResolvers<T>() {
      let resolve!: (value: T) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

type Handler = (event: unknown, context?: unknown) => Promise<unknown>;

/** A local stand-in for one Lambda function of the template. */
interface LocalFunction {
  logicalId: string;
  entry: string;
  environment: Record<string, string>;
}

export interface LocalStackOptions {
  /** Folder of the local S3 and DynamoDB data (git-ignored). */
  dataDir: string;
  /** Delete the data first. */
  fresh?: boolean;
  /** What this process does with the folder (`run <id>`, `export` …), named to a second one (`servers.ts`). */
  holder?: string;
  /** Powertools log level of the handlers (`SILENT` keeps the terminal for the progress view). */
  logLevel?: string;
  /** CDK context for synthesis (e.g. `selfinstruct:model`). */
  context?: Record<string, unknown>;
  /**
   * Run the esbuild bundles that would be deployed (`cdk.out`-style, in this folder) instead of the
   * TypeScript sources: slower to start, and proof that the deployed artifacts work.
   */
  bundleTo?: string;
  /** The template, when the caller loaded it already (`loadTemplate`, e.g. to show start-up progress). */
  template?: LoadedTemplate;
}

export interface ExecutionResult {
  executionName: string;
  status: 'SUCCEEDED' | 'FAILED';
  output?: unknown;
  error?: string;
  cause?: string;
  events: EventLog[];
}

/** Error thrown back into the state machine the way Lambda reports a function error. */
class LambdaFunctionError extends Error {
  constructor(error: unknown) {
    const name = (error as Error)?.name ?? 'Error';
    const message = (error as Error)?.message ?? String(error);
    super(JSON.stringify({ errorType: name, errorMessage: message, trace: [] }));
    this.name = name;
  }
}

export class LocalStack {
  readonly objects: S3ObjectStore;
  readonly pool: DynamoPoolStore;
  private readonly handlers = new Map<string, Promise<Handler>>();

  private constructor(
    readonly servers: LocalServers,
    readonly template: CfnTemplate,
    readonly definition: StateMachineDefinition,
    readonly bucketName: string,
    readonly tableName: string,
    private readonly functions: Map<string, LocalFunction>,
    /** Milliseconds spent getting the template (synthesis, or the cache). */
    readonly synthMs: number,
  ) {
    this.objects = new S3ObjectStore(bucketName);
    this.pool = new DynamoPoolStore(tableName);
  }

  static async start(options: LocalStackOptions): Promise<LocalStack> {
    const servers = await startLocalServers(options.dataDir, options);
    try {
      pointSdkAt(servers);

      const loaded = options.template ?? (await loadTemplate(options));
      const { template, outdir = '' } = loaded;
      const synthMs = loaded.ms;

      const [bucketId] = resourcesOfType(template, 'AWS::S3::Bucket').map(([id]) => id);
      const [tableId, tableResource] = resourcesOfType(template, 'AWS::DynamoDB::GlobalTable')[0] ?? [];
      if (!bucketId || !tableId || !tableResource)
        throw new Error('local stack: template has no bucket or table');
      const bucketName = `local-${bucketId.toLowerCase()}`;
      const names: LocalNames = {
        ref: (id) => {
          if (id === bucketId) return bucketName;
          if (id === tableId) return tableId;
          return id;
        },
        arn: (id) => {
          const type = template.Resources[id]?.Type;
          if (type === 'AWS::Lambda::Function')
            return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${id}`;
          if (id === bucketId) return `arn:aws:s3:::${bucketName}`;
          return `arn:aws:local:${LOCAL_REGION}:${LOCAL_ACCOUNT}:${id}`;
        },
      };

      await createTable(tableId, tableResource.Properties ?? {});
      await createBucket(bucketName);

      const functions = new Map<string, LocalFunction>();
      for (const [id, resource] of resourcesOfType(template, 'AWS::Lambda::Function')) {
        const source = resource.Metadata?.[ENTRY_METADATA];
        if (typeof source !== 'string') continue; // CDK's own custom-resource handlers
        const asset = resource.Metadata?.['aws:asset:path'];
        const entry = options.bundleTo
          ? path.join(outdir, String(asset), 'index.mjs')
          : path.join(PROJECT_ROOT, source);
        const variables =
          (resource.Properties?.Environment as { Variables?: unknown } | undefined)?.Variables ?? {};
        const environment = resolveIntrinsics(variables, names) as Record<string, string>;
        // There is no local Secrets Manager: locally, API keys come from the environment (README, Models).
        delete environment.MODEL_API_KEY_SECRET_ARN;
        functions.set(names.arn(id), {
          logicalId: id,
          entry,
          environment: { ...environment, POWERTOOLS_LOG_LEVEL: options.logLevel ?? 'SILENT' },
        });
      }

      const [machine] = resourcesOfType(template, 'AWS::StepFunctions::StateMachine');
      if (!machine) throw new Error('local stack: template has no state machine');
      const definition = JSON.parse(
        resolveIntrinsics(machine[1].Properties?.DefinitionString, names) as string,
      ) as StateMachineDefinition;
      // The whole definition (Map item processors included) is checked against the States Language once
      // per template: the check compiles a JSON Schema validator, seconds of a local run's CPU.
      if (!definitionChecked(loaded)) {
        new StateMachine(definition, { validationOptions: { checkArn: false } });
        markDefinitionChecked(loaded);
      }

      const stack = new LocalStack(servers, template, definition, bucketName, tableId, functions, synthMs);
      await stack.deploySeeds(names);
      return stack;
    } catch (error) {
      await servers.close();
      throw error;
    }
  }

  /** What CDK's BucketDeployment does on deploy: copy the bundled seed file into the bucket. */
  private async deploySeeds(names: LocalNames): Promise<void> {
    for (const [, resource] of resourcesOfType(this.template, 'Custom::CDKBucketDeployment')) {
      const prefix = resolveIntrinsics(resource.Properties?.DestinationBucketKeyPrefix, names) as string;
      const file = path.join(PROJECT_ROOT, 'seeds', 'seed_tasks.jsonl');
      await this.objects.put(`${prefix}/seed_tasks.jsonl`, readFileSync(file), 'application/jsonl');
    }
  }

  /**
   * Handlers are imported once, like a warm Lambda container, after the process environment holds
   * the function's variables (the functions share the same variables; a conflict is an error).
   */
  private handler(arn: string): Promise<Handler> {
    let handler = this.handlers.get(arn);
    if (!handler) {
      const fn = this.functions.get(arn);
      if (!fn) throw new Error(`local stack: no function ${arn} in the template`);
      for (const [key, value] of Object.entries(fn.environment)) {
        const current = process.env[key];
        const setByOther = [...this.handlers.keys()].some(
          (other) => this.functions.get(other)?.environment[key],
        );
        if (setByOther && current !== value) {
          throw new Error(`local stack: functions disagree on ${key}; they can't share one process`);
        }
        process.env[key] = value;
      }
      handler = import(pathToFileURL(fn.entry).href).then((module) => module.handler as Handler);
      this.handlers.set(arn, handler);
    }
    return handler;
  }

  /** The task-state overrides: every `lambda:invoke` task calls its function's handler in-process. */
  private overrides(): TaskHandlers {
    const overrides: TaskHandlers = {};
    const visit = (states: Record<string, Record<string, unknown>>) => {
      for (const [name, state] of Object.entries(states)) {
        const processor = (state.ItemProcessor ?? state.Iterator) as { States: typeof states } | undefined;
        if (processor) visit(processor.States);
        if (state.Type !== 'Task') continue;
        if (state.Resource !== 'arn:aws:states:::lambda:invoke') {
          throw new Error(
            `local stack: task "${name}" uses ${String(state.Resource)}; only lambda:invoke runs locally`,
          );
        }
        const functionArn = (state.Parameters as { FunctionName: string }).FunctionName;
        overrides[name] = async (input) => {
          const handler = await this.handler(functionArn);
          try {
            const payload = await handler((input as { Payload: unknown }).Payload, {
              functionName: functionArn,
            });
            return { Payload: payload ?? null, StatusCode: 200, ExecutedVersion: '$LATEST' } as never;
          } catch (error) {
            throw new LambdaFunctionError(error);
          }
        };
      }
    };
    visit(this.definition.States as unknown as Record<string, Record<string, unknown>>);
    return overrides;
  }

  /** Starts an execution and waits for it, passing each event of its log to `onEvent`. */
  async execute(
    input: unknown,
    {
      executionName = `local-${Date.now().toString(36)}`,
      onEvent,
      retryIntervalMs,
    }: { executionName?: string; onEvent?: (event: EventLog) => void; retryIntervalMs?: number } = {},
  ): Promise<ExecutionResult> {
    // Checked at start (see `start`); the engine would otherwise check it again on every execution.
    const machine = new StateMachine(this.definition, { validationOptions: { noValidate: true } });
    const overrides = this.overrides();
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: overrides,
        ...(retryIntervalMs === undefined
          ? {}
          : {
              retryIntervalOverrides: Object.fromEntries(
                Object.keys(overrides).map((name) => [name, retryIntervalMs]),
              ),
            }),
      },
      context: {
        Execution: {
          Id: `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:execution:SelfInstruct:${executionName}`,
          Name: executionName,
          Input: input as never,
          StartTime: new Date().toISOString(),
        },
      } as never,
    });
    const events: EventLog[] = [];
    const consume = (async () => {
      for await (const event of execution.eventLogs) {
        events.push(event);
        onEvent?.(event);
      }
    })();
    try {
      const output = await execution.result;
      await consume;
      return { executionName, status: 'SUCCEEDED', output, events };
    } catch (error) {
      await consume.catch(() => undefined);
      const failed = events.find((event) => event.type === 'ExecutionFailed') as
        | { Error: string; Cause: unknown }
        | undefined;
      return {
        executionName,
        status: 'FAILED',
        error: failed?.Error ?? (error as Error).name,
        cause: String(failed?.Cause ?? (error as Error).message),
        events,
      };
    }
  }

  async close(): Promise<void> {
    await this.servers.close();
  }
}

async function createTable(name: string, properties: Record<string, unknown>): Promise<void> {
  const client = new DynamoDBClient({});
  const { TableNames = [] } = await client.send(new ListTablesCommand({}));
  if (TableNames.includes(name)) return;
  const indexes =
    (properties.GlobalSecondaryIndexes as { IndexName: string; KeySchema: unknown; Projection: unknown }[]) ??
    [];
  await client.send(
    new CreateTableCommand({
      TableName: name,
      KeySchema: properties.KeySchema as never,
      AttributeDefinitions: properties.AttributeDefinitions as never,
      BillingMode: 'PAY_PER_REQUEST',
      GlobalSecondaryIndexes:
        indexes.length > 0
          ? indexes.map(
              ({ IndexName, KeySchema, Projection }) => ({ IndexName, KeySchema, Projection }) as never,
            )
          : undefined,
    }),
  );
}

async function createBucket(name: string): Promise<void> {
  const client = new S3Client(s3ClientConfig());
  try {
    await client.send(new HeadBucketCommand({ Bucket: name }));
  } catch {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  }
}
