/**
 * A local run with a Bedrock model uses the user's own AWS identity and region, from the environment or
 * from a named profile, while the local S3 and DynamoDB clients keep the local servers' credentials: the
 * Bedrock stand-in refuses any other access key id (403 UnrecognizedClientException) or region.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LocalStack } from '../../infra/local/stack.ts';
import { type StandIn, startBedrockStandIn } from '../support/model-servers.ts';

const NOVA = 'bedrock:amazon.nova-micro-v1:0';
const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-credentials-'));
const saved = { ...process.env };
const IDENTITY = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_PROFILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_CONFIG_FILE',
];
let bedrock: StandIn | undefined;

afterEach(async () => {
  await bedrock?.close();
  for (const name of IDENTITY) delete process.env[name];
  Object.assign(process.env, saved);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A one-iteration local Bedrock run, on a stack synthesized for that model as it would be deployed. */
async function runWithBedrock(dataDir: string) {
  const stack = await LocalStack.start({
    dataDir: path.join(work, dataDir),
    fresh: true,
    iam: true,
    context: { 'selfinstruct:model': NOVA },
  });
  try {
    return await stack.execute(
      { pool: 'mine', model: NOVA, target: 1000, maxIterations: 1, promptsPerIteration: 2, chunkSize: 10 },
      { retryIntervalMs: 10 },
    );
  } finally {
    await stack.close();
  }
}

describe('a local run with a Bedrock model', () => {
  it('signs Bedrock requests with the AWS_ACCESS_KEY_ID and AWS_REGION the user set', async () => {
    for (const name of IDENTITY) delete process.env[name];
    bedrock = await startBedrockStandIn({ accessKeyId: 'AKIDFROMENV', region: 'eu-west-2' });
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'AKIDFROMENV',
      AWS_SECRET_ACCESS_KEY: 'env-secret',
      AWS_REGION: 'eu-west-2',
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    });
    const result = await runWithBedrock('env');
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(bedrock.requests.length).toBeGreaterThan(0);
    expect(new Set(bedrock.requests.map((r) => JSON.stringify(r.credential)))).toEqual(
      new Set([JSON.stringify({ accessKeyId: 'AKIDFROMENV', region: 'eu-west-2', service: 'bedrock' })]),
    );
  }, 180_000);

  it('signs Bedrock requests with the key and region of the AWS_PROFILE the user chose', async () => {
    for (const name of IDENTITY) delete process.env[name];
    bedrock = await startBedrockStandIn({ accessKeyId: 'AKIDFROMPROFILE', region: 'ap-southeast-2' });
    const credentials = path.join(work, 'credentials');
    const config = path.join(work, 'config');
    writeFileSync(
      credentials,
      '[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n[research]\naws_access_key_id = AKIDFROMPROFILE\naws_secret_access_key = p\n',
    );
    writeFileSync(config, '[default]\nregion = us-west-2\n\n[profile research]\nregion = ap-southeast-2\n');
    Object.assign(process.env, {
      AWS_PROFILE: 'research',
      AWS_SHARED_CREDENTIALS_FILE: credentials,
      AWS_CONFIG_FILE: config,
      AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    });
    const result = await runWithBedrock('profile');
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    expect(bedrock.requests.length).toBeGreaterThan(0);
    for (const request of bedrock.requests) {
      expect(request.credential).toEqual({
        accessKeyId: 'AKIDFROMPROFILE',
        region: 'ap-southeast-2',
        service: 'bedrock',
      });
    }
  }, 180_000);
});
