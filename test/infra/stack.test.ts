import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRunInput } from '../../functions/prepare/core.ts';
import {
  BATCH_ITEM_STATES,
  ITERATION_STATES,
  MAP_ITEM_STATES,
  RUN_ONCE_STATES,
  SHARD_ITEM_STATES,
  SHARDED_GATE_PATH_STATES,
} from '../../functions/shared/pricing/aws-usage.ts';
import { INSTRUCTION_BATCH_STATES, STAGES } from '../../functions/stages.ts';
import { buildApp } from '../../infra/app.ts';
import { cdkJsonContext } from '../../infra/local/synth.ts';
import { RETRYABLE_ERRORS } from '../../infra/workflow.ts';

interface State {
  Type: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next: string; And?: unknown[] }[];
  Retry?: { ErrorEquals: string[]; BackoffRate?: number; MaxAttempts?: number }[];
  Catch?: { ErrorEquals: string[]; Next: string }[];
  MaxConcurrencyPath?: string;
  ItemProcessor?: { States: Record<string, State>; ProcessorConfig?: Record<string, string> };
  Label?: string;
  ItemsPath?: string;
  ItemSelector?: Record<string, string>;
  TimeoutSeconds?: number;
  Resource?: string;
  Parameters?: Record<string, unknown>;
}

let template: Template;
let states: Record<string, State>;

beforeAll(() => {
  const { app, stack } = buildApp(
    new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } }),
  );
  app.synth(); // throws on any unacknowledged cdk-nag finding
  template = Template.fromStack(stack);
  const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  if (!machine) throw new Error('no state machine in the template');
  // The definition is an Fn::Join of strings and ARNs; the tokens are irrelevant to its shape.
  const parts = (machine.Properties.DefinitionString['Fn::Join'][1] as unknown[]).map((part) =>
    typeof part === 'string' ? part : 'arn:aws:lambda:region:account:function:x',
  );
  states = JSON.parse(parts.join('')).States;
});

describe('the state machine', () => {
  it('runs the stages in the Self-Instruct order', () => {
    const order = [
      'Start run',
      'Prepare run',
      'Plan instructions',
      'Generate instructions',
      'Collect instructions',
      'Gate in shards?',
    ];
    for (let i = 0; i < order.length - 1; i++) {
      expect(states[order[i] as string]?.Next).toBe(order[i + 1]);
    }
    expect(states['Gate in shards?']?.Default).toBe('Filter and deduplicate');
    expect(states['Filter and deduplicate']?.Next).toBe('Batch the instances?');
    expect(states['Batch the instances?']?.Default).toBe('Generate instances');
    expect(states['Generate instances']?.Next).toBe('Save iteration');
    expect(states['Save iteration']?.Next).toBe('Enough instructions?');
  });

  it('loops from "Enough instructions?" back to generation while below target, cap and budget, else exports', () => {
    const choice = states['Enough instructions?'];
    expect(choice?.Type).toBe('Choice');
    expect(choice?.Choices).toHaveLength(2);
    expect(choice?.Choices?.[0]?.Next).toBe('Plan instructions');
    expect(JSON.stringify(choice?.Choices?.[0]?.And)).toContain(
      '"Variable":"$.progress.added","NumericLessThanPath":"$.config.target"',
    );
    expect(JSON.stringify(choice?.Choices?.[0]?.And)).toContain(
      '"Variable":"$.progress.iteration","NumericLessThanPath":"$.config.maxIterations"',
    );
    expect(JSON.stringify(choice?.Choices?.[0]?.And)).toContain(
      '{"Variable":"$.progress.withinBudget","BooleanEquals":true}',
    );
    expect(JSON.stringify(choice?.Choices?.[0]?.And)).toContain(
      '{"Variable":"$.progress.withinHistory","BooleanEquals":true}',
    );
    // The same conditions but the history's: the run goes on in a new execution.
    const [loop, handOff] = choice?.Choices ?? [];
    expect(handOff?.Next).toBe('Continue in a new execution');
    expect(handOff?.And).toEqual(
      loop?.And?.filter(
        (rule) => JSON.stringify(rule) !== '{"Variable":"$.progress.withinHistory","BooleanEquals":true}',
      ),
    );
    expect(choice?.Default).toBe('Export dataset');
    expect(states['Export dataset']?.Next).toBe('Done');
  });

  it('continues a run whose history is full in a new execution of itself, named after the run, with the run state as input', () => {
    const handOff = states['Continue in a new execution'];
    expect(handOff?.Resource).toBe('arn:aws:states:::states:startExecution');
    expect(handOff?.Parameters).toEqual({
      'StateMachineArn.$': '$$.StateMachine.Id',
      'Name.$': "States.Format('{}-{}', $.runId, States.MathAdd($.progress.execution, 1))",
      Input: {
        continueRun: { 'runId.$': '$.runId', 'config.$': '$.config', 'progress.$': '$.progress' },
        'AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$': '$$.Execution.Id',
      },
    });
    // Started by an earlier attempt and ended since: never retried, caught; other errors retried.
    expect(handOff?.Retry?.map((retry) => [retry.ErrorEquals, retry.MaxAttempts])).toEqual([
      [['StepFunctions.ExecutionAlreadyExistsException'], 0],
      [['States.TaskFailed'], 6],
    ]);
    expect(handOff?.Catch).toEqual([
      {
        ErrorEquals: ['StepFunctions.ExecutionAlreadyExistsException'],
        ResultPath: null,
        Next: 'Continued in a new execution',
      },
    ]);
    expect(handOff?.Next).toBe('Continued in a new execution');
    expect(states['Continued in a new execution']).toMatchObject({ Type: 'Pass', End: true });
  });

  it('gates a pool from `shardGateAbove` on in shards: plan, a Map of highest scores, decisions, a Map of top 10 and mean, merge', () => {
    const choice = states['Gate in shards?'];
    expect(choice?.Type).toBe('Choice');
    // Only when the run's config has the threshold: a redrive of a run from before it gates in-process.
    expect(choice?.Choices).toEqual([
      {
        And: [
          { Variable: '$.config.shardGateAbove', IsPresent: true },
          { Variable: '$.progress.poolSize', NumericGreaterThanEqualsPath: '$.config.shardGateAbove' },
        ],
        Next: 'Plan the gate shards',
        Comment: expect.any(String),
      },
    ]);
    const order = [
      'Plan the gate shards',
      'Score gate shards',
      'Decide on the shard scores',
      'Score gate shards again',
      'Filter and merge the shard scores',
      'Batch the instances?',
    ];
    for (let i = 0; i < order.length - 1; i++) {
      expect(states[order[i] as string]?.Next, order[i]).toBe(order[i + 1]);
    }
    for (const [map, task, step] of [
      ['Score gate shards', 'Score a gate shard', 'highest'],
      ['Score gate shards again', 'Score a gate shard again', 'scores'],
    ] as const) {
      const state = states[map] as State & { ResultPath?: unknown };
      expect(state.Type).toBe('Map');
      // Shard descriptors (keys and offsets) from the plan; the results stay in S3.
      expect(state.ItemsPath).toBe('$.gateShards.shards');
      expect(state.MaxConcurrencyPath).toBe('$.config.gateShards');
      expect(state.ItemSelector).toMatchObject({ 'shard.$': '$$.Map.Item.Value', step });
      expect(state.ResultPath).toBeNull();
      expect(Object.keys(state.ItemProcessor?.States ?? {})).toEqual([task]);
      expect(state.ItemProcessor?.States[task]?.Retry?.[0]?.ErrorEquals).toEqual(RETRYABLE_ERRORS);
    }
    const phases = (name: string) =>
      (states[name] as State & { Parameters?: { Payload?: { gateShards?: unknown } } }).Parameters?.Payload
        ?.gateShards;
    expect(phases('Plan the gate shards')).toEqual({ phase: 'plan' });
    expect(phases('Decide on the shard scores')).toEqual({
      phase: 'decide',
      'shards.$': '$.gateShards.shards',
    });
    expect(phases('Filter and merge the shard scores')).toEqual({
      phase: 'merge',
      'shards.$': '$.gateShards.shards',
    });
    expect((states['Filter and merge the shard scores'] as { ResultPath?: string }).ResultPath).toBe(
      '$.gated',
    );
  });

  it('fans out instruction generation in a Map over batches of call indices, its concurrency from the run input', () => {
    const map = states['Generate instructions'] as State & {
      ResultPath?: unknown;
      ItemSelector?: Record<string, unknown>;
    };
    expect(map.Type).toBe('Map');
    // The plan's batches: call ranges, never payloads; each batch's candidates stay in S3.
    expect(map.ItemsPath).toBe('$.instructionPlan.batches');
    expect(map.MaxConcurrencyPath).toBe('$.config.mapConcurrency');
    expect(map.ItemSelector?.instructions).toEqual({
      phase: 'batch',
      'prompts.$': '$.instructionPlan.prompts',
      'batch.$': '$$.Map.Item.Value',
    });
    expect(map.ResultPath).toBeNull();
    expect(Object.keys(map.ItemProcessor?.States ?? {})).toEqual(['Generate a batch of instructions']);
    const batch = map.ItemProcessor?.States['Generate a batch of instructions'];
    expect(batch?.Retry?.[0]?.ErrorEquals).toEqual(RETRYABLE_ERRORS);
    expect(batch?.Retry?.[0]).toMatchObject({ BackoffRate: 2, MaxAttempts: 6 });
    expect(batch?.TimeoutSeconds).toBe(STAGES.generateInstructions.timeoutSeconds);

    const payload = (name: string) =>
      (states[name] as State & { Parameters?: { Payload?: { instructions?: unknown } } }).Parameters?.Payload
        ?.instructions;
    expect(payload('Plan instructions')).toEqual({ phase: 'plan' });
    expect(payload('Collect instructions')).toEqual({
      phase: 'collect',
      'batches.$': '$.instructionPlan.batches',
    });
    expect((states['Plan instructions'] as { ResultPath?: string }).ResultPath).toBe('$.instructionPlan');
    expect((states['Collect instructions'] as { ResultPath?: string }).ResultPath).toBe('$.generated');
  });

  it('fans out instance generation in a Map over chunks of ids, its concurrency from the run input', () => {
    const map = states['Generate instances'];
    expect(map?.Type).toBe('Map');
    expect(map?.ItemsPath).toBe('$.gated.chunks');
    expect(map?.MaxConcurrencyPath).toBe('$.config.mapConcurrency');
    expect(map?.ItemSelector?.['chunk.$']).toBe('$$.Map.Item.Value');
    expect(Object.keys(map?.ItemProcessor?.States ?? {})).toEqual(['Generate instances for a chunk']);
  });

  it('runs each instruction batch, chunk and gate shard as a Standard child execution (Distributed Map), items and result inline, no failure tolerated', () => {
    for (const [name, label] of [
      ['Generate instructions', 'Generateinstructions'],
      ['Generate instances', 'Generateinstances'],
    ] as const) {
      const map = states[name];
      expect(map?.ItemProcessor?.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
      expect(map?.Label).toBe(label);
      for (const absent of ['ItemReader', 'ResultWriter', 'ItemBatcher', 'ToleratedFailurePercentage']) {
        expect(map).not.toHaveProperty(absent);
      }
      expect(map).not.toHaveProperty('ToleratedFailureCount');
    }
    // So do the gate's shards: no Map's items grow the parent's history.
    const maps = Object.values(states).filter((state) => state.Type === 'Map');
    expect(maps.length).toBe(4);
    for (const each of maps) expect(each.ItemProcessor?.ProcessorConfig?.Mode).toBe('DISTRIBUTED');
  });

  it('lets the state machine start its own child executions and watch, stop and redrive only its own', () => {
    const machineRole = Object.keys(template.findResources('AWS::IAM::Role')).find((id) =>
      id.startsWith('WorkflowStateMachineRole'),
    );
    const machine = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'))[0];
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: machineRole }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 'states:StartExecution', Resource: { Ref: machine } }),
          Match.objectLike({ Action: ['states:DescribeExecution', 'states:StopExecution'] }),
          Match.objectLike({
            Action: 'states:RedriveExecution',
            Resource: [
              '/Generateinstances:*',
              '/Generateinstructions:*',
              '/Scoregateshards:*',
              '/Scoregateshardsagain:*',
            ].map((label) => ({ 'Fn::Join': ['', Match.arrayWith([label])] })),
          }),
        ]),
      },
    });
  });

  it('retries transient errors and crashes with exponential backoff on every Lambda task', () => {
    const tasks = [
      ...Object.entries(states),
      ...Object.values(states).flatMap((state) => Object.entries(state.ItemProcessor?.States ?? {})),
    ].filter(([, state]) => state.Type === 'Task' && Boolean(state.Resource?.endsWith(':lambda:invoke')));
    expect(tasks.length).toBe(15);
    for (const [, state] of tasks) {
      const retry = state.Retry?.[0];
      expect(retry?.ErrorEquals).toEqual(RETRYABLE_ERRORS);
      expect(retry?.ErrorEquals).toContain('ModelThrottled');
      // What a crashed or timed-out function reports: every stage is safe to run again.
      expect(retry?.ErrorEquals).toEqual(
        expect.arrayContaining([
          'Lambda.Unknown',
          'Sandbox.Timedout',
          'Runtime.ExitError',
          'Runtime.OutOfMemory',
        ]),
      );
      expect(retry?.BackoffRate).toBe(2);
      expect(retry?.MaxAttempts).toBeGreaterThan(1);
    }
  });

  it('fails the execution at the failing stage (no catch-all), so a redrive restarts it there', () => {
    const all = [
      ...Object.values(states),
      ...Object.values(states).flatMap((state) => Object.values(state.ItemProcessor?.States ?? {})),
    ];
    // The one Catch: the hand-off's, of the one error that means the next execution was started.
    expect(all.filter((state) => state.Catch).map((state) => state.Catch)).toEqual([
      [expect.objectContaining({ ErrorEquals: ['StepFunctions.ExecutionAlreadyExistsException'] })],
    ]);
    expect(all.filter((state) => state.Type === 'Fail')).toEqual([]);
    expect(Object.keys(states)).not.toContain('Record failure');
  });

  it('records a failed, timed-out or aborted run from the execution’s status-change event', () => {
    const [machineId] = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'));
    const [recordFailure] = Object.entries(template.findResources('AWS::Lambda::Function')).filter(
      ([, fn]) => fn.Metadata?.['SelfInstruct:Entry'] === 'functions/record-failure/handler.ts',
    );
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [{ Ref: machineId }], status: ['FAILED', 'TIMED_OUT', 'ABORTED'] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [recordFailure?.[0], 'Arn'] } })],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [recordFailure?.[0], 'Arn'] },
    });
  });

  it('gives every task its function’s timeout, which the local stack enforces as AWS does', () => {
    const timeouts = Object.fromEntries(
      Object.entries(template.findResources('AWS::Lambda::Function')).map(([id, fn]) => [
        id,
        fn.Properties.Timeout,
      ]),
    );
    const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
    // The definition with each function's ARN replaced by its logical id.
    const definition = machine?.Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] };
    const text = definition['Fn::Join'][1]
      .map((part) =>
        typeof part === 'string' ? part : String((part as { 'Fn::GetAtt'?: [string] })['Fn::GetAtt']?.[0]),
      )
      .join('');
    const all = JSON.parse(text).States as Record<
      string,
      State & { TimeoutSeconds?: number; Parameters?: { FunctionName?: string } }
    >;
    const nested = Object.values(all).flatMap((state) => Object.values(state.ItemProcessor?.States ?? {}));
    const tasks = [...Object.values(all), ...nested]
      .filter((state) => state.Type === 'Task' && Boolean(state.Resource?.endsWith(':lambda:invoke')))
      .map(
        (state) =>
          [
            String((state as { Parameters?: { FunctionName?: string } }).Parameters?.FunctionName),
            (state as { TimeoutSeconds?: number }).TimeoutSeconds,
          ] as const,
      );
    expect(tasks).toHaveLength(15);
    for (const [id, seconds] of tasks) expect(seconds).toBe(timeouts[id]);
  });

  it('sends the instances of a batch run through a bounded Wait/poll loop before the Map', () => {
    const choice = states['Batch the instances?'];
    expect(choice?.Choices).toEqual([
      {
        And: [
          { Variable: '$.config.batch', IsPresent: true },
          { Variable: '$.config.batch', BooleanEquals: true },
        ],
        Next: 'Submit the instance batch',
        Comment: expect.any(String),
      },
    ]);
    expect(choice?.Default).toBe('Generate instances');
    expect(states['Submit the instance batch']?.Next).toBe('Instance batch submitted?');
    const submitted = states['Instance batch submitted?'];
    expect(submitted?.Choices?.[0]).toMatchObject({
      Variable: '$.batching.batch.status',
      StringEquals: 'submitted',
      Next: 'Wait for the instance batch',
    });
    // Too few records for a job: straight to the Map, on demand.
    expect(submitted?.Default).toBe('Generate instances');
    const wait = states['Wait for the instance batch'] as State & { SecondsPath?: string };
    expect(wait.Type).toBe('Wait');
    expect(wait.SecondsPath).toBe('$.batching.batch.waitSeconds');
    expect(wait.Next).toBe('Check the instance batch');
    expect(states['Check the instance batch']?.Next).toBe('Batch done?');
    const done = states['Batch done?'];
    expect(done?.Choices?.[0]).toMatchObject({
      Variable: '$.batching.batch.status',
      StringEquals: 'completed',
      Next: 'Generate instances',
    });
    // Still running: wait again; the look counter in the state bounds the loop (the check step fails
    // the run at maxPolls looks).
    expect(done?.Default).toBe('Wait for the instance batch');
    // Both steps run in the Generate instances function, told apart by `step`.
    const fn = (name: string) =>
      (states[name] as { Parameters?: { FunctionName?: unknown; Payload?: { step?: string } } }).Parameters;
    expect(fn('Submit the instance batch')?.Payload?.step).toBe('submit-batch');
    expect(fn('Check the instance batch')?.Payload?.step).toBe('check-batch');
    const chunkTask = states['Generate instances']?.ItemProcessor?.States['Generate instances for a chunk'] as
      | { Parameters?: { FunctionName?: unknown } }
      | undefined;
    expect(fn('Submit the instance batch')?.FunctionName).toEqual(chunkTask?.Parameters?.FunctionName);
  });

  it('enters the states the AWS cost model counts, per iteration, per Map item and once per run', () => {
    const loop: string[] = [];
    for (let name: string | undefined = INSTRUCTION_BATCH_STATES.plan; name && !loop.includes(name); ) {
      loop.push(name);
      const state: State | undefined = states[name];
      // The gate's choice: an iteration below `shardGateAbove` (the sharded path has its own states).
      name =
        state?.Type === 'Choice'
          ? name === 'Gate in shards?' || name === 'Batch the instances?'
            ? state.Default
            : undefined
          : state?.Next;
    }

    expect(loop).toEqual([...ITERATION_STATES]);
    expect(Object.keys(states['Generate instances']?.ItemProcessor?.States ?? {})).toEqual([
      ...MAP_ITEM_STATES,
    ]);
    expect(Object.keys(states['Generate instructions']?.ItemProcessor?.States ?? {})).toEqual([
      ...BATCH_ITEM_STATES,
    ]);
    // From a pool past `shardGateAbove`: the sharded path instead of Filter, on to "Batch the instances?"
    // (as Filter's), then the instances Map.
    const sharded: string[] = [];
    let name = states['Gate in shards?']?.Choices?.[0]?.Next;
    for (; name && name !== 'Batch the instances?' && !sharded.includes(name); name = states[name]?.Next) {
      sharded.push(name);
    }
    expect(sharded).toEqual([...SHARDED_GATE_PATH_STATES]);
    expect(name).toBe('Batch the instances?');
    expect(states[STAGES.filter.state]?.Next).toBe('Batch the instances?');
    expect(
      [STAGES.gateShard.mapState, 'Score gate shards again'].flatMap((map) =>
        Object.keys(states[map]?.ItemProcessor?.States ?? {}),
      ),
    ).toEqual([...SHARD_ITEM_STATES]);
    expect(states['Start run']?.Next).toBe('Prepare run');
    expect(states['Prepare run']?.Next).toBe('Plan instructions');
    expect(states['Export dataset']?.Next).toBe('Done');
    for (const name of RUN_ONCE_STATES) expect(states[name], name).toBeDefined();
  });

  it('times each task out with its function', () => {
    const tasks = {
      ...states,
      ...states['Generate instances']?.ItemProcessor?.States,
      ...states['Generate instructions']?.ItemProcessor?.States,
      ...states['Score gate shards']?.ItemProcessor?.States,
    };
    for (const stage of Object.values(STAGES).filter((spec) => !('ruleTarget' in spec))) {
      expect(tasks[stage.state]?.TimeoutSeconds, stage.state).toBe(stage.timeoutSeconds);
    }
  });

  it('uses JSONPath and Lambda tasks only, so the same definition runs locally', () => {
    const json = JSON.stringify(states);
    expect(json).not.toContain('JSONata');
    expect(json).not.toContain('"Assign"');
    expect(json).not.toContain('arn:aws:states:::aws-sdk:');
  });

  it('is a Standard state machine with tracing and logging', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
    });
  });
});

describe('storage', () => {
  it('keeps the bucket encrypted, private, versioned and TLS-only', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: Match.objectLike({}),
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: Match.objectLike({
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      }),
    });
  });

  it('has an on-demand table with point-in-time recovery keyed by pk/sk', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      Replicas: [
        Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } }),
      ],
    });
  });

  it('runs one Node 22 function per stage of the registry, with its memory, timeout and /tmp', () => {
    const functions = Object.values(template.findResources('AWS::Lambda::Function')).filter(
      (fn) => fn.Metadata?.['SelfInstruct:Entry'],
    );
    expect(functions.map((fn) => fn.Metadata['SelfInstruct:Entry']).sort()).toEqual([
      'functions/export/handler.ts',
      'functions/filter/handler.ts',
      'functions/gate-shard/handler.ts',
      'functions/generate-instances/handler.ts',
      'functions/generate-instructions/handler.ts',
      'functions/prepare/handler.ts',
      'functions/record-failure/handler.ts',
      'functions/save-iteration/handler.ts',
    ]);
    for (const fn of functions) expect(fn.Properties.Runtime).toBe('nodejs22.x');
    const sizes = Object.fromEntries(
      functions.map((fn) => [
        fn.Metadata['SelfInstruct:Entry'],
        [fn.Properties.MemorySize, fn.Properties.Timeout, fn.Properties.EphemeralStorage?.Size],
      ]),
    );
    expect(sizes).toEqual(
      Object.fromEntries(
        Object.values(STAGES).map((stage) => [
          `functions/${stage.folder}/handler.ts`,
          [
            stage.memoryMb,
            stage.timeoutSeconds,
            'ephemeralStorageMb' in stage ? stage.ephemeralStorageMb : undefined,
          ],
        ]),
      ),
    );
    expect(sizes['functions/export/handler.ts']?.[2]).toBe(1536);
  });
});

describe('triggers', () => {
  const machineTarget = Match.arrayWith([
    Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('StateMachine') } }),
  ]);

  /** The rule that starts a run on an upload under `prefix`, and the run input it gives for `key`. */
  const uploadRule = (prefix: string) => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: {
          bucket: { name: [{ Ref: Match.stringLikeRegexp('DataBucket') }] },
          object: { key: [{ prefix }] },
        },
      },
      Targets: machineTarget,
    });
    const [rule] = Object.values(
      template.findResources('AWS::Events::Rule', {
        Properties: {
          EventPattern: Match.objectLike({ detail: Match.objectLike({ object: { key: [{ prefix }] } }) }),
        },
      }),
    );
    const transformer = rule?.Properties.Targets[0].InputTransformer;
    expect(transformer.InputPathsMap).toEqual({ 'detail-object-key': '$.detail.object.key' });
    // EventBridge substitutes the key as a JSON string.
    return (key: string) =>
      JSON.parse(transformer.InputTemplate.replace('<detail-object-key>', JSON.stringify(key)));
  };

  it('starts a run when a seed file is uploaded under seeds/, with the uploaded key as its seed file', () => {
    const input = uploadRule('seeds/')('seeds/legal/tasks.jsonl');
    expect(input).toMatchObject({ seedKey: 'seeds/legal/tasks.jsonl', trigger: 'upload' });
  });

  it('starts a backtranslation run when a document is uploaded under documents/, on its folder', () => {
    const input = uploadRule('documents/')('documents/legal/contract.pdf');
    expect(input).toMatchObject({
      method: 'backtranslate',
      documents: 'documents/legal/contract.pdf',
      trigger: 'upload',
    });
    // The run it starts grows the folder's pool, with the method's curation threshold.
    expect(parseRunInput(input, 'run-1')).toMatchObject({ pool: 'legal', minQuality: 4 });
  });

  it('grows the pool every night on a schedule', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'cron(0 3 * * ? *)',
      Targets: machineTarget,
    });
    const [rule] = Object.values(
      template.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: Match.anyValue() } }),
    );
    expect(JSON.parse(rule?.Properties.Targets[0].Input)).toMatchObject({
      trigger: 'schedule',
      target: 200,
      pool: 'default',
    });
  });
});
