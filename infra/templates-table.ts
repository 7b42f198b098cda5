/**
 * The README's list of prompt templates, generated from the table the renderers are typed by
 * (`PROMPT_TEMPLATES` in `functions/shared/prompt-templates.ts`), so that the names and placeholders it
 * documents are the ones "Prepare run" accepts (a test compares them).
 *
 *   npx tsx infra/templates-table.ts            # print the list
 *   npx tsx infra/templates-table.ts --write    # put it in README.md, between its markers
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROMPT_TEMPLATES, type TemplateSpec } from '../functions/shared/prompt-templates.ts';
import { withGenerated } from './permissions.ts';

/** The lines around the generated list in README.md. */
export const TEMPLATES_MARKERS = {
  begin:
    '<!-- templates: generated from functions/shared/prompt-templates.ts by `npx tsx infra/templates-table.ts --write` -->',
  end: '<!-- templates: end -->',
} as const;

/** The list of templates, in Markdown: one row per file. */
export function templatesTable(): string {
  const rows = Object.entries(PROMPT_TEMPLATES as Record<string, TemplateSpec>).map(([name, spec]) => [
    `\`${name}\``,
    spec.stage,
    spec.variables.map((variable) => `\`{{${variable}}}\``).join(' ') || '–',
    spec.use,
  ]);
  const header = ['file', 'stage', 'placeholders (all required)', 'used for'];
  return [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

/** `readme` with the text between the markers replaced by the generated list. */
export function withTemplatesTable(readme: string): string {
  return withGenerated(readme, TEMPLATES_MARKERS, templatesTable(), 'templates');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--write')) {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
    writeFileSync(file, withTemplatesTable(readFileSync(file, 'utf8')));
  } else {
    console.log(templatesTable());
  }
}
