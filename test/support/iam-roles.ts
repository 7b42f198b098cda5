/**
 * Roles for the tests of the local IAM enforcement: a function's role with one identity policy of the
 * test's statements, and the S3 actions CDK's `grantPut` gives a function, as the synthesized roles have
 * them.
 */
import type { Principal } from '../../infra/local/iam.ts';

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
