import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../../functions/shared/errors.ts';
import { apiKeyFromSecret, resolveApiKey } from '../../../functions/shared/models/openai.ts';

describe('apiKeyFromSecret', () => {
  it('reads a plain secret string as the key itself', () => {
    expect(apiKeyFromSecret('  sk-plain\n', 'openai')).toBe('sk-plain');
  });

  it("reads OpenAI's key from the OPENAI_API_KEY field of a JSON secret", () => {
    const secret = JSON.stringify({ SELFINSTRUCT_API_KEY: 'sk-other', OPENAI_API_KEY: 'sk-openai' });

    expect(apiKeyFromSecret(secret, 'openai')).toBe('sk-openai');
  });

  it('prefers SELFINSTRUCT_API_KEY over OPENAI_API_KEY for other servers', () => {
    const secret = JSON.stringify({ OPENAI_API_KEY: 'sk-openai', SELFINSTRUCT_API_KEY: 'gsk-groq' });

    expect(apiKeyFromSecret(secret, 'openai-compatible')).toBe('gsk-groq');
  });

  it('falls back to OPENAI_API_KEY for other servers', () => {
    expect(apiKeyFromSecret('{"OPENAI_API_KEY": "sk-openai"}', 'openai-compatible')).toBe('sk-openai');
  });

  it('names the missing fields, never the values, when a JSON secret has no key', () => {
    const read = () => apiKeyFromSecret('{"SELFINSTRUCT_API_KEY": "gsk-only"}', 'openai');

    expect(read).toThrow(ConfigurationError);
    expect(read).toThrow(/OPENAI_API_KEY/);
    expect(read).not.toThrow(/gsk-only/);
  });

  it('rejects an empty secret and a broken JSON one', () => {
    expect(() => apiKeyFromSecret('   ', 'openai')).toThrow(ConfigurationError);
    expect(() => apiKeyFromSecret('{"OPENAI_API_KEY": ', 'openai')).toThrow(/not valid JSON/);
  });
});

describe('resolveApiKey without a secret', () => {
  it('takes OPENAI_API_KEY for OpenAI', async () => {
    expect(await resolveApiKey('openai', { OPENAI_API_KEY: 'sk-a', SELFINSTRUCT_API_KEY: 'sk-b' })).toBe(
      'sk-a',
    );
  });

  it('fails loudly when OpenAI has no key', async () => {
    await expect(resolveApiKey('openai', { SELFINSTRUCT_API_KEY: 'sk-b' })).rejects.toThrow(
      /OPENAI_API_KEY is not set/,
    );
  });

  it('takes SELFINSTRUCT_API_KEY, then OPENAI_API_KEY, then none for other servers', async () => {
    expect(
      await resolveApiKey('openai-compatible', { OPENAI_API_KEY: 'sk-a', SELFINSTRUCT_API_KEY: 'sk-b' }),
    ).toBe('sk-b');
    expect(await resolveApiKey('openai-compatible', { OPENAI_API_KEY: 'sk-a' })).toBe('sk-a');
    expect(await resolveApiKey('openai-compatible', {})).toBeUndefined();
  });
});

describe('resolveApiKey with MODEL_API_KEY_SECRET_ARN', () => {
  const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:selfinstruct-model-key-AbCdEf';
  const calls: { target: string | undefined; secretId: unknown }[] = [];
  let server: Server;

  beforeAll(async () => {
    // A Secrets Manager stand-in (JSON 1.1 protocol over HTTP/1.1): enough for GetSecretValue.
    server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      const secretId = (JSON.parse(body) as { SecretId?: unknown }).SecretId;
      calls.push({ target: req.headers['x-amz-target'] as string | undefined, secretId });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify({
          ARN,
          Name: 'selfinstruct-model-key',
          SecretString: '{"SELFINSTRUCT_API_KEY": "gsk-s"}',
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIDSTANDIN',
      AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
    });
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('reads the key from the secret, ahead of the environment, and caches it', async () => {
    const env = { MODEL_API_KEY_SECRET_ARN: ARN, SELFINSTRUCT_API_KEY: 'sk-env' };

    const first = await resolveApiKey('openai-compatible', env);
    const second = await resolveApiKey('openai-compatible', env);

    expect([first, second]).toEqual(['gsk-s', 'gsk-s']);
    expect(calls).toEqual([{ target: 'secretsmanager.GetSecretValue', secretId: ARN }]);
  });

  it('fails with ConfigurationError when the secret lacks the field the provider needs', async () => {
    await expect(resolveApiKey('openai', { MODEL_API_KEY_SECRET_ARN: ARN })).rejects.toThrow(
      /OPENAI_API_KEY field/,
    );
  });
});
