import { readFile } from 'node:fs/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { PreviewErrorCodes } from '../api.js';
import { previewError } from '../errors.js';
import type { BundleStore, StoredBundle } from './bundleStore.js';

export interface S3Settings {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Retries after the first try, on transient errors only. */
  retries: number;
  retryDelayMs: number;
}

const TRANSIENT_NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'TimeoutError',
  'RequestTimeout',
  'NetworkingError',
]);

/** Server errors (5xx), throttling (429, SlowDown) and broken connections are worth another try; the rest is not. */
export function isTransient(err: unknown): boolean {
  const e = err as { $metadata?: { httpStatusCode?: number }; name?: string; code?: string; $retryable?: unknown };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  if (e?.$retryable) return true;
  return TRANSIENT_NETWORK.has(e?.code ?? '') || TRANSIENT_NETWORK.has(e?.name ?? '');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bundles in an S3 bucket (or an S3-compatible server), keyed `previews/<project>/<job>/bundle.zip`. */
export class S3BundleStore implements BundleStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;

  constructor(
    private readonly settings: S3Settings,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.client = new S3Client({
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      // This store retries itself, so that it knows which failures were transient and counts its tries.
      maxAttempts: 1,
      // S3-compatible servers (MinIO, s3rver) do not all read aws-chunked bodies with trailing checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(settings.accessKeyId && settings.secretAccessKey
        ? { credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey } }
        : {}),
    });
  }

  async put(key: string, file: string): Promise<StoredBundle> {
    // A bundle is read once into memory: a buffer can be sent again on each try (a stream cannot).
    const body = await readFile(file);
    const size = body.length;
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.settings.retries; attempt++) {
      if (attempt > 0) await sleep(this.settings.retryDelayMs * 2 ** (attempt - 1));
      try {
        // A single PUT: S3 stores all of it or nothing.
        await this.client.send(
          new PutObjectCommand({ Bucket: this.settings.bucket, Key: key, Body: body, ContentLength: size, ContentType: 'application/zip' }),
        );
        return { key, size, modifiedAt: Date.now() };
      } catch (err) {
        lastError = err;
        const transient = isTransient(err);
        this.log(`upload of ${key}, try ${attempt + 1}: ${describe(err)}${transient ? '' : ' (not retried)'}`);
        if (!transient) break;
      }
    }
    // Whatever a failed try may have left is removed, so a reader never finds a partial bundle.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: key })).catch(() => undefined);
    throw previewError(
      PreviewErrorCodes.STORAGE_UPLOAD_FAILED,
      `the bundle could not be uploaded to s3://${this.settings.bucket}/${key}: ${describe(lastError)}`,
    );
  }

  async stat(key: string): Promise<StoredBundle | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: key }));
      return { key, size: head.ContentLength ?? 0, modifiedAt: head.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if ((err as S3ServiceException).$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    const out = await this.client.send(
      new GetObjectCommand({ Bucket: this.settings.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
    );
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  async delete(key: string): Promise<boolean> {
    const existed = (await this.stat(key)) !== undefined;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: key }));
    return existed;
  }

  async list(prefix: string): Promise<StoredBundle[]> {
    const out: StoredBundle[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, modifiedAt: o.LastModified?.getTime() ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  close(): void {
    this.client.destroy();
  }
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  return `${e?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`;
}
