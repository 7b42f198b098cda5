/**
 * Multipart uploads on the local S3 server as S3 checks them. s3rver 3.7 stores parts and joins them,
 * but answers AbortMultipartUpload (`DELETE ?uploadId`) with MethodNotAllowed, so an aborted upload's
 * parts stayed on disk, and it completes whatever it is given. Here, as S3 does:
 * - AbortMultipartUpload removes the upload and its parts (204);
 * - UploadPart, CompleteMultipartUpload and AbortMultipartUpload of an unknown (completed, aborted)
 *   upload fail with `NoSuchUpload` (404);
 * - CompleteMultipartUpload fails with `InvalidPartOrder` when the parts are not listed in ascending
 *   order, `InvalidPart` when one was not uploaded or its ETag differs, and `EntityTooSmall` when a part
 *   other than the last is smaller than 5 MiB (400 each).
 *
 * Plain JavaScript, for `servers-process.mjs` (run by plain Node).
 */
import { existsSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const S3Error = require('s3rver/lib/models/error.js');

/** S3's minimum size of a part other than the last. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

const noSuchUpload = () =>
  new S3Error(
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  );

/** Makes the multipart uploads of `s3` (an S3rver, before `run()`) behave as S3's (module comment). */
export function checkMultipartUploads(s3) {
  const store = s3.store;
  const uploadDir = (bucket, uploadId) =>
    path.join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  const known = (bucket, uploadId) =>
    /^[0-9a-f]+$/.test(String(uploadId)) && existsSync(path.join(uploadDir(bucket, uploadId), 'key'));

  const putPart = store.putPart.bind(store);
  store.putPart = async (bucket, uploadId, partNumber, content) => {
    if (!known(bucket, uploadId)) throw noSuchUpload();
    return putPart(bucket, uploadId, partNumber, content);
  };

  const putObjectMultipart = store.putObjectMultipart.bind(store);
  store.putObjectMultipart = async (bucket, uploadId, parts) => {
    if (!known(bucket, uploadId)) throw noSuchUpload();
    for (let i = 1; i < parts.length; i++) {
      if (parts[i].number <= parts[i - 1].number) {
        throw new S3Error(
          'InvalidPartOrder',
          'The list of parts was not in ascending order. Parts must be ordered by part number.',
        );
      }
    }
    const sizes = [];
    for (const part of parts) {
      const file = path.join(uploadDir(bucket, uploadId), String(part.number));
      const md5 = await readFile(`${file}.md5`, 'utf8').catch(() => undefined);
      if (md5 === undefined || md5 !== part.etag) {
        throw new S3Error(
          'InvalidPart',
          "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          { PartNumber: part.number, ETag: part.etag },
        );
      }
      sizes.push((await stat(file)).size);
    }
    const small = sizes.findIndex((size, i) => i < sizes.length - 1 && size < MIN_PART_BYTES);
    if (small !== -1) {
      throw new S3Error(
        'EntityTooSmall',
        'Your proposed upload is smaller than the minimum allowed object size.',
        {
          ProposedSize: sizes[small],
          MinSizeAllowed: MIN_PART_BYTES,
          PartNumber: parts[small].number,
        },
      );
    }
    return putObjectMultipart(bucket, uploadId, parts);
  };

  // AbortMultipartUpload, before the router (which has no route for it): after s3rver's logging, error
  // rendering and virtual-host middleware.
  const abort = async (ctx, next) => {
    const [, bucket, ...key] = ctx.path.split('/');
    if (ctx.method !== 'DELETE' || !('uploadId' in ctx.query) || !bucket || key.join('/') === '') {
      return next();
    }
    if (!known(bucket, ctx.query.uploadId)) throw noSuchUpload();
    await rm(uploadDir(bucket, ctx.query.uploadId), { recursive: true, force: true });
    ctx.status = 204;
  };
  s3.middleware.splice(s3.middleware.length - 1, 0, abort);
}
