/**
 * Runs on the deployed stack: `run --deployed` starts an execution of the deployed state machine with
 * the same validated input as a local run and follows it; `serve` starts the local stack with a local
 * Step Functions endpoint, standing in for AWS, so the same code path can be tried and tested offline.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { Command } from 'commander';
import { parseRunInput } from '../../functions/prepare/core.ts';
import { S3ObjectStore } from '../../functions/shared/adapters/s3.ts';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { ConfigurationError, NotFound } from '../../functions/shared/errors.ts';
import { PRICE_TABLE_PREFIX, runTemplatesPrefix, UPLOADS_PREFIX } from '../../functions/shared/keys.ts';
import { LOCAL_CREDENTIALS } from '../local/servers.ts';
import { startLocalStepFunctions } from '../local/sfn-server.ts';
import { LocalStack } from '../local/stack.ts';
import { LOCAL_REGION } from '../local/template.ts';
import {
  newRunId,
  type RunOptions,
  readTemplatesFolder,
  runInputFromOptions,
  uploadTemplates,
} from './run-options.ts';
import { deployedHistory, executionArnOf, type RunStatus, watch } from './status.ts';

export interface DeployedTarget {
  stateMachineArn: string;
  bucket?: string;
}

export interface DeployedOptions {
  stateMachineArn?: string;
  bucket?: string;
  stack?: string;
}

/** The deployed state machine and bucket: from flags, then `SELFINSTRUCT_*` variables, then the stack's outputs. */
export async function resolveDeployed(options: DeployedOptions): Promise<DeployedTarget> {
  const stateMachineArn = options.stateMachineArn ?? process.env.SELFINSTRUCT_STATE_MACHINE_ARN;
  const bucket = options.bucket ?? process.env.SELFINSTRUCT_BUCKET;
  if (stateMachineArn) return { stateMachineArn, bucket };
  const stackName = options.stack ?? 'SelfInstruct';
  let outputs: Record<string, string>;
  try {
    const reply = await new CloudFormationClient(awsClientConfig('cloudformation')).send(
      new DescribeStacksCommand({ StackName: stackName }),
    );
    outputs = Object.fromEntries(
      (reply.Stacks?.[0]?.Outputs ?? []).map((output) => [output.OutputKey ?? '', output.OutputValue ?? '']),
    );
  } catch (error) {
    throw new ConfigurationError(
      `Could not read the outputs of stack ${stackName} (${(error as Error).message}); deploy it with "npx cdk deploy", or pass --state-machine-arn`,
    );
  }
  if (!outputs.StateMachineArn) throw new NotFound(`Stack ${stackName} has no StateMachineArn output`);
  return { stateMachineArn: outputs.StateMachineArn, bucket: bucket ?? outputs.BucketName };
}

/** Starts a run of the deployed state machine and follows it to its end. */
export async function runDeployed(
  options: RunOptions & DeployedOptions,
  {
    out = process.stdout,
    intervalMs = 2000,
  }: { out?: NodeJS.WritableStream & { isTTY?: boolean }; intervalMs?: number } = {},
): Promise<RunStatus> {
  if (options.documents) {
    throw new ConfigurationError(
      '--documents is for local runs: on AWS, upload the documents to the bucket under documents/<pool>/ (the upload starts the run), or pass --input with "documents": "documents/<pool>/" for documents already there',
    );
  }
  const runId = newRunId();
  const input = runInputFromOptions(options);
  parseRunInput(
    {
      ...input,
      seedKey: input.seedKey ?? (options.seeds ? `${UPLOADS_PREFIX}x` : undefined),
      templates: options.templates ? runTemplatesPrefix(runId) : input.templates,
    },
    runId,
  );
  const templates = options.templates ? readTemplatesFolder(options.templates).files : undefined;
  const target = await resolveDeployed(options);

  const upload = async (file: string, prefix: string, contentType: string) => {
    if (!target.bucket) throw new ConfigurationError('Uploading a file needs the bucket: pass --bucket');
    // Not under seeds/: an upload there would start a second run through the EventBridge rule.
    const key = `${prefix}${runId}/${path.basename(file)}`;
    await new S3ObjectStore(target.bucket).put(key, readFileSync(file), contentType);
    return key;
  };
  if (options.seeds) input.seedKey = await upload(options.seeds, UPLOADS_PREFIX, 'application/jsonl');
  if (options.prices) {
    input.priceTableKey = await upload(options.prices, PRICE_TABLE_PREFIX, 'application/json');
  }
  if (templates) {
    if (!target.bucket) throw new ConfigurationError('Uploading templates needs the bucket: pass --bucket');
    input.templates = await uploadTemplates(new S3ObjectStore(target.bucket), templates, runId);
  }

  const sfn = new SFNClient(awsClientConfig('sfn'));
  const { executionArn } = await sfn.send(
    new StartExecutionCommand({
      stateMachineArn: target.stateMachineArn,
      name: runId,
      input: JSON.stringify(input),
    }),
  );
  out.write(`Started ${executionArn ?? executionArnOf(target.stateMachineArn, runId)}\n`);
  return watch(runId, deployedHistory(executionArnOf(target.stateMachineArn, runId), sfn), {
    out,
    intervalMs,
  });
}

/** `serve`: the local stack plus a local Step Functions endpoint, until interrupted. */
export function serveCommand(): Command {
  return new Command('serve')
    .option('--data-dir <dir>', 'local S3/DynamoDB data', '.local/data')
    .option('--fresh', 'delete the local data first')
    .option('--no-iam', 'do not enforce the functions’ IAM roles (debugging)')
    .action(async (options: { dataDir: string; fresh?: boolean; iam: boolean }) => {
      const stack = await LocalStack.start({
        dataDir: options.dataDir,
        fresh: options.fresh,
        iam: options.iam === false ? false : undefined,
      });
      const sfn = await startLocalStepFunctions(stack);
      const env = {
        AWS_ENDPOINT_URL_SFN: sfn.url,
        AWS_ENDPOINT_URL_S3: stack.servers.s3Endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: stack.servers.dynamodbEndpoint,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        AWS_REGION: LOCAL_REGION,
        SELFINSTRUCT_STATE_MACHINE_ARN: sfn.stateMachineArn,
        SELFINSTRUCT_BUCKET: stack.bucketName,
      };
      console.log('The local stack is standing in for AWS. In another terminal:\n');
      console.log(
        Object.entries(env)
          .map(([key, value]) => `export ${key}=${value}`)
          .join('\n'),
      );
      console.log('npm run cli -- run --deployed --target 50\n\nCtrl-C to stop.');
      await new Promise<void>((resolve) => process.once('SIGINT', resolve));
      await sfn.close();
      await stack.close();
    });
}
