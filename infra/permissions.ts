/**
 * The README's "Permissions" table, generated from the stage registry (`functions/stages.ts`), so that
 * what the README says each stage may do is what `infra/workflow.ts` grants it (a test compares them).
 *
 *   npx tsx infra/permissions.ts            # print the table
 *   npx tsx infra/permissions.ts --write    # put it in README.md, between its markers
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { STAGES, type StageSpec } from '../functions/stages.ts';

/** The lines around the generated table in README.md. */
export const PERMISSIONS_MARKERS = {
  begin: '<!-- permissions: generated from functions/stages.ts by `npx tsx infra/permissions.ts --write` -->',
  end: '<!-- permissions: end -->',
} as const;

const code = (items: readonly string[]) => (items.length > 0 ? items.map((i) => `\`${i}\``).join(' ') : '–');

const TABLE_ACCESS: Record<StageSpec['dynamodb'], string> = {
  none: '–',
  read: 'read items',
  readWrite: 'read and write items',
};

/** The permissions table, in Markdown: one row per stage function. */
export function permissionsTable(): string {
  const rows = Object.values(STAGES as Record<string, StageSpec>).map((stage) => [
    stage.state,
    [
      ...stage.s3.read.map((prefix) => `\`${prefix}\``),
      ...stage.s3.get.map((prefix) => `\`${prefix}\` (by key, no listing)`),
    ].join(' ') || '–',
    code(stage.s3.write),
    code(stage.s3.list),
    TABLE_ACCESS[stage.dynamodb],
    stage.takesLeaseBack ? '`states:DescribeExecution` (its own execution)' : '–',
    [
      ...(stage.callsModel
        ? [
            `API key secret, deployed Bedrock model${stage.callsJudgeModel ? ', judge model' : ''}${stage.callsTeacherModel ? ' and teacher model' : ''}`,
          ]
        : []),
      ...(stage.callsEmbeddingModel ? ['API key secret, deployed Bedrock embedding model'] : []),
      ...(stage.screensSafety ? ['deployed Bedrock guardrail (`bedrock:ApplyGuardrail`)'] : []),
    ].join('; ') || '–',
  ]);
  const header = ['stage', 'S3 read', 'S3 write', 'S3 list', 'DynamoDB table', 'Step Functions', 'model'];
  return [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

/** `readme` with the text between the markers replaced by the generated table. */
export function withPermissionsTable(readme: string): string {
  return withGenerated(readme, PERMISSIONS_MARKERS, permissionsTable(), 'permissions');
}

/** `readme` with the text between `markers` replaced by `text` (a README section generated from code). */
export function withGenerated(
  readme: string,
  markers: { readonly begin: string; readonly end: string },
  text: string,
  what: string,
): string {
  const begin = readme.indexOf(markers.begin);
  const end = readme.indexOf(markers.end);
  if (begin < 0 || end < begin) throw new Error(`README.md has no ${what} markers`);
  return `${readme.slice(0, begin + markers.begin.length)}\n${text}\n${readme.slice(end)}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--write')) {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
    writeFileSync(file, withPermissionsTable(readFileSync(file, 'utf8')));
  } else {
    console.log(permissionsTable());
  }
}
