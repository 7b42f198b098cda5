/**
 * A local data folder opened without the stack: its servers, and the one bucket and the one table the
 * local stack created in it, found by listing them (S3 `ListBuckets`, DynamoDB `ListTables`) rather than
 * by synthesizing the template. What `export`, `report` and `estimate --data-dir` read runs through.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { DynamoPoolStore } from '../../functions/shared/adapters/dynamodb.ts';
import type { S3ObjectStore } from '../../functions/shared/adapters/s3.ts';
import { NotFound } from '../../functions/shared/errors.ts';
import { pointSdkAt, startLocalServers } from './servers.ts';

/** True when a local data folder holds a previous run's data. */
export const hasLocalData = (dataDir: string) => existsSync(path.join(dataDir, 's3'));

/** The bucket and pool table of a local data folder, and `close()` to stop its servers. */
export interface LocalData {
  objects: S3ObjectStore;
  pool: DynamoPoolStore;
  close(): Promise<void>;
}

/**
 * Opens the data folder a local run left (taking its lock, as `holder`): throws `NotFound` with `hint`
 * when there is none, rather than creating an empty one. The SDK clients load while the servers start
 * in their process.
 */
export async function openLocalData(dataDir: string, holder: string, hint: string): Promise<LocalData> {
  if (!hasLocalData(dataDir)) throw new NotFound(`No local data in ${dataDir}: ${hint}`);
  const starting = startLocalServers(dataDir, { holder });
  starting.catch(() => undefined); // awaited below, after the imports
  const modules = Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('@aws-sdk/client-s3'),
    import('../../functions/shared/adapters/dynamodb.ts'),
    import('../../functions/shared/adapters/s3.ts'),
    import('../../functions/shared/config.ts'),
  ]);
  modules.catch(() => undefined);
  const servers = await starting;
  try {
    const [
      { DynamoDBClient, ListTablesCommand },
      { ListBucketsCommand, S3Client },
      { DynamoPoolStore },
      { S3ObjectStore },
      { awsClientConfig },
    ] = await modules;
    pointSdkAt(servers);
    const { Buckets = [] } = await new S3Client(awsClientConfig('s3')).send(new ListBucketsCommand({}));
    const { TableNames = [] } = await new DynamoDBClient(awsClientConfig('dynamodb')).send(
      new ListTablesCommand({}),
    );
    const [bucket] = Buckets.map((b) => b.Name ?? '');
    const [table] = TableNames;
    if (!bucket || !table || Buckets.length > 1 || TableNames.length > 1) {
      throw new NotFound(
        `${dataDir} is not a local stack's data folder (buckets: ${Buckets.map((b) => b.Name).join(', ') || 'none'}; tables: ${TableNames.join(', ') || 'none'}): ${hint}`,
      );
    }
    return {
      objects: new S3ObjectStore(bucket),
      pool: new DynamoPoolStore(table),
      close: () => servers.close(),
    };
  } catch (error) {
    await servers.close();
    throw error;
  }
}
