/**
 * The CDK app (`npx cdk deploy`). Configuration comes from CDK context (`cdk.json` or
 * `-c selfinstruct:model=bedrock:amazon.nova-micro-v1:0`); see the README's "Configuration".
 */
import { App } from 'aws-cdk-lib';
import { LIMIT_SETTINGS, parseEndpointList } from '../functions/shared/limits.ts';
import { parseGuardrailSetting } from './guardrail.ts';
import { applyNag } from './nag.ts';
import { SelfInstructStack, type SelfInstructStackProps } from './stack.ts';

/**
 * Reads the stack's props from CDK context keys `selfinstruct:<prop>`. The operator's limits
 * (`functions/shared/limits.ts`) fall back to their environment variables (`SELFINSTRUCT_…`) when the
 * context key is not given: locally, `npm start` synthesizes the stack in-process without `cdk.json`,
 * and its user, the operator there, sets them in the shell.
 */
export function propsFromContext(app: App): SelfInstructStackProps {
  const get = (key: string): unknown =>
    app.node.tryGetContext(`selfinstruct:${key}`) ??
    (key in LIMIT_SETTINGS ? process.env[LIMIT_SETTINGS[key as keyof typeof LIMIT_SETTINGS].env] : undefined);
  const num = (key: string) => (get(key) === undefined ? undefined : Number(get(key)));
  const str = (key: string) => (get(key) === undefined ? undefined : String(get(key)));
  const endpoints = get('allowedModelEndpoints');
  return {
    model: str('model'),
    judgeModel: str('judgeModel'),
    teacherModel: str('teacherModel'),
    profile: str('profile') as SelfInstructStackProps['profile'],
    nightlyGrowBy: num('nightlyGrowBy'),
    nightlyPool: str('nightlyPool'),
    nightlySchedule: str('nightlySchedule'),
    mapConcurrency: num('mapConcurrency'),
    rougeThreshold: num('rougeThreshold'),
    apiKeySecretName: str('apiKeySecretName'),
    retainData: get('retainData') === undefined ? undefined : String(get('retainData')) !== 'false',
    allowedModelEndpoints: endpoints === undefined ? undefined : parseEndpointList(endpoints),
    maxModelCallsInFlight: num('maxModelCallsInFlight'),
    modelFunctionConcurrency: num('modelFunctionConcurrency'),
    guardrail: parseGuardrailSetting(get('guardrail')),
  };
}

/** Builds the app with its one stack; cdk-nag checks run at synthesis. */
export function buildApp(app = new App()): { app: App; stack: SelfInstructStack } {
  const stack = new SelfInstructStack(app, 'SelfInstruct', {
    ...propsFromContext(app),
    description: 'Self-Instruct instruction-dataset generator (Step Functions + Lambda + S3 + DynamoDB)',
  });
  applyNag(app, stack);
  return { app, stack };
}
