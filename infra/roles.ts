/**
 * Roles whose `Resource: "*"` statements can be acknowledged narrowly. Some actions have no
 * resource-level permissions, so a policy can only grant them on `*`: X-Ray's trace upload (CDK adds it
 * for `tracing: ACTIVE` and `tracingEnabled`) and CloudWatch Logs' log delivery (for a state machine's
 * logging). CDK puts them in the role's default policy, where a cdk-nag acknowledgement of
 * `IAM5[Resource::*]` would also silence any other statement on `*`, say `bedrock:InvokeModel`.
 */
import * as iam from 'aws-cdk-lib/aws-iam';

/** The actions that may be granted on `*`, because they can be granted on nothing narrower. */
export const UNSCOPED_ACTIONS: ReadonlySet<string> = new Set([
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
]);

/** An Allow of `UNSCOPED_ACTIONS` only, on `*` only, without conditions. */
function isUnscoped(statement: iam.PolicyStatement): boolean {
  const json = statement.toStatementJson() as { Condition?: unknown; Principal?: unknown };
  return (
    statement.effect === iam.Effect.ALLOW &&
    statement.actions.length > 0 &&
    statement.actions.every((action) => UNSCOPED_ACTIONS.has(action)) &&
    statement.resources.length === 1 &&
    statement.resources[0] === '*' &&
    statement.notActions.length === 0 &&
    statement.notResources.length === 0 &&
    json.Condition === undefined &&
    json.Principal === undefined
  );
}

/**
 * A role that keeps the statements granting only `UNSCOPED_ACTIONS` on `*` apart, in a policy of their
 * own (`unscopedPolicy`), so that the acknowledgement of their `Resource::*` goes on that policy alone.
 * Every other statement, on `*` or not, lands in the default policy, where cdk-nag judges it.
 */
export class RoleWithUnscopedPolicy extends iam.Role {
  private unscoped: iam.Policy | undefined;

  /** The policy of the `*` statements, created with the first one (`undefined` while there is none). */
  get unscopedPolicy(): iam.Policy | undefined {
    return this.unscoped;
  }

  override addToPrincipalPolicy(statement: iam.PolicyStatement): iam.AddToPrincipalPolicyResult {
    if (!isUnscoped(statement)) return super.addToPrincipalPolicy(statement);
    this.unscoped ??= new iam.Policy(this, 'UnscopedPolicy', { roles: [this] });
    this.unscoped.addStatements(statement);
    return { statementAdded: true, policyDependable: this.unscoped };
  }
}
