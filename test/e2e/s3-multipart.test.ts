/**
 * Multipart uploads on the local S3 server, through the SDK as the stages send them: a streamed write
 * (`S3ObjectStore.upload`, lib-storage's `Upload`) of several parts arrives byte for byte; a failed one is
 * aborted and leaves no parts; and the server checks what S3 checks (`infra/local/s3-multipart.mjs`):
 * 5 MiB parts but the last (`EntityTooSmall`), known parts and ETags, no use of an aborted upload.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore, UPLOAD_PART_BYTES } from '../../functions/shared/adapters/s3.ts';
import { awsClientConfig } from '../../functions/shared/config.ts';
import { type LocalServers, pointSdkAt, startLocalServers } from '../../infra/local/servers.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-multipart-'));
const bucket = 'multipart';
const MiB = 1024 * 1024;
let servers: LocalServers;
let client: S3Client;
let objects: S3ObjectStore;
/** The S3 operations the client sent, in order. */
const sent: string[] = [];

/** Upload folders s3rver keeps for multipart uploads in progress (one per upload id). */
const uploadsInProgress = () => {
  const folder = path.join(work, 's3', bucket, '._S3rver_uploads');
  return existsSync(folder) ? readdirSync(folder) : [];
};

/** `total` characters of lines (with multi-byte ones), in chunks of `chunk`. */
async function* lines(total: number, chunk = 100_000) {
  const line = 'one line of the export, «ü ✓ 日本» and some more text to make it longer\n';
  for (let written = 0; written < total; written += chunk) {
    yield line.repeat(Math.ceil(Math.min(chunk, total - written) / line.length));
  }
}

beforeAll(async () => {
  servers = await startLocalServers(work, { fresh: true });
  pointSdkAt(servers);
  client = new S3Client(awsClientConfig('s3'));
  client.middlewareStack.add(
    (next, context) => (args) => {
      sent.push(String(context.commandName).replace(/Command$/, ''));
      return next(args);
    },
    { step: 'initialize' },
  );
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  objects = new S3ObjectStore(bucket, client);
}, 60_000);

afterAll(async () => {
  await servers?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a streamed upload to the local S3 server', () => {
  it('writes a body of several parts byte for byte, in 5 MiB parts', async () => {
    let expected = '';
    for await (const text of lines(12 * MiB)) expected += text;
    sent.length = 0;
    await objects.upload('exports/r/dataset.jsonl', lines(12 * MiB), 'application/jsonl');
    expect(sent.filter((operation) => operation === 'UploadPart')).toHaveLength(
      Math.ceil(Buffer.byteLength(expected) / UPLOAD_PART_BYTES),
    );
    expect(sent).toContain('CompleteMultipartUpload');
    expect(await objects.getText('exports/r/dataset.jsonl')).toBe(expected);
    expect(uploadsInProgress()).toEqual([]);
  });

  it('writes a body smaller than a part with one PutObject, and an empty one', async () => {
    sent.length = 0;
    await objects.upload('exports/r/small.json', lines(1000), 'application/json');
    await objects.upload('exports/r/empty.json', (async function* () {})(), 'application/json');
    expect(sent).toEqual(['PutObject', 'PutObject']);
    expect(await objects.getText('exports/r/empty.json')).toBe('');
  });

  it('aborts an upload whose body fails after a part: the error surfaces, no object, no parts left', async () => {
    async function* failing() {
      yield* lines(6 * MiB);
      throw new Error('the pool query failed');
    }
    sent.length = 0;
    await expect(objects.upload('exports/r/failed.jsonl', failing())).rejects.toThrow(
      'the pool query failed',
    );
    expect(sent).toContain('UploadPart');
    expect(sent).toContain('AbortMultipartUpload');
    expect(await objects.getText('exports/r/failed.jsonl')).toBeUndefined();
    expect(uploadsInProgress()).toEqual([]);
  });
});

describe('the local S3 server checks multipart uploads as S3 does', () => {
  const Key = 'exports/r/parts.bin';
  const start = async () =>
    (await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }))).UploadId as string;
  const part = async (UploadId: string, PartNumber: number, bytes: number) => ({
    PartNumber,
    ETag: (
      await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key,
          UploadId,
          PartNumber,
          Body: Buffer.alloc(bytes, PartNumber),
        }),
      )
    ).ETag,
  });
  const complete = (UploadId: string, Parts: { PartNumber: number; ETag?: string }[]) =>
    client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts } }),
    );

  it('refuses a part under 5 MiB that is not the last (EntityTooSmall), and completes 5 MiB + a small last', async () => {
    const small = await start();
    const parts = [await part(small, 1, MiB), await part(small, 2, 1000)];
    await expect(complete(small, parts)).rejects.toMatchObject({
      name: 'EntityTooSmall',
      $metadata: { httpStatusCode: 400 },
    });

    const upload = await start();
    await complete(upload, [await part(upload, 1, 5 * MiB), await part(upload, 2, 1000)]);
    const bytes = await objects.getBytes(Key);
    expect(bytes?.length).toBe(5 * MiB + 1000);
    expect(bytes?.at(-1)).toBe(2);
  });

  it('refuses a part it does not have, by number or ETag (InvalidPart), and parts out of order (InvalidPartOrder)', async () => {
    const upload = await start();
    const first = await part(upload, 1, 5 * MiB);
    const second = await part(upload, 2, 10);
    await expect(complete(upload, [first, { ...second, ETag: '"0123"' }])).rejects.toMatchObject({
      name: 'InvalidPart',
    });
    await expect(complete(upload, [first, { ...second, PartNumber: 3 }])).rejects.toMatchObject({
      name: 'InvalidPart',
    });
    await expect(complete(upload, [second, first])).rejects.toMatchObject({ name: 'InvalidPartOrder' });
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId: upload }));
  });

  it('aborts an upload: its parts are gone, and it can be neither added to, completed nor aborted again (NoSuchUpload)', async () => {
    const upload = await start();
    const first = await part(upload, 1, 10);
    expect(uploadsInProgress()).toContain(upload);
    const reply = await client.send(
      new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId: upload }),
    );
    expect(reply.$metadata.httpStatusCode).toBe(204);
    expect(uploadsInProgress()).not.toContain(upload);
    const noSuchUpload = { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } };
    await expect(part(upload, 2, 10)).rejects.toMatchObject(noSuchUpload);
    await expect(complete(upload, [first])).rejects.toMatchObject(noSuchUpload);
    await expect(
      client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId: upload })),
    ).rejects.toMatchObject(noSuchUpload);
    expect(uploadsInProgress()).not.toContain(upload);
  });
});
