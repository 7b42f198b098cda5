/**
 * The Evol-Instruct part of a run report (`method: evol`): counts per operation and per elimination
 * rule, and the evolution tree's depth distribution (`EvolutionStats`), and the report's small section
 * drawing them. Pure.
 */
import type { GateRecord, TaskLine } from '../../../functions/shared/records.ts';
import { EvolElimination, EvolOperation } from '../../../functions/shared/schemas.ts';
import type { EvolutionStats, ReportStats } from './schema.ts';

const isElimination = (reason: string | null | undefined): reason is EvolElimination =>
  EvolElimination.safeParse(reason).success;

/**
 * The evolution stats of a run: `gate` its gate lines (each evolved candidate's carries its lineage),
 * `tasks` its added tasks, `instanceRejections` why a task that passed the gate was dropped, by task id.
 */
export function evolutionStats(
  gate: readonly GateRecord[],
  tasks: readonly TaskLine[],
  instanceRejections: Readonly<Record<string, string>>,
): EvolutionStats {
  const operations = Object.fromEntries(
    EvolOperation.options.map((operation) => [operation, { generated: 0, eliminated: 0, added: 0 }]),
  ) as EvolutionStats['operations'];
  const eliminations = Object.fromEntries(
    EvolElimination.options.map((reason) => [reason, 0]),
  ) as EvolutionStats['eliminations'];
  for (const decision of gate) {
    const reason =
      decision.status === 'rejected' ? decision.reason : decision.id && instanceRejections[decision.id];
    const operation = decision.lineage && operations[decision.lineage.operation];
    if (operation) operation.generated++;
    if (!isElimination(reason)) continue;
    eliminations[reason]++;
    if (operation) operation.eliminated++;
  }
  const depths = new Map<number, number>();
  for (const { lineage } of tasks) {
    if (!lineage) continue;
    operations[lineage.operation].added++;
    depths.set(lineage.depth, (depths.get(lineage.depth) ?? 0) + 1);
  }
  const maxDepth = Math.max(0, ...depths.keys());
  return {
    operations,
    eliminations,
    depths: Array.from({ length: maxDepth }, (_, i) => ({ depth: i + 1, tasks: depths.get(i + 1) ?? 0 })),
    maxDepth,
  };
}

const RULES: Record<EvolElimination, string> = {
  'evol-no-gain': 'no information gain over its parent (the model judged them equal)',
  'evol-copied-prompt': 'copies the evolving prompt’s own words (“#Rewritten Prompt#”, “given prompt” …)',
  'evol-could-not-answer': 'a response apologizes (“sorry”) in fewer than 80 words',
  'evol-stopwords-only': 'a response has only punctuation and stop words',
};

/** The report's Evol-Instruct section, or nothing for a run of another method. */
export function evolutionSection({ evolution }: Pick<ReportStats, 'evolution'>): string {
  if (evolution === null) return '';
  const cell = (n: number) => `<td class="num">${n.toLocaleString('en-US')}</td>`;
  const operations = Object.entries(evolution.operations).map(
    ([name, { generated, eliminated, added }]) =>
      `<tr><td><code>${name}</code></td>${cell(generated)}${cell(eliminated)}${cell(added)}</tr>`,
  );
  const rules = Object.entries(evolution.eliminations).map(
    ([reason, n]) =>
      `<tr><td><code>${reason}</code></td><td>${RULES[reason as EvolElimination]}</td>${cell(n)}</tr>`,
  );
  const depths = evolution.depths.map(
    ({ depth, tasks }) => `<tr><td class="num">${depth}</td>${cell(tasks)}</tr>`,
  );
  return `<section id="evolution">
<h2>Evolution (Evol-Instruct)</h2>
<p class="note">Each candidate is a pool instruction evolved by one operation (Xu et al., 2023, <i>WizardLM</i>); the paper’s elimination rules drop failed evolutions before the gate (no gain, copied prompt) or after the instances (the response).</p>
<table class="data narrow" id="evolution-operations">
<thead><tr><th>Operation</th><th>Generated</th><th>Eliminated</th><th>Added</th></tr></thead>
<tbody>
${operations.join('\n')}
</tbody></table>
<table class="data narrow" id="evolution-eliminations">
<thead><tr><th>Elimination</th><th>Rule</th><th>Dropped</th></tr></thead>
<tbody>
${rules.join('\n')}
</tbody></table>
<table class="data narrow" id="evolution-depths">
<thead><tr><th>Depth</th><th>Added tasks</th></tr></thead>
<tbody>
${depths.join('\n')}
</tbody></table>
<p class="note">Depth in the evolution tree: 1 for a task evolved from a seed (or from a task not made by evolution), its parent’s depth + 1 otherwise.</p>
</section>`;
}
