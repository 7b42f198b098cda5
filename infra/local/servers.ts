/**
 * Local servers speaking the DynamoDB (dynalite, on LevelDB) and S3 (s3rver, on the file system)
 * protocols, on loopback ports, with their data in a folder so that pools persist between runs. They run
 * in a child process of their own (`servers-process.mjs`), as the real services run apart from their
 * callers.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { lockDataFolder, recordServerPid } from './lock.ts';
import { configureRuntime, registerRuntime } from './runtime.ts';
import { LOCAL_ACCOUNT, LOCAL_REGION } from './template.ts';

export interface LocalServers {
  dynamodbEndpoint: string;
  s3Endpoint: string;
  /** S3's event notifications (`event`: what S3 sends EventBridge when an object is created or removed). */
  s3Events: EventEmitter;
  close(): Promise<void>;
}

/** s3rver accepts only this key pair. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const SERVERS_PROCESS = fileURLToPath(new URL('./servers-process.mjs', import.meta.url));

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
  // Plain Node, without this process's TypeScript loader; Ctrl-C reaches the process group, but the
  // servers stay up until this process closes them (an aborted run still records its end).
  const child = fork(SERVERS_PROCESS, [dataDir, String(lastPorts.dynamodb), String(lastPorts.s3)], {
    execArgv: [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const s3Events = new EventEmitter();
  const ports = await new Promise<{ dynamodb: number; s3: number }>((resolve, reject) => {
    const failed = (code: number | null) =>
      reject(new Error(`the local S3 and DynamoDB servers did not start (exit ${code}): ${stderr.trim()}`));
    child.once('exit', failed);
    child.on('message', (message: { ready?: { dynamodb: number; s3: number }; event?: unknown }) => {
      if (message.event) s3Events.emit('event', message.event);
      if (message.ready) {
        child.off('exit', failed);
        resolve(message.ready);
      }
    });
  });
  recordServerPid(dataDir, child.pid);
  lastPorts = ports;
  return {
    dynamodbEndpoint: `http://127.0.0.1:${ports.dynamodb}`,
    s3Endpoint: `http://127.0.0.1:${ports.s3}`,
    s3Events,
    async close() {
      await stopServers(child);
      unlock();
    },
  };
}

/** Closes the servers' channel: they flush, close their stores and exit. */
async function stopServers(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.disconnect();
  await exited;
}

/**
 * Node's HTTP server closes a keep-alive connection idle for 5 s. A server that shares its process with
 * the SDK clients calling it (the model stand-ins of the tests; the S3 and DynamoDB servers did, before
 * they had a process of their own, which does the same) stalls when they compute,
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
