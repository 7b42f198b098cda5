/**
 * The deployable artifacts work: the functions bundled by esbuild exactly as `cdk deploy` bundles them
 * (ESM, prompt templates copied next to each bundle) run the state machine on the local stack. The
 * stack is synthesized and bundled once; each profile runs on its own data folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../../functions/shared/records.ts';
import { LocalStack } from '../../infra/local/stack.ts';
import { type LoadedTemplate, loadTemplate } from '../../infra/local/template.ts';

const work = mkdtempSync(path.join(tmpdir(), 'selfinstruct-bundled-'));
const bundleTo = path.join(work, 'cdk.out');
let template: LoadedTemplate;

beforeAll(async () => {
  template = await loadTemplate({ bundleTo });
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the bundled functions', () => {
  it.each(['self-instruct', 'alpaca', 'default'])(
    'run an iteration with the %s profile',
    async (profile) => {
      const stack = await LocalStack.start({ dataDir: path.join(work, profile), bundleTo, template });
      try {
        const result = await stack.execute({ profile, target: 10, maxIterations: 1, promptsPerIteration: 3 });
        expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
        const summary = result.output as RunSummary;
        expect(summary.added).toBeGreaterThan(0);
        expect(summary.exportedRecords).toBeGreaterThanOrEqual(summary.added);
      } finally {
        await stack.close();
      }
    },
    180_000,
  );
});
