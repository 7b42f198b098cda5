/**
 * Configuration read once from the environment, failing loudly when something is missing, and the one
 * place every AWS SDK client (and the model providers' HTTP clients) gets its settings from.
 */
import { ConfigurationError } from './errors.ts';

/** The value of a required environment variable. */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new ConfigurationError(`environment variable ${name} is not set`);
  }
  return value;
}

/** The AWS services the handlers and the CLI build clients for. */
export type AwsService =
  | 's3'
  | 'dynamodb'
  | 'sfn'
  | 'bedrock-runtime'
  | 'bedrock'
  | 'secretsmanager'
  | 'cloudformation';

/** A client's own settings, as passed to an SDK client constructor. */
export type ClientConfig = Record<string, unknown>;

/**
 * What a local runtime registers so that clients built anywhere in the process (including the esbuild
 * bundles of `--bundled` mode, which carry their own copy of this module) reach it: the local stack
 * points the S3, DynamoDB and Step Functions clients at its servers and wraps every client's request
 * handler (IAM, injected faults). Bedrock and Secrets Manager keep the default credential chain.
 */
export interface LocalOverrides {
  /** The settings of a client of `service`, given its own. */
  clientConfig(service: AwsService, own: ClientConfig): ClientConfig;
  /** The `fetch` the model providers' HTTP clients use (the `openai` client's `fetch` option). */
  fetch?: typeof fetch;
}

/** Where the registration lives: a `Symbol.for` key is shared by every copy of this module. */
const LOCAL_OVERRIDES = Symbol.for('selfinstruct.localOverrides');

/** Registers (or, with `undefined`, removes) the local runtime's overrides for clients built from now on. */
export function registerLocalOverrides(overrides: LocalOverrides | undefined): void {
  (globalThis as Record<symbol, unknown>)[LOCAL_OVERRIDES] = overrides;
}

const localOverrides = () =>
  (globalThis as Record<symbol, unknown>)[LOCAL_OVERRIDES] as LocalOverrides | undefined;

/**
 * The settings of an SDK client for `service`: its own settings (`own`), plus, for S3, checksums only
 * when required (local S3 servers store aws-chunked framing as object bytes). In Lambda (and for a
 * deployed stack) that is all: the SDK's defaults find the function's region, role and endpoints. In the
 * local stack, the registered overrides apply (see `LocalOverrides`).
 */
export function awsClientConfig(service: AwsService, own: ClientConfig = {}): ClientConfig {
  const config =
    service === 's3'
      ? {
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
          // A custom endpoint (a local server) needs path-style URLs.
          forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3),
          ...own,
        }
      : own;
  return localOverrides()?.clientConfig(service, config) ?? config;
}

/** The `fetch` for a model provider's HTTP client: the local runtime's, else the platform's. */
export const modelFetch = (): typeof fetch | undefined => localOverrides()?.fetch;
