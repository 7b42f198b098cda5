/** `ObjectStore` on Amazon S3 (or any server speaking its API). */

import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  paginateListObjectsV2,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { awsClientConfig } from '../config.ts';
import type { ObjectStore, ObjectStreams } from '../ports.ts';

/**
 * Parts of a streamed upload: S3's minimum (5 MiB; every part but the last must be at least that,
 * else `CompleteMultipartUpload` fails with `EntityTooSmall`), two in flight: what an upload holds in
 * memory is about three parts, however large the object.
 */
export const UPLOAD_PART_BYTES = 5 * 1024 * 1024;
const UPLOAD_QUEUE = 2;

export class S3ObjectStore implements ObjectStore, ObjectStreams {
  constructor(
    private readonly bucket: string,
    private readonly client = new S3Client(awsClientConfig('s3')),
  ) {}

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    return await (await this.getObject(key))?.transformToByteArray();
  }

  async download(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    // In Node the SDK's body is a Readable (an async iterable of Buffers).
    return (await this.getObject(key)) as AsyncIterable<Uint8Array> | undefined;
  }

  private async getObject(key: string) {
    try {
      const reply = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return reply.Body;
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  async getText(key: string): Promise<string | undefined> {
    const bytes = await this.getBytes(key);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }

  async put(key: string, body: string | Uint8Array, contentType = 'application/octet-stream'): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        // Bytes, so the SDK knows the length (an empty string would look like a stream).
        Body: typeof body === 'string' ? Buffer.from(body) : body,
        ContentType: contentType,
      }),
    );
  }

  /**
   * A streamed write (lib-storage's `Upload`): one `PutObject` when the body fits in one part, else a
   * multipart upload of `UPLOAD_PART_BYTES` parts, aborted when the body or a part fails (no parts left
   * behind, billed as storage). Needs `s3:PutObject` (create, parts, complete) and
   * `s3:AbortMultipartUpload` on the key: CDK's `grantPut` gives both (`s3:Abort*`).
   */
  async upload(
    key: string,
    body: AsyncIterable<string | Uint8Array>,
    contentType = 'application/octet-stream',
  ): Promise<void> {
    await new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: Readable.from(body), ContentType: contentType },
      partSize: UPLOAD_PART_BYTES,
      queueSize: UPLOAD_QUEUE,
      leavePartsOnError: false,
    }).done();
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key: toKey,
        CopySource: `${this.bucket}/${encodeURIComponent(fromKey).replaceAll('%2F', '/')}`,
      }),
    );
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2(
      { client: this.client },
      { Bucket: this.bucket, Prefix: prefix },
    )) {
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    }
    return keys.sort();
  }
}
