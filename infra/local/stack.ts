/**
 * The local stack: the synthesized state machine definition, executed by aws-local-stepfunctions, with
 * each Lambda task routed to the same handler module the function bundles, in the environment the
 * template gives it, against local S3 and DynamoDB servers. There is no other orchestrator.
 *
 * It is as strict as AWS: each invocation runs as its function's role (IAM from the template, see
 * `iam.ts`, unless turned off), and is made as the state machine's role (`lambda:InvokeFunction`, and
 * `states:StartExecution` on itself for a Distributed Map's children), dies on its function's `Timeout`
 * (`Sandbox.Timedout`), and an execution fails on a state payload over 256 KB
 * (`States.DataLimitExceeded`) or a history over 25,000 events (the parent's, or a Distributed Map
 * item's child execution's: see `history-events.ts`). When an execution ends, the template's
 * EventBridge rules that match its "Step Functions Execution Status Change" event run their Lambda
 * targets (see `rules.ts`). A fault plan
 * (`faults.ts`) injects crashes, duplicate deliveries and timeouts.
 *
 * Every execution is in one registry (`execution-registry.ts`), served for the stack's whole life by a
 * local Step Functions endpoint (`sfn-server.ts`) that its Lambdas reach as their role
 * (`DescribeExecution` says RUNNING, then how it ended); `redrive` is `RedriveExecution`.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { type RunOptions, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { DynamoPoolStore } from '../../functions/shared/adapters/dynamodb.ts';
import { S3ObjectStore } from '../../functions/shared/adapters/s3.ts';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { ENTRY_METADATA, PROJECT_ROOT } from '../project.ts';
import { type ExecutionRecord, ExecutionRegistry, StepFunctionsApiError } from './execution-registry.ts';
import { appendEnd, markClosed, markOpen, openExecutions } from './executions.ts';
import { type Fault, FaultPlan, type InvocationInfo } from './faults.ts';
import { MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES } from './history.ts';
import {
  type DistributedMaps,
  distributedMapsOf,
  HistoryCounter,
  type HistoryRecorder,
  historyRecorder,
} from './history-events.ts';
import {
  type Denial,
  IamEvaluator,
  loadEvaluator,
  type Place,
  type Principal,
  principalsFromTemplate,
  stateMachinePrincipal,
} from './iam.ts';
import { type ExecutionStatus, type ExecutionStatusChange, targetsFor } from './rules.ts';
import { configureRuntime, deferred, Invocation, LambdaError, registerRuntime } from './runtime.ts';
import { LOCAL_CREDENTIALS, type LocalServers, startLocalServers } from './servers.ts';
import { type LocalStepFunctions, serveStepFunctions } from './sfn-server.ts';
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

type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;

/** One entry of the local execution's event log. */
export type EventLog =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

// aws-local-stepfunctions uses Promise.withResolvers (Node 22+).
if (!('withResolvers' in Promise)) Object.assign(Promise, { withResolvers: deferred });

type Handler = (event: unknown, context?: unknown) => Promise<unknown>;

/** A local stand-in for one Lambda function of the template. */
interface LocalFunction {
  logicalId: string;
  entry: string;
  environment: Record<string, string>;
  /** The function's `Timeout`, in seconds (Lambda's default is 3). */
  timeoutSeconds: number;
  principal?: Principal;
}

/** The environment variable that turns local IAM enforcement off (`off`), for debugging. */
export const LOCAL_IAM_ENV = 'SELFINSTRUCT_LOCAL_IAM';

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
  /**
   * Evaluate every request of a handler against its function's role, as AWS does.
   * @default true, unless `SELFINSTRUCT_LOCAL_IAM=off`
   */
  iam?: boolean;
  /** Changes the synthesized template before it is used (tests: remove a grant). */
  editTemplate?: (template: CfnTemplate) => void;
  /**
   * The servers, when the caller started them already (`startLocalServers` on `dataDir`), so that they
   * start in their process while this one loads the template and the stack's modules. The stack closes them.
   */
  servers?: Promise<LocalServers>;
}

/** Step Functions' limits, lowered by tests to prove they are enforced. */
export interface ExecutionLimits {
  /** @default 262144 (256 KB) */
  payloadBytes?: number;
  /** @default 25000 */
  historyEvents?: number;
  /** Events of each Distributed Map item's child execution. @default 25000 */
  childHistoryEvents?: number;
}

export interface ExecuteOptions {
  executionName?: string;
  /** Each event, with the name of the execution it belongs to (a run's next executions included). */
  onEvent?: (event: EventLog, execution: string) => void;
  /** Milliseconds between retries instead of the definition's backoff (tests). */
  retryIntervalMs?: number;
  /** Milliseconds every Wait state waits instead of its seconds (tests of batch mode's poll loop). */
  waitMs?: number;
  /** Aborts the execution (as `StopExecution` does): status `ABORTED`. */
  signal?: AbortSignal;
  /** Faults to inject (see `faults.ts`). */
  faults?: readonly Fault[];
  limits?: ExecutionLimits;
}

/** How a redrive runs: as an execution runs (its name is the redriven execution's). */
export type RedriveOptions = Omit<ExecuteOptions, 'executionName'>;

/** A redrive that started: when, and its result (the redriven execution's, and the run's next ones'). */
export interface StartedRedrive {
  redriveDate: number;
  result: Promise<ExecutionResult>;
}

/** What a redriven execution starts from: its unsuccessful top-level state, with that state's input. */
interface RedriveStart {
  record: ExecutionRecord;
  state: string;
  stateInput: unknown;
}

/** What a rule's Lambda target did with the execution's status-change event. */
export interface RuleDelivery {
  rule: string;
  functionName: string;
  /** The target's error after Lambda's asynchronous retries, if it never succeeded. */
  error?: string;
}

export interface ExecutionResult {
  executionName: string;
  status: ExecutionStatus;
  output?: unknown;
  error?: string;
  cause?: string;
  events: EventLog[];
  /** The rule targets that ran on the execution's status-change event. */
  deliveries: RuleDelivery[];
  /** How often each kind of injected fault struck. */
  faultsStruck: ReturnType<FaultPlan['counts']>;
  /**
   * The executions of the run, in order: the first, and each it handed the run to ("Continue in a new
   * execution"). The result is the last one's (status, output, error), with every execution's events and
   * deliveries, in order.
   */
  executions: string[];
}

/** One execution's result, and the execution it handed the run to, if any. */
interface Started {
  result: ExecutionResult;
  next?: Promise<Started>;
}

/** An execution whose process ended before it did, and what the rule targets did with its end. */
export interface AbandonedExecution {
  executionName: string;
  deliveries: RuleDelivery[];
}

/** How an execution left by a dead process ends (FAILED, as AWS ends an execution that can't go on). */
export const ABANDONED_ERROR = 'Local.ProcessEnded';
const ABANDONED_CAUSE =
  'The local process running this execution ended before it did (killed or crashed); the next local command on this data folder ended it.';

/** Failed before the engine noticed: a Step Functions limit (`States.DataLimitExceeded` …). */
class ExecutionLimitFailure extends Error {}

/** An error of a service integration as the state machine sees it (`StepFunctions.…Exception`). */
class ServiceError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** The resource of the state that starts the run's next execution (see `infra/workflow.ts`). */
const START_EXECUTION = 'arn:aws:states:::states:startExecution';
/** Step Functions' execution names: 1–80 characters, none of these. */
const EXECUTION_NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\p{Cc}]{1,80}$/u;

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value ?? null));

/** The region the user's AWS configuration names (environment or profile), if any. */
async function userRegion(): Promise<string | undefined> {
  try {
    return await new S3Client({}).config.region();
  } catch {
    return undefined;
  }
}

export class LocalStack {
  readonly objects: S3ObjectStore;
  readonly pool: DynamoPoolStore;
  private readonly handlers = new Map<string, Promise<Handler>>();
  /**
   * Every execution of this stack (Step Functions keeps a name for 90 days): status, redrives, history.
   * The local Step Functions endpoint serves it.
   */
  readonly executions: ExecutionRegistry;
  /** The local Step Functions endpoint, for the stack's whole life (its Lambdas' SFN clients reach it). */
  stepFunctions?: LocalStepFunctions;
  /** The time in the last default execution name. */
  private lastNamed = 0;
  /** Executions an earlier process died with, ended as failed when this stack started. */
  abandoned: AbandonedExecution[] = [];
  /** The definition's Distributed Maps, whose items run as child executions of their own. */
  readonly distributed: DistributedMaps;
  /** The state machine's role and the evaluator of its requests (undefined with IAM off). */
  private machineIam?: { evaluator: IamEvaluator; principal: Principal };

  private constructor(
    readonly servers: LocalServers,
    readonly template: CfnTemplate,
    readonly definition: StateMachineDefinition,
    readonly bucketName: string,
    readonly tableName: string,
    private readonly functions: Map<string, LocalFunction>,
    private readonly names: LocalNames,
    /** Where the stack stands: the user's region (else us-east-1) and the local account. */
    readonly place: Place,
    /** The state machine's ARN, as its `Ref` resolves. */
    readonly stateMachineArn: string,
    /** Milliseconds spent getting the template (synthesis, or the cache). */
    readonly synthMs: number,
    private readonly dataDir: string,
  ) {
    this.objects = new S3ObjectStore(bucketName);
    this.pool = new DynamoPoolStore(tableName);
    this.distributed = distributedMapsOf(definition);
    this.executions = new ExecutionRegistry(this.distributed);
  }

  /** Maps this stack's engine events to the history AWS would record (see `history-events.ts`). */
  historyRecorder(execution?: string): HistoryRecorder {
    return historyRecorder(this.distributed, execution);
  }

  static async start(options: LocalStackOptions): Promise<LocalStack> {
    const iamOn = options.iam ?? process.env[LOCAL_IAM_ENV]?.toLowerCase() !== 'off';
    // Loaded while the servers start and the template loads.
    const evaluator = iamOn ? loadEvaluator() : undefined;
    evaluator?.catch(() => undefined);
    const starting = options.servers ?? startLocalServers(options.dataDir, options);
    // Awaited below (a failure to start is reported then, not as an unhandled rejection meanwhile).
    starting.catch(() => undefined);
    const place: Place = { region: (await userRegion()) ?? LOCAL_REGION, account: LOCAL_ACCOUNT };
    const servers = await starting;
    try {
      configureRuntime({
        place,
        endpoints: { s3: servers.s3Endpoint, dynamodb: servers.dynamodbEndpoint },
        credentials: LOCAL_CREDENTIALS,
        region: LOCAL_REGION,
        iam: undefined,
      });
      registerRuntime();

      const loaded = options.template ?? (await loadTemplate(options));
      const { template, outdir = '' } = loaded;
      options.editTemplate?.(template);
      const synthMs = loaded.ms;

      const [bucketId] = resourcesOfType(template, 'AWS::S3::Bucket').map(([id]) => id);
      const [tableId, tableResource] = resourcesOfType(template, 'AWS::DynamoDB::GlobalTable')[0] ?? [];
      if (!bucketId || !tableId || !tableResource)
        throw new Error('local stack: template has no bucket or table');
      const names = localNames(template, place, { bucketId, tableId });
      const bucketName = names.ref(bucketId);

      await createTable(tableId, tableResource.Properties ?? {});
      await createBucket(bucketName);

      const principals = principalsFromTemplate(template, names);
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
          timeoutSeconds: Number(resource.Properties?.Timeout ?? 3),
          principal: principals.get(id),
        });
      }
      const iam = evaluator ? new IamEvaluator(place, await evaluator) : undefined;
      if (iam) configureRuntime({ place, iam });

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

      const stack = new LocalStack(
        servers,
        template,
        definition,
        bucketName,
        tableId,
        functions,
        names,
        place,
        names.ref(machine[0]),
        synthMs,
        options.dataDir,
      );
      const machinePrincipal = stateMachinePrincipal(template, names);
      if (iam && machinePrincipal) stack.machineIam = { evaluator: iam, principal: machinePrincipal };
      await stack.deploySeeds();
      stack.abandoned = await stack.endAbandoned();
      stack.stepFunctions = await serveStepFunctions(stack);
      return stack;
    } catch (error) {
      await servers.close();
      throw error;
    }
  }

  /** What CDK's BucketDeployment does on deploy: copy the bundled seed file into the bucket. */
  private async deploySeeds(): Promise<void> {
    for (const [, resource] of resourcesOfType(this.template, 'Custom::CDKBucketDeployment')) {
      const prefix = resolveIntrinsics(resource.Properties?.DestinationBucketKeyPrefix, this.names) as string;
      const file = path.join(PROJECT_ROOT, 'seeds', 'seed_tasks.jsonl');
      await this.objects.put(`${prefix}/seed_tasks.jsonl`, readFileSync(file), 'application/jsonl');
    }
  }

  /** The ARN of an execution of the state machine. */
  executionArn(name: string): string {
    return `${this.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
  }

  /**
   * Handlers are imported once, like a warm Lambda container, after the process environment holds
   * the function's variables (the functions share the same variables; a conflict is an error).
   */
  private handler(arn: string): Promise<Handler> {
    let handler = this.handlers.get(arn);
    if (!handler) {
      const fn = this.function(arn);
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
      handler = importEntry(fn.entry).then((module) => module.handler as Handler);
      this.handlers.set(arn, handler);
    }
    return handler;
  }

  private function(arn: string): LocalFunction {
    const fn = this.functions.get(arn);
    if (!fn) throw new Error(`local stack: no function ${arn} in the template`);
    return fn;
  }

  /**
   * Starts one invocation of a function, as its role, killed at its `Timeout` like Lambda kills it
   * (`Sandbox.Timedout`). The returned invocation's `reported` is what the caller sees.
   */
  private async invoke(
    arn: string,
    info: Omit<InvocationInfo, 'functionName'>,
    faults: FaultPlan,
    running: Set<Invocation>,
  ): Promise<Invocation> {
    const fn = this.function(arn);
    const handler = await this.handler(arn);
    const invocation = new Invocation({ ...info, functionName: fn.logicalId }, fn.principal, faults);
    running.add(invocation);
    const deadline = Date.now() + fn.timeoutSeconds * 1000;
    const timer = setTimeout(
      () =>
        invocation.kill(
          'Sandbox.Timedout',
          `RequestId: ${invocation.requestId} Error: Task timed out after ${fn.timeoutSeconds.toFixed(2)} seconds`,
        ),
      fn.timeoutSeconds * 1000,
    );
    invocation.start(() =>
      handler(info.input, {
        functionName: fn.logicalId,
        invokedFunctionArn: arn,
        awsRequestId: invocation.requestId,
        getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      }),
    );
    void invocation.settled.then(() => clearTimeout(timer));
    return invocation;
  }

  /**
   * Starts an execution and waits for it (and every invocation it started), passing each event to
   * `onEvent`; when it hands the run to a next execution, waits for that one too, and so on (their
   * events follow the first's: see `ExecutionResult.executions`). A name the stack ran already is
   * refused (`ExecutionAlreadyExists`), as StartExecution refuses it.
   */
  async execute(input: unknown, options: ExecuteOptions = {}): Promise<ExecutionResult> {
    const faults = new FaultPlan(options.faults ?? []);
    // Named by the time it starts, one name per millisecond at most (names are unique).
    this.lastNamed = Math.max(Date.now(), this.lastNamed + 1);
    const executionName = options.executionName ?? `local-${this.lastNamed.toString(36)}`;
    // StartExecution: Step Functions keeps an execution's name (90 days); the stack, for its life.
    if (this.executions.has(executionName)) {
      throw new StepFunctionsApiError(
        'ExecutionAlreadyExists',
        `Execution Already Exists: '${this.executionArn(executionName)}'`,
      );
    }
    return this.follow(this.executeOne(input, { ...options, executionName }, faults), faults);
  }

  /**
   * `RedriveExecution`: the execution `executionName`, which ended FAILED, ABORTED or TIMED_OUT, goes on
   * from its unsuccessful top-level state with that state's original input (the earlier states are not
   * run again), as the same execution: same name, `$$.Execution.Input` and `StartTime`, one more
   * `$$.Execution.RedriveCount`, `$$.Execution.RedriveTime` now. Its history goes on after an
   * `ExecutionRedriven` event (the limit counts all of it); when it ends, its status-change event is
   * delivered to the rules again. Throws `ExecutionDoesNotExist` or `ExecutionNotRedrivable` (running,
   * succeeded, or no room left in its history) at once, before anything runs.
   */
  startRedrive(executionName: string, options: RedriveOptions = {}): StartedRedrive {
    const record = this.executions.get(executionName);
    if (!record) {
      throw new StepFunctionsApiError(
        'ExecutionDoesNotExist',
        `Execution Does Not Exist: '${this.executionArn(executionName)}'`,
      );
    }
    const refusal = this.executions.redriveRefusal(
      record,
      options.limits?.historyEvents ?? MAX_HISTORY_EVENTS,
    );
    if (refusal) {
      throw new StepFunctionsApiError(
        'ExecutionNotRedrivable',
        `${refusal}: '${this.executionArn(executionName)}'`,
      );
    }
    const from = this.redriveStart(record);
    // The previous attempt's end is delivered before the redrive runs.
    const previous = record.settled;
    const redriveDate = Date.now();
    this.executions.redrive(record, redriveDate);
    const faults = new FaultPlan(options.faults ?? []);
    const started = previous.then(() =>
      this.executeOne(record.input, { ...options, executionName }, faults, from),
    );
    return { redriveDate, result: this.follow(started, faults) };
  }

  /** `startRedrive`, waiting for the redriven execution (and the run's next ones) to end. */
  async redrive(executionName: string, options: RedriveOptions = {}): Promise<ExecutionResult> {
    return this.startRedrive(executionName, options).result;
  }

  /**
   * Where a redrive starts: the last top-level state the execution entered (it did not exit it: it
   * failed there, or was stopped there), with the input its `StateEntered` event recorded; the
   * definition's start with the execution's input if it entered none. A Distributed Map state runs
   * again whole: AWS redrives only its Map Run's unsuccessful children, so locally the successful ones
   * are delivered again, which is stricter (more duplicate deliveries of idempotent items), never
   * more forgiving; its history records a new Map Run (`MapRunStarted`, a new ARN) where AWS redrives
   * the same one.
   */
  private redriveStart(record: ExecutionRecord): RedriveStart {
    const topLevel = this.definition.States as Record<string, unknown>;
    for (let i = record.history.length - 1; i >= 0; i--) {
      const details = record.history[i]?.stateEnteredEventDetails;
      if (details?.name !== undefined && details.name in topLevel) {
        return { record, state: details.name, stateInput: JSON.parse(details.input ?? 'null') };
      }
    }
    return { record, state: this.definition.StartAt, stateInput: record.input };
  }

  /** The run from its first execution on, each it handed the run to followed to its end, as one result. */
  private async follow(started: Promise<Started>, faults: FaultPlan): Promise<ExecutionResult> {
    const first = await started;
    const { executionName } = first.result;
    let result: ExecutionResult = first.result;
    let next = first.next;
    while (next) {
      const step = await next;
      result = {
        ...step.result,
        executionName,
        events: [...result.events, ...step.result.events],
        deliveries: [...result.deliveries, ...step.result.deliveries],
        executions: [...result.executions, ...step.result.executions],
      };
      next = step.next;
    }
    return { ...result, faultsStruck: faults.counts() };
  }

  /**
   * One execution (or, with `redrive`, its next attempt from its unsuccessful state); `next` is the
   * execution it handed the run to, if any, whose events reach `onEvent` once this one's have all been
   * passed.
   */
  private async executeOne(
    input: unknown,
    {
      executionName,
      onEvent,
      retryIntervalMs,
      waitMs,
      signal,
      limits = {},
    }: ExecuteOptions & { executionName: string },
    faults: FaultPlan,
    redrive?: RedriveStart,
  ): Promise<Started> {
    // Registered before anything is awaited: the execution exists (and is RUNNING) once it was started.
    const record = redrive?.record ?? this.executions.start(executionName, input, Date.now());
    const settled = deferred<void>();
    record.settled = settled.promise;
    const running = new Set<Invocation>();
    const payloadLimit = limits.payloadBytes ?? MAX_PAYLOAD_BYTES;
    const historyLimit = limits.historyEvents ?? MAX_HISTORY_EVENTS;
    const childHistoryLimit = limits.childHistoryEvents ?? MAX_HISTORY_EVENTS;
    // A Distributed Map starts its items as executions of this state machine, as the machine's role.
    const startRefused =
      this.distributed.maps.size > 0
        ? await this.machineRefused('states:StartExecution', this.stateMachineArn)
        : undefined;
    const { startDate } = record;
    markOpen(this.dataDir, { name: executionName, input, startDate });
    let limitFailure: { error: string; cause: string } | undefined;
    let historyLimitReached = false;
    const mapInputs = new Map<string, unknown>();
    // Checked at start (see `start`); the engine would otherwise check it again on every execution.
    // A redrive runs the same definition from the state it failed at.
    const machine = new StateMachine(
      redrive ? { ...this.definition, StartAt: redrive.state } : this.definition,
      { validationOptions: { noValidate: true } },
    );

    const overLimit = (error: string, cause: string) => {
      if (limitFailure) return;
      limitFailure = { error, cause };
      execution.abort();
    };
    // "Continue in a new execution": the run's next execution starts now, as StartExecution starts it;
    // its events reach `onEvent` once this one's have (they are one run's history, in order).
    let next: { name: string; input: string; ended: boolean; started: Promise<Started> } | undefined;
    const held: [EventLog, string][] = [];
    let relay: (event: EventLog, execution: string) => void = (event, execution) => {
      held.push([event, execution]);
    };
    const startNext = (name: string, nextInput: unknown) => {
      const text = JSON.stringify(nextInput);
      // The same name and input while it runs: the same execution (StartExecution is idempotent).
      if (next?.name === name && next.input === text && !next.ended) return;
      if (next || this.executions.has(name)) {
        throw new ServiceError(
          'StepFunctions.ExecutionAlreadyExistsException',
          `Execution Already Exists: '${this.executionArn(name)}'`,
        );
      }
      const options = {
        executionName: name,
        onEvent: (event: EventLog, execution: string) => relay(event, execution),
      };
      const started = this.executeOne(
        nextInput,
        { ...options, retryIntervalMs, waitMs, signal, limits },
        faults,
      );
      next = { name, input: text, ended: false, started };
      void started.then(() => {
        if (next) next.ended = true;
      });
    };
    const overrides = this.overrides(
      faults,
      running,
      mapInputs,
      payloadLimit,
      () => limitFailure,
      startRefused,
      startNext,
    );
    const execution = machine.run((redrive ? redrive.stateInput : input) as never, {
      overrides: {
        taskResourceLocalHandlers: overrides,
        ...(retryIntervalMs === undefined
          ? {}
          : {
              retryIntervalOverrides: Object.fromEntries(
                Object.keys(overrides).map((name) => [name, retryIntervalMs]),
              ),
            }),
        ...(waitMs === undefined
          ? {}
          : {
              // The Wait states are the top level's (batch mode's poll loop).
              waitTimeOverrides: Object.fromEntries(
                Object.entries(this.definition.States)
                  .filter(([, state]) => (state as { Type?: string }).Type === 'Wait')
                  .map(([name]) => [name, waitMs]),
              ),
            }),
      },
      context: {
        StateMachine: { Id: this.stateMachineArn, Name: this.stateMachineArn.split(':').at(-1) },
        Execution: {
          Id: this.executionArn(executionName),
          Name: executionName,
          Input: input as never,
          StartTime: new Date(startDate).toISOString(),
          RedriveCount: record.redriveCount,
          ...(record.redriveDate === undefined
            ? {}
            : { RedriveTime: new Date(record.redriveDate).toISOString() }),
        },
      } as never,
    });
    const aborted = () => {
      execution.abort();
      // The local process stops: its Lambdas die with it.
      for (const invocation of running) invocation.kill('Runtime.ExitError', 'the execution was aborted');
    };
    if (signal?.aborted) aborted();
    signal?.addEventListener('abort', aborted, { once: true });
    // StopExecution.
    record.stop = aborted;

    const events: EventLog[] = [];
    const history = new HistoryCounter(this.distributed);
    // A redrive's history goes on after the earlier attempts' (and its ExecutionRedriven): the limit counts all.
    history.parent = record.history.length;
    const consume = (async () => {
      for await (const raw of execution.eventLogs) {
        // A redriven execution does not start again: its history says ExecutionRedriven instead.
        if (redrive && raw.type === 'ExecutionStarted') continue;
        let event = raw;
        // A limit crossed ends the execution as failed, even where the engine went on to finish it.
        if ((event.type === 'ExecutionAborted' || event.type === 'ExecutionSucceeded') && limitFailure) {
          event = {
            type: 'ExecutionFailed',
            timestamp: event.timestamp,
            Error: limitFailure.error,
            Cause: limitFailure.cause,
          };
        }
        const { events: historyEvents, child } = history.add(event);
        // An item of a Distributed Map whose child execution could not start: AWS records none of its
        // events (the engine may enter the item before the Map's refusal aborts it).
        if (child && startRefused) continue;
        events.push(event);
        this.executions.record(executionName, event);
        onEvent?.(event, executionName);
        if (limitFailure) continue;
        if (!child && historyEvents >= historyLimit && !event.type.startsWith('Execution')) {
          historyLimitReached = true;
          overLimit(
            'States.Runtime',
            `The execution reached the maximum number of history events (${historyLimit}).`,
          );
        }
        // A child execution's end is one more event: at its limit, the child (and its Map Run) fails.
        if (child && historyEvents >= childHistoryLimit) {
          overLimit(
            'States.Runtime',
            `Child execution ${child.index} of the Map Run of "${child.map}" reached the maximum number of history events (${childHistoryLimit}), failing the Map Run.`,
          );
        }
        if ('state' in event && event.state) {
          const { name, type } = event.state;
          if (event.type === 'StateEntered' && type === 'Map') {
            mapInputs.set(name, event.state.input);
            if (startRefused && this.distributed.maps.has(name))
              overLimit('States.Runtime', startRefused.message);
          }
          for (const [what, value] of [
            ['input', event.type === 'StateEntered' ? event.state.input : undefined],
            ['result', event.type === 'StateExited' ? event.state.output : undefined],
          ] as const) {
            if (value !== undefined && bytes(value) > payloadLimit) {
              overLimit(
                'States.DataLimitExceeded',
                `The state/task '${name}' ${what === 'input' ? 'received an input' : 'returned a result'} with a size exceeding the maximum number of bytes service limit.`,
              );
            }
          }
        }
      }
    })();

    let status: ExecutionStatus;
    let output: unknown;
    try {
      output = await execution.result;
      status = 'SUCCEEDED';
    } catch {
      status = 'FAILED';
    }
    await consume;
    signal?.removeEventListener('abort', aborted);
    const last = events.at(-1) as { type: string; Error?: string; Cause?: unknown } | undefined;
    if (last?.type === 'ExecutionFailed') status = 'FAILED';
    if (last?.type === 'ExecutionAborted') status = 'ABORTED';
    if (last?.type === 'ExecutionTimeout') status = 'TIMED_OUT';
    const error =
      status === 'FAILED'
        ? (last?.Error ?? 'States.Runtime')
        : status === 'TIMED_OUT'
          ? 'States.Timeout'
          : undefined;
    const cause = status === 'FAILED' ? String(last?.Cause ?? '') : undefined;
    // DescribeExecution says how it ended from now on, while zombie Lambdas may still run, and before
    // the status-change event reaches the rules (AWS's order).
    this.executions.end(executionName, {
      status,
      output,
      error,
      cause,
      historyLimit: historyLimitReached,
    });
    let deliveries: RuleDelivery[];
    try {
      // Lambdas the execution started run to their end (a zombie keeps writing after a timeout).
      await Promise.all([...running].map((invocation) => invocation.settled));
      const event = this.statusChange(
        executionName,
        input,
        startDate,
        { status, output, error, cause },
        record,
      );
      deliveries = await this.deliver(event, faults);
      markClosed(this.dataDir, executionName);
    } finally {
      settled.resolve();
    }
    for (const [event, execution] of held.splice(0)) onEvent?.(event, execution);
    relay = (event, execution) => onEvent?.(event, execution);
    return {
      result: {
        executionName,
        status,
        ...(status === 'SUCCEEDED' ? { output } : {}),
        ...(error === undefined ? {} : { error }),
        ...(cause === undefined ? {} : { cause }),
        events,
        deliveries,
        faultsStruck: faults.counts(),
        executions: [executionName],
      },
      ...(next ? { next: next.started } : {}),
    };
  }

  /** The event Step Functions sends EventBridge when an execution ends (its real shape). */
  private statusChange(
    name: string,
    input: unknown,
    startDate: number,
    end: { status: ExecutionStatus; output?: unknown; error?: string; cause?: string },
    redrives: { redriveCount: number; redriveDate?: number } = { redriveCount: 0 },
  ): ExecutionStatusChange {
    const succeeded = end.status === 'SUCCEEDED';
    return {
      version: '0',
      id: crypto.randomUUID(),
      'detail-type': 'Step Functions Execution Status Change',
      source: 'aws.states',
      account: this.place.account,
      time: new Date().toISOString(),
      region: this.place.region,
      resources: [this.executionArn(name)],
      detail: {
        executionArn: this.executionArn(name),
        stateMachineArn: this.stateMachineArn,
        name,
        status: end.status,
        startDate,
        stopDate: Date.now(),
        input: JSON.stringify(input),
        inputDetails: { included: true },
        output: succeeded ? JSON.stringify(end.output) : null,
        outputDetails: succeeded ? { included: true } : null,
        error: end.error ?? null,
        cause: end.cause ?? null,
        // The detail is what DescribeExecution says (AWS's EventBridge documentation), its redrives included.
        redriveCount: redrives.redriveCount,
        redriveDate: redrives.redriveDate ?? null,
      },
    };
  }

  /**
   * Ends the executions an earlier process left open (it died with them) as AWS ends an execution
   * that fails: history, status-change event, rule targets ("Record failure" gives the pool back).
   */
  private async endAbandoned(): Promise<AbandonedExecution[]> {
    const ended: AbandonedExecution[] = [];
    for (const open of openExecutions(this.dataDir)) {
      const end = { status: 'FAILED' as const, error: ABANDONED_ERROR, cause: ABANDONED_CAUSE };
      appendEnd(this.dataDir, open.name, {
        timestamp: new Date(),
        type: 'ExecutionFailed',
        executionFailedEventDetails: { error: end.error, cause: end.cause },
      });
      const deliveries = await this.deliver(
        this.statusChange(open.name, open.input, open.startDate, end),
        new FaultPlan([]),
      );
      markClosed(this.dataDir, open.name);
      ended.push({ executionName: open.name, deliveries });
    }
    return ended;
  }

  /** EventBridge: runs the Lambda targets of every rule matching `event`, with Lambda's two async retries. */
  private async deliver(event: ExecutionStatusChange, faults: FaultPlan): Promise<RuleDelivery[]> {
    const deliveries: RuleDelivery[] = [];
    for (const target of targetsFor(this.template, this.names, event)) {
      const delivery: RuleDelivery = {
        rule: target.rule,
        functionName: this.function(target.functionArn).logicalId,
      };
      for (let attempt = 1; attempt <= 3; attempt++) {
        const invocation = await this.invoke(
          target.functionArn,
          { state: `Rule ${target.rule}`, input: target.input(event), attempt },
          faults,
          new Set(),
        );
        try {
          await invocation.reported;
          delete delivery.error;
          break;
        } catch (error) {
          delivery.error = `${(error as Error).name}: ${(error as Error).message}`;
        }
      }
      deliveries.push(delivery);
    }
    return deliveries;
  }

  /**
   * The task-state overrides: every `lambda:invoke` task invokes its function in-process, as its role,
   * with the execution's faults. Before each invocation the event log catches up, so that a limit the
   * previous state crossed stops the execution before another function runs.
   */
  private overrides(
    faults: FaultPlan,
    running: Set<Invocation>,
    mapInputs: Map<string, unknown>,
    payloadLimit: number,
    limitFailure: () => { error: string; cause: string } | undefined,
    startRefused: Denial | undefined,
    startNext: (name: string, input: unknown) => void,
  ): TaskHandlers {
    const overrides: TaskHandlers = {};
    const deliveries = new Map<string, number>();
    const attemptOf = (name: string, input: unknown) => {
      const key = `${name}\n${JSON.stringify(input)}`;
      const attempt = (deliveries.get(key) ?? 0) + 1;
      deliveries.set(key, attempt);
      return attempt;
    };
    const visit = (states: Record<string, Record<string, unknown>>, map?: string) => {
      for (const [name, state] of Object.entries(states)) {
        const processor = (state.ItemProcessor ?? state.Iterator) as { States: typeof states } | undefined;
        if (processor) visit(processor.States, name);
        if (state.Type !== 'Task') continue;
        if (state.Resource === START_EXECUTION) {
          overrides[name] = async (input) => {
            await new Promise((resolve) => setImmediate(resolve));
            const failure = limitFailure();
            if (failure) throw new ExecutionLimitFailure(failure.cause);
            const { StateMachineArn, Name, Input } = input as {
              StateMachineArn: string;
              Name: string;
              Input: unknown;
            };
            if (StateMachineArn !== this.stateMachineArn) {
              throw new ServiceError(
                'StepFunctions.StateMachineDoesNotExistException',
                `State Machine Does Not Exist: '${StateMachineArn}'`,
              );
            }
            const refused = await this.machineRefused('states:StartExecution', StateMachineArn);
            if (refused) {
              throw new ServiceError(
                'StepFunctions.AWSStepFunctionsException',
                `${refused.message} (Service: AWSStepFunctions; Status Code: 400; Error Code: AccessDeniedException; Request ID: ${crypto.randomUUID()}; Proxy: null)`,
              );
            }
            if (!EXECUTION_NAME.test(Name)) {
              throw new ServiceError('StepFunctions.InvalidNameException', `Invalid Name: '${Name}'`);
            }
            if (bytes(Input) > payloadLimit) {
              throw new ServiceError(
                'StepFunctions.InvalidExecutionInputException',
                'The execution input is larger than the maximum size of 262144 bytes.',
              );
            }
            startNext(Name, Input);
            // A lost reply: the execution started, the state machine sees the call fail and retries it.
            const info = {
              state: name,
              functionName: 'StepFunctions',
              input,
              attempt: attemptOf(name, input),
            };
            const lost = faults.armed('crash', info).find((fault) => fault.when === 'after');
            if (lost && faults.strike(lost)) {
              throw new ServiceError(
                'StepFunctions.AWSStepFunctionsException',
                'the reply of StartExecution was lost',
              );
            }
            return { ExecutionArn: this.executionArn(Name), StartDate: Date.now() / 1000 } as never;
          };
          continue;
        }
        if (state.Resource !== 'arn:aws:states:::lambda:invoke') {
          throw new Error(
            `local stack: task "${name}" uses ${String(state.Resource)}; only lambda:invoke and states:startExecution run locally`,
          );
        }
        const functionArn = (state.Parameters as { FunctionName: string }).FunctionName;
        overrides[name] = async (input) => {
          await new Promise((resolve) => setImmediate(resolve));
          const failure = limitFailure();
          if (failure) throw new ExecutionLimitFailure(failure.cause);
          // A Distributed Map item whose child execution could not start never runs.
          if (map !== undefined && this.distributed.maps.has(map) && startRefused) {
            throw new LambdaError('States.Runtime', startRefused.message);
          }
          const payload = (input as { Payload: unknown }).Payload;
          if (bytes(payload) > payloadLimit) throw dataLimit(name, 'input');
          // Step Functions invokes the function as the state machine's role; Lambda refuses it with a 403.
          const refused = await this.machineRefused('lambda:InvokeFunction', functionArn);
          if (refused) {
            throw new LambdaError(
              'Lambda.AWSLambdaException',
              `${refused.message} (Service: AWSLambda; Status Code: 403; Error Code: AccessDeniedException; Request ID: ${crypto.randomUUID()}; Proxy: null)`,
            );
          }
          const info = {
            state: name,
            input: payload,
            attempt: attemptOf(name, payload),
            ...(map === undefined ? {} : { mapInput: mapInputs.get(map) }),
          };
          const invocation = await this.invoke(functionArn, info, faults, running);
          const duplicate = faults.armed('duplicate', invocation.info)[0];
          if (duplicate && faults.strike(duplicate)) {
            // At-least-once delivery: the same input again, overlapping; its result goes nowhere.
            const twin = await this.invoke(functionArn, info, faults, running);
            twin.reported.catch(() => undefined);
          }
          const result = await invocation.reported;
          if (bytes(result) > payloadLimit) throw dataLimit(name, 'result');
          return { Payload: result ?? null, StatusCode: 200, ExecutedVersion: '$LATEST' } as never;
        };
      }
    };
    visit(this.definition.States as unknown as Record<string, Record<string, unknown>>);
    return overrides;
  }

  /** Whether the state machine's role is refused `action` on `resource` (IAM on), and how AWS says so. */
  private async machineRefused(action: string, resource: string): Promise<Denial | undefined> {
    if (!this.machineIam) return undefined;
    const { evaluator, principal } = this.machineIam;
    return evaluator.check(principal, [{ action, resource }]);
  }

  async close(): Promise<void> {
    await this.stepFunctions?.close();
    await this.servers.close();
  }
}

/**
 * Imports a function's handler module. When the CLI runs from its bundle (`infra/cli/bundle.mjs` sets the
 * global), a handler source (`<root>/functions/<stage>/handler.ts`) is its bundled counterpart
 * (`<bundle>/functions/<stage>/handler.mjs`), which shares the bundle's modules with the CLI.
 */
function importEntry(entry: string): Promise<{ handler?: unknown }> {
  const bundle = (globalThis as Record<symbol, string | undefined>)[Symbol.for('selfinstruct.cliBundle')];
  const relative = path.relative(PROJECT_ROOT, entry);
  const bundled =
    bundle && entry.endsWith('.ts') && !relative.startsWith('..')
      ? path.join(bundle, relative.replace(/\.ts$/, '.mjs'))
      : entry;
  return import(pathToFileURL(bundled).href);
}

/** Step Functions' error for a payload over its limit. */
function dataLimit(state: string, what: 'input' | 'result'): Error {
  const error = new LambdaError(
    'States.DataLimitExceeded',
    `The state/task '${state}' ${what === 'input' ? 'received an input' : 'returned a result'} with a size exceeding the maximum number of bytes service limit.`,
  );
  return error;
}

/** The local names and ARNs of the template's resources (what `Ref` and `Fn::GetAtt …Arn` resolve to). */
function localNames(
  template: CfnTemplate,
  { region, account }: Place,
  { bucketId, tableId }: { bucketId: string; tableId: string },
): LocalNames {
  const bucketName = `local-${bucketId.toLowerCase()}`;
  const secretArn = (id: string) =>
    `arn:aws:secretsmanager:${region}:${account}:secret:${String(template.Resources[id]?.Properties?.Name ?? id)}-LOCAL0`;
  const arn = (id: string): string => {
    switch (template.Resources[id]?.Type) {
      case 'AWS::Lambda::Function':
        return `arn:aws:lambda:${region}:${account}:function:${id}`;
      case 'AWS::S3::Bucket':
        return `arn:aws:s3:::${bucketName}`;
      case 'AWS::DynamoDB::GlobalTable':
      case 'AWS::DynamoDB::Table':
        return `arn:aws:dynamodb:${region}:${account}:table/${id}`;
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${account}:role/${id}`;
      case 'AWS::StepFunctions::StateMachine':
        return `arn:aws:states:${region}:${account}:stateMachine:SelfInstruct`;
      case 'AWS::SecretsManager::Secret':
        return secretArn(id);
      case 'AWS::Logs::LogGroup':
        return `arn:aws:logs:${region}:${account}:log-group:${id}:*`;
      case 'AWS::Events::Rule':
        return `arn:aws:events:${region}:${account}:rule/${id}`;
      case 'AWS::Bedrock::Guardrail':
        return `arn:aws:bedrock:${region}:${account}:guardrail/${guardrailId(id)}`;
      default:
        return `arn:aws:local:${region}:${account}:${id}`;
    }
  };
  // A guardrail's id is lower-case letters and digits; its first version is 1.
  const guardrailId = (id: string) =>
    id
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 64);
  const attribute = (id: string, name: string): string | undefined => {
    const resource = template.Resources[id];
    if (resource?.Type === 'AWS::Bedrock::Guardrail') {
      return { GuardrailArn: arn(id), GuardrailId: guardrailId(id), Version: 'DRAFT' }[name];
    }
    if (resource?.Type === 'AWS::Bedrock::GuardrailVersion') {
      if (name === 'Version') return '1';
      const of = (resource.Properties?.GuardrailIdentifier as { 'Fn::GetAtt'?: [string, string] })?.[
        'Fn::GetAtt'
      ]?.[0];
      return of === undefined ? undefined : attribute(of, name);
    }
    return undefined;
  };
  return {
    region,
    arn,
    attribute,
    ref: (id) => {
      if (id === bucketId) return bucketName;
      if (id === tableId) return tableId;
      // The Ref of a state machine or a secret is its ARN.
      const type = template.Resources[id]?.Type;
      if (type === 'AWS::StepFunctions::StateMachine' || type === 'AWS::SecretsManager::Secret')
        return arn(id);
      return id;
    },
  };
}

async function createTable(name: string, properties: Record<string, unknown>): Promise<void> {
  const client = new DynamoDBClient(awsClientConfig('dynamodb'));
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
  const client = new S3Client(awsClientConfig('s3'));
  try {
    await client.send(new HeadBucketCommand({ Bucket: name }));
  } catch {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  }
}
