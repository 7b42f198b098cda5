import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as keys from '../../functions/shared/keys.ts';
import { CONTROL_STATES, STAGES, type StageSpec } from '../../functions/stages.ts';
import { PERMISSIONS_MARKERS, permissionsTable, withPermissionsTable } from '../../infra/permissions.ts';

const stages = Object.values(STAGES as Record<string, StageSpec>);

describe('the stage registry', () => {
  it('names a handler module for every stage', () => {
    for (const stage of stages) {
      expect(existsSync(`functions/${stage.folder}/handler.ts`), stage.folder).toBe(true);
    }
  });

  it('gives every state its own readable name', () => {
    const names = [
      ...stages.flatMap((stage) => [stage.state, ...(stage.mapState ? [stage.mapState] : [])]),
      ...Object.values(CONTROL_STATES),
    ];
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[A-Z][a-z]+( [a-z]+)*\??$/);
  });

  it('takes every S3 prefix from keys.ts', () => {
    const known = new Set<unknown>(Object.values(keys));
    for (const stage of stages) {
      for (const prefix of [...stage.s3.read, ...stage.s3.write, ...stage.s3.list]) {
        expect(known, `${stage.state}: ${prefix}`).toContain(prefix);
        expect(prefix).toMatch(/^[a-z]+\/$/);
      }
    }
  });

  it('reads every prefix a stage lists (S3 grants listing with reading)', () => {
    for (const stage of stages) {
      for (const prefix of stage.s3.list) expect(stage.s3.read, stage.state).toContain(prefix);
    }
  });

  it('lets the model-calling stages alone call the model', () => {
    expect(stages.filter((stage) => stage.callsModel).map((stage) => stage.folder)).toEqual([
      'generate-instructions',
      'generate-instances',
    ]);
  });
});

describe('the README', () => {
  it('shows the permissions table generated from the registry (regenerate: npx tsx infra/permissions.ts --write)', () => {
    const readme = readFileSync('README.md', 'utf8');

    expect(readme).toContain(
      `${PERMISSIONS_MARKERS.begin}\n${permissionsTable()}\n${PERMISSIONS_MARKERS.end}`,
    );
    expect(withPermissionsTable(readme)).toBe(readme);
  });

  it('gets a row per stage, with its prefixes', () => {
    const rows = permissionsTable().split('\n').slice(2);

    expect(rows).toHaveLength(stages.length);
    expect(rows[stages.indexOf(STAGES.saveIteration)]).toBe(
      '| Save iteration | `runs/` `prices/` | `pools/` `runs/` | – | read and write items | `states:DescribeExecution` (its own execution) | – |',
    );
    expect(rows[stages.indexOf(STAGES.gateShard)]).toMatch(/\| – \| – \| – \|$/);
  });
});
