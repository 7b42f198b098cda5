/**
 * The local stack's template cache: a template read from the cache is the one a synthesis gives, and
 * a change to what shapes the template (here, the context) synthesizes again. The key's inputs are
 * tested file by file in test/unit/cli.test.ts.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  definitionChecked,
  loadTemplate,
  markDefinitionChecked,
  resourcesOfType,
} from '../../infra/local/template.ts';

const cacheDir = mkdtempSync(path.join(tmpdir(), 'selfinstruct-template-cache-'));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

describe('the template cache', () => {
  it('serves the synthesized template again until what shapes it changes', async () => {
    const synthesized = await loadTemplate({ cacheDir });
    expect(synthesized.from).toBe('synthesis');
    expect(resourcesOfType(synthesized.template, 'AWS::StepFunctions::StateMachine')).toHaveLength(1);

    const cached = await loadTemplate({ cacheDir });
    expect(cached.from).toBe('cache');
    expect(cached.template).toEqual(synthesized.template);
    expect(cached.ms).toBeLessThan(synthesized.ms);

    // The States Language check of its definition is remembered with the cached template.
    expect(definitionChecked(cached)).toBe(false);
    markDefinitionChecked(synthesized);
    expect(definitionChecked(await loadTemplate({ cacheDir }))).toBe(true);

    const other = await loadTemplate({ cacheDir, context: { 'selfinstruct:mapConcurrency': 3 } });
    expect(other.from).toBe('synthesis');
    expect(other.template).not.toEqual(synthesized.template); // the schedule's and upload's run input
    expect(readdirSync(cacheDir).filter((file) => file.endsWith('.json'))).toHaveLength(2);
    expect(definitionChecked(other)).toBe(false);
  }, 120_000);
});
