/**
 * Roles for the tests of the local IAM enforcement: a function's role with one identity policy of the
 * test's statements, and the S3 actions CDK's `grantPut` gives a function, as the synthesized roles have
 * them.
 */
import { FaultPlan } from '../../infra/local/faults.ts';
import type { Principal } from '../../infra/local/iam.ts';
import { Invocation } from '../../infra/local/runtime.ts';

/** aws-cdk-lib's BUCKET_PUT_ACTIONS: what `bucket.grantPut(fn, prefix)` synthesizes on the prefix. */
export const GRANT_PUT_ACTIONS = [
  's3:PutObject',
  's3:PutObjectLegalHold',
  's3:PutObjectRetention',
  's3:PutObjectTagging',
  's3:PutObjectVersionTagging',
  's3:Abort*',
];

/** The role `roleName` of the function `functionName`, with one identity policy of `statements`. */
export const roleWith = (functionName: string, roleName: string, statements: object[]): Principal => ({
  functionName,
  roleName,
  policies: [{ name: 'test', policy: { Version: '2012-10-17', Statement: statements } }],
});

/** Runs `act` as an invocation of a function whose role has only `statements`. */
export function asFunction<T>(statements: object[], act: () => Promise<T>): Promise<T> {
  const invocation = new Invocation(
    { state: 'test', functionName: 'TestFunction', input: {}, attempt: 1 },
    roleWith('TestFunction', 'TestRole', statements),
    new FaultPlan(),
  );
  let result!: Promise<T>;
  invocation.start(async () => {
    result = act();
    return result.catch(() => undefined);
  });
  return result;
}
