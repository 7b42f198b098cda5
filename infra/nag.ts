/**
 * cdk-nag (AwsSolutions) runs on every synthesis and any unacknowledged finding fails it.
 * Each acknowledgement below is scoped to the construct it concerns and says why it does not apply.
 */
import { type App, type CfnResource, Validations } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { BATCH_INPUT_FOLDER, BATCH_OUTPUT_FOLDER, RUNS_PREFIX } from '../functions/shared/keys.ts';
import { STAGES, type StageKey, type StageSpec } from '../functions/stages.ts';
import { inferenceProfileModel } from './bedrock-ids.ts';
import { mapRunLabel } from './per-item-map.ts';
import type { RoleWithUnscopedPolicy } from './roles.ts';
import type { SelfInstructStack } from './stack.ts';

const ack = (scope: IConstruct, rule: string, reason: string) =>
  Validations.of(scope).acknowledge({ id: `AwsSolutions::AwsSolutions-${rule}`, reason });

/** The S3 actions CDK's `grantRead` emits with wildcards. */
const S3_READ_ACTIONS = ['s3:GetBucket*', 's3:GetObject*', 's3:List*'];
/** The S3 action CDK's `grantPut` emits with a wildcard. */
const S3_PUT_ACTIONS = ['s3:Abort*'];

/**
 * Acknowledges `Resource::*` on a role's policy of unscoped actions only (X-Ray, log delivery: see
 * `roles.ts`), never on the role: a `*` statement of any other action fails synthesis.
 */
function ackUnscoped(role: RoleWithUnscopedPolicy, reason: string): void {
  if (role.unscopedPolicy) ack(role.unscopedPolicy, 'IAM5[Resource::*]', reason);
}

export function applyNag(app: App, stack: SelfInstructStack): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const bucketArn = `<${stack.getLogicalId(stack.bucket.node.defaultChild as CfnResource)}.Arn>`;

  ack(
    stack.bucket,
    'S1',
    'Access is through the stack roles only (public access blocked, TLS enforced); CloudTrail data events are the audit trail of choice, so no separate access-log bucket is created.',
  );

  ack(
    stack.apiKeySecret,
    'SMG4',
    'The secret holds a third-party provider API key, which AWS cannot rotate; rotate it at the provider and put the new value.',
  );

  for (const [key, spec] of Object.entries(STAGES) as [StageKey, StageSpec][]) {
    const fn = stack.workflow.functions[key];
    const role = stack.workflow.roles[key];
    ack(
      fn,
      'L1',
      'Node.js 22 is the runtime this project targets and tests; Node 24 is adopted deliberately, not implicitly.',
    );
    ackUnscoped(
      role,
      'X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) has no resource-level permissions.',
    );
    // Exactly the wildcards of the grants this stage has (functions/stages.ts).
    const actions = [
      ...(spec.s3.read.length > 0 ? S3_READ_ACTIONS : []),
      ...(spec.s3.write.length > 0 ? S3_PUT_ACTIONS : []),
    ];
    for (const action of actions) {
      ack(
        role,
        `IAM5[Action::${action}]`,
        `${action} comes from CDK's grantRead/grantPut on this stack's bucket only.`,
      );
    }
    for (const prefix of new Set([...spec.s3.read, ...spec.s3.get, ...spec.s3.write])) {
      ack(
        role,
        `IAM5[Resource::${bucketArn}/${prefix}*]`,
        `"${spec.state}" reads or writes objects named per pool and run under ${prefix}: the grant is that prefix of this stack's bucket.`,
      );
    }
    if (spec.batchJobs && stack.bedrockModelIds.length > 0) {
      ack(
        role,
        'IAM5[Resource::arn:<AWS::Partition>:bedrock:<AWS::Region>:<AWS::AccountId>:model-invocation-job/*]',
        `"${spec.state}" starts and looks at the batch inference job of a run's iteration (batch mode), whose id Bedrock assigns at creation: this account's and region's jobs.`,
      );
    }
    const modelIds = [
      ...(spec.callsModel ? stack.bedrockModelIds : []),
      ...(spec.callsJudgeModel ? stack.bedrockJudgeModelIds : []),
      ...(spec.callsTeacherModel ? stack.bedrockTeacherModelIds : []),
      ...(spec.callsEmbeddingModel ? stack.bedrockEmbeddingModelIds : []),
    ];
    for (const modelId of modelIds) {
      const base = inferenceProfileModel(modelId);
      if (!base) continue;
      ack(
        role,
        `IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${base}]`,
        'A cross-region inference profile routes each request to this one model in any of its regions.',
      );
    }
  }

  const batchRole = stack.workflow.batchRole;
  for (const action of [...S3_READ_ACTIONS, ...S3_PUT_ACTIONS]) {
    ack(
      batchRole,
      `IAM5[Action::${action}]`,
      `${action} comes from CDK's grantRead/grantPut on this stack's bucket only (Bedrock reads batch inputs and writes outputs).`,
    );
  }
  for (const folder of [BATCH_INPUT_FOLDER, BATCH_OUTPUT_FOLDER]) {
    ack(
      batchRole,
      `IAM5[Resource::${bucketArn}/${RUNS_PREFIX}*/${folder}*]`,
      `Bedrock's batch jobs ${folder === BATCH_INPUT_FOLDER ? 'read their input' : 'write their output'} in the ${folder} folder of a run's iteration, named per run: only those folders of this stack's bucket.`,
    );
  }

  const machineRole = stack.workflow.stateMachineRole;
  ackUnscoped(
    machineRole,
    'X-Ray tracing and log delivery (logs:CreateLogDelivery …) have no resource-level permissions.',
  );
  for (const fn of Object.values(stack.workflow.functions)) {
    ack(
      machineRole,
      `IAM5[Resource::<${stack.getLogicalId(fn.node.defaultChild as CfnResource)}.Arn>:*]`,
      'lambda:InvokeFunction on the stage function and its versions/aliases, as CDK grants it for LambdaInvoke.',
    );
  }

  // The Distributed Map's policy (CDK's): its children are executions of this state machine, named
  // under the parent's execution, so their ARNs can only be given with a wildcard on the execution name.
  const machine = stack.workflow.stateMachine;
  const distributedMapPolicy = machine.node.tryFindChild('DistributedMapPolicy');
  if (distributedMapPolicy) {
    const machineName = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${stack.getLogicalId(machine.node.defaultChild as CfnResource)}"}]}]}`;
    const executions = `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${machineName}`;
    ack(
      distributedMapPolicy,
      `IAM5[Resource::${executions}:*]`,
      'states:DescribeExecution and StopExecution on the executions of this state machine only (a Distributed Map watches and stops its child executions).',
    );
    const distributedMaps = stack.workflow.node
      .findAll()
      .filter((construct) => construct instanceof sfn.DistributedMap);
    for (const label of distributedMaps.map((map) => mapRunLabel(map.node.id))) {
      ack(
        distributedMapPolicy,
        `IAM5[Resource::${executions}/${label}:*]`,
        `states:RedriveExecution on the child executions of the "${label}" Map Run only (a redrive of a run redrives its unsuccessful children).`,
      );
    }
  }

  // The stages' question to Step Functions about their own execution (`holdPool`, after a redrive):
  // the execution's name is the run's, so only a wildcard on it names them.
  const ownExecutionStatus = stack.workflow.node.tryFindChild('OwnExecutionStatus');
  if (ownExecutionStatus) {
    const machineName = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${stack.getLogicalId(machine.node.defaultChild as CfnResource)}"}]}]}`;
    ack(
      ownExecutionStatus,
      `IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${machineName}:*]`,
      'states:DescribeExecution on the executions of this state machine only (a redriven stage checks that its execution runs before it takes the pool back).',
    );
  }

  // CDK's own custom resources: the seed deployment and the bucket's EventBridge notification.
  for (const child of stack.node.children) {
    const id = child.node.id;
    if (id.startsWith('Custom::CDKBucketDeployment') || id.startsWith('BucketNotificationsHandler')) {
      ack(child, 'L1', 'Runtime chosen by aws-cdk-lib for its own custom resource handler.');
      ack(
        child,
        'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        'CDK custom resource handler: the managed policy only allows writing its own logs.',
      );
      for (const action of [...S3_READ_ACTIONS, ...S3_PUT_ACTIONS, 's3:DeleteObject*']) {
        ack(
          child,
          `IAM5[Action::${action}]`,
          'CDK BucketDeployment copies the seed asset into this stack’s bucket.',
        );
      }
      ack(
        child,
        `IAM5[Resource::${bucketArn}/*]`,
        'CDK BucketDeployment writes the bundled seeds into this stack’s bucket.',
      );
      ack(
        child,
        'IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]',
        'CDK BucketDeployment reads its asset from the CDK bootstrap bucket.',
      );
    }
  }
}
