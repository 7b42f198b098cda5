/**
 * Local servers speaking the DynamoDB (dynalite, on LevelDB) and S3 (s3rver, on the file system)
 * protocols, on loopback ports, with their data in a folder so that pools persist between runs.
 */
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import dynalite from 'dynalite';
import S3rver from 's3rver';
import { lockDataFolder } from './lock.ts';
import { configureRuntime, registerRuntime } from './runtime.ts';
import { LOCAL_ACCOUNT, LOCAL_REGION } from './template.ts';

export interface LocalServers {
  dynamodbEndpoint: string;
  s3Endpoint: string;
  s3: S3rver;
  close(): Promise<void>;
}

/** s3rver accepts only this key pair. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/**
 * Ports of the servers this process started last. Handler modules build their SDK clients once, at
 * import, like a warm Lambda: a stack restarted in the same process listens where they point.
 */
let lastPorts = { dynamodb: 0, s3: 0 };

/** How a process opens a data folder: what it is doing (named to a second process), and whether to empty it. */
export interface OpenOptions {
  /** e.g. `run <run id>`, `export`: a second process that finds the folder in use says who holds it. */
  holder?: string;
  /** Delete the folder's data first (under the lock). */
  fresh?: boolean;
}

/**
 * Takes the data folder's lock (`lock.ts`), then starts the servers on it; `close()` stops them and
 * gives the lock up.
 */
export async function startLocalServers(
  dataDir: string,
  { holder = 'a local stack', fresh }: OpenOptions = {},
): Promise<LocalServers> {
  const unlock = lockDataFolder(dataDir, { holder, fresh });
  try {
    return await startServers(dataDir, unlock);
  } catch (error) {
    unlock();
    throw error;
  }
}

async function startServers(dataDir: string, unlock: () => void): Promise<LocalServers> {
  mkdirSync(path.join(dataDir, 's3'), { recursive: true });
  const dynamo = dynalite({
    path: path.join(dataDir, 'dynamodb'),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    dynamo.once('error', reject);
    dynamo.listen(lastPorts.dynamodb, '127.0.0.1', () => resolve());
  });
  keepIdleConnections(dynamo);
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: lastPorts.s3,
    silent: true,
    directory: path.join(dataDir, 's3'),
  });
  const { port: s3Port } = (await s3.run()) as AddressInfo;
  keepIdleConnections(s3.httpServer);
  const dynamoPort = (dynamo.address() as AddressInfo).port;
  lastPorts = { dynamodb: dynamoPort, s3: s3Port };
  return {
    dynamodbEndpoint: `http://127.0.0.1:${dynamoPort}`,
    s3Endpoint: `http://127.0.0.1:${s3Port}`,
    s3,
    async close() {
      await s3.close();
      await new Promise<void>((resolve) => dynamo.close(() => resolve()));
      unlock();
    },
  };
}

/**
 * Node's HTTP server closes a keep-alive connection idle for 5 s. The servers share their process with
 * the SDK clients that call them, so when a stage computes (the ROUGE-L gate) the event loop stalls,
 * the client misses its cue to drop such a connection, and it sends the next request just as the
 * server closes it: `TimeoutError: read ECONNRESET`, on every pooled socket at once after a burst,
 * more often than the SDK's 3 attempts absorb (seen in the e2e tests under load). AWS's endpoints keep
 * idle connections far longer than 5 s; so do these.
 */
export function keepIdleConnections(server: Server, idleMs = 120_000): void {
  server.keepAliveTimeout = idleMs;
  server.headersTimeout = idleMs + 1_000;
}

/**
 * Points this process's S3 and DynamoDB clients at the servers, through the per-client configuration
 * of the local runtime (`runtime.ts`), not the process environment: the user's own AWS settings stay
 * in place for Bedrock and Secrets Manager.
 */
export function pointSdkAt(servers: LocalServers): void {
  configureRuntime({
    place: { region: LOCAL_REGION, account: LOCAL_ACCOUNT },
    endpoints: { s3: servers.s3Endpoint, dynamodb: servers.dynamodbEndpoint },
    credentials: LOCAL_CREDENTIALS,
    region: LOCAL_REGION,
  });
  registerRuntime();
}
