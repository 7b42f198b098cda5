/** Configuration read once from the environment, failing loudly when something is missing. */
import { ConfigurationError } from './errors.ts';

/** The value of a required environment variable. */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new ConfigurationError(`environment variable ${name} is not set`);
  }
  return value;
}

/**
 * Client settings shared by the S3 and DynamoDB clients. Endpoints come from the standard
 * `AWS_ENDPOINT_URL_*` variables; a custom S3 endpoint (a local server) also needs path-style URLs.
 */
export const s3ClientConfig = () => ({
  forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3),
  // Local S3 servers store aws-chunked framing as object bytes: only send checksums when required.
  requestChecksumCalculation: 'WHEN_REQUIRED' as const,
  responseChecksumValidation: 'WHEN_REQUIRED' as const,
});
