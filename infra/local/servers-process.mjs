/**
 * The local S3 (s3rver, on the file system) and DynamoDB (dynalite, on LevelDB) servers, in a process
 * of their own, as the real services are: the process that calls them (the local stack, a CLI command)
 * neither pays for loading them through its TypeScript loader nor stalls them while it computes.
 *
 * Plain JavaScript, run by plain Node (no TypeScript loader: that is what makes it start fast). Started
 * by `servers.ts` with an IPC channel: argv is `<data folder> <dynamodb port> <s3 port>` (0: any free
 * port); it sends `{ ready: { dynamodb, s3 } }` once both listen, then `{ event }` for each S3 event
 * (what S3 sends EventBridge), and exits when the channel closes (its parent ended, however it ended).
 */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import dynalite from 'dynalite';
import S3rver from 's3rver';
import { checkMultipartUploads } from './s3-multipart.mjs';

// Node's HTTP server closes a keep-alive connection idle for 5 s; AWS's endpoints keep idle connections
// far longer, and a client that sends just as the server closes gets `ECONNRESET`.
const IDLE_MS = 120_000;
const keepIdleConnections = (server) => {
  server.keepAliveTimeout = IDLE_MS;
  server.headersTimeout = IDLE_MS + 1_000;
};

const [dataDir, dynamodbPort, s3Port] = process.argv.slice(2);
mkdirSync(path.join(dataDir, 's3'), { recursive: true });

const dynamo = dynalite({
  path: path.join(dataDir, 'dynamodb'),
  createTableMs: 0,
  deleteTableMs: 0,
  updateTableMs: 0,
});
await new Promise((resolve, reject) => {
  dynamo.once('error', reject);
  dynamo.listen(Number(dynamodbPort), '127.0.0.1', resolve);
});
keepIdleConnections(dynamo);

const s3 = new S3rver({
  address: '127.0.0.1',
  port: Number(s3Port),
  silent: true,
  directory: path.join(dataDir, 's3'),
});
checkMultipartUploads(s3);
const { port } = await s3.run();
keepIdleConnections(s3.httpServer);
s3.on('event', (event) => process.send?.({ event }));

let closing = false;
async function close() {
  if (closing) return;
  closing = true;
  await s3.close();
  await new Promise((resolve) => dynamo.close(resolve));
  process.exit(0);
}
process.on('disconnect', close);
process.on('SIGTERM', close);
// Ctrl-C reaches the whole process group: the parent decides when the servers stop (after it recorded
// the aborted run's end in them).
process.on('SIGINT', () => {});
process.send?.({ ready: { dynamodb: dynamo.address().port, s3: port } });
