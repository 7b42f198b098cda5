/**
 * cdk-nag (AwsSolutions) runs on every synthesis and any unacknowledged finding fails it.
 * Each acknowledgement below is scoped to the construct it concerns and says why it does not apply.
 */
import { type App, type CfnResource, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { SelfInstructStack } from './stack.ts';
import { inferenceProfileModel } from './workflow.ts';

const ack = (scope: IConstruct, rule: string, reason: string) =>
  Validations.of(scope).acknowledge({ id: `AwsSolutions::AwsSolutions-${rule}`, reason });

/** The S3 actions CDK's `grantRead`/`grantPut` emit with wildcards. */
const S3_GRANT_ACTIONS = ['s3:Abort*', 's3:GetBucket*', 's3:GetObject*', 's3:List*'];

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

  for (const modelId of stack.bedrockModelIds) {
    const base = inferenceProfileModel(modelId);
    if (!base) continue;
    for (const fn of [
      stack.workflow.functions.generateInstructions,
      stack.workflow.functions.generateInstances,
    ]) {
      ack(
        fn,
        `IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${base}]`,
        'A cross-region inference profile routes each request to this one model in any of its regions.',
      );
    }
  }

  for (const fn of Object.values(stack.workflow.functions)) {
    ack(
      fn,
      'L1',
      'Node.js 22 is the runtime this project targets and tests; Node 24 is adopted deliberately, not implicitly.',
    );
    ack(
      fn,
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'The AWS managed basic execution role only allows writing the function’s own CloudWatch logs.',
    );
    ack(
      fn,
      'IAM5[Resource::*]',
      'X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) has no resource-level permissions.',
    );
    for (const action of S3_GRANT_ACTIONS) {
      ack(
        fn,
        `IAM5[Action::${action}]`,
        `${action} comes from CDK's grantRead/grantPut on this stack's bucket only.`,
      );
    }
    for (const prefix of ['pools', 'runs', 'exports', 'prices']) {
      ack(
        fn,
        `IAM5[Resource::${bucketArn}/${prefix}/*]`,
        `Objects are created per run and iteration under ${prefix}/: the grant is limited to that prefix of this stack's bucket.`,
      );
    }
  }
  ack(
    stack.workflow.functions.prepare,
    `IAM5[Resource::${bucketArn}/*]`,
    'Prepare reads the seed file the run names, which may be anywhere in this stack’s bucket (read only).',
  );

  const machine = stack.workflow.stateMachine;
  ack(
    machine,
    'IAM5[Resource::*]',
    'X-Ray tracing and log delivery (logs:CreateLogDelivery …) have no resource-level permissions.',
  );
  for (const fn of Object.values(stack.workflow.functions)) {
    ack(
      machine,
      `IAM5[Resource::<${stack.getLogicalId(fn.node.defaultChild as CfnResource)}.Arn>:*]`,
      'lambda:InvokeFunction on the stage function and its versions/aliases, as CDK grants it for LambdaInvoke.',
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
      for (const action of [...S3_GRANT_ACTIONS, 's3:DeleteObject*']) {
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
      ack(
        child,
        'IAM5[Resource::*]',
        'CDK bucket-notification handler: s3:PutBucketNotification is granted by CDK.',
      );
    }
  }
}
