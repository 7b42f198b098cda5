/**
 * Local servers speaking the DynamoDB (dynalite, on LevelDB) and S3 (s3rver, on the file system)
 * protocols, on loopback ports, with their data in a folder so that pools persist between runs.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import dynalite from 'dynalite';
import S3rver from 's3rver';

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

export async function startLocalServers(dataDir: string): Promise<LocalServers> {
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
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: lastPorts.s3,
    silent: true,
    directory: path.join(dataDir, 's3'),
  });
  const { port: s3Port } = (await s3.run()) as AddressInfo;
  const dynamoPort = (dynamo.address() as AddressInfo).port;
  lastPorts = { dynamodb: dynamoPort, s3: s3Port };
  return {
    dynamodbEndpoint: `http://127.0.0.1:${dynamoPort}`,
    s3Endpoint: `http://127.0.0.1:${s3Port}`,
    s3,
    async close() {
      await s3.close();
      await new Promise<void>((resolve) => dynamo.close(() => resolve()));
    },
  };
}
