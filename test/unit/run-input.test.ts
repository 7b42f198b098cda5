import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runInputJsonSchema } from '../../infra/cli/schema.ts';

describe('the run input JSON Schema', () => {
  it('is the one generated from the zod schema (regenerate: npm run -s cli -- schema > docs/run-input.schema.json)', () => {
    const committed = JSON.parse(readFileSync('docs/run-input.schema.json', 'utf8'));
    expect(committed).toEqual(runInputJsonSchema());
  });

  it('documents every field with its default', () => {
    const schema = runInputJsonSchema() as { properties: Record<string, { description?: string }> };
    expect(Object.keys(schema.properties)).toContain('mapConcurrency');
    for (const [name, property] of Object.entries(schema.properties)) {
      if (name !== 'trigger') expect(property.description, name).toBeTruthy();
    }
  });
});
