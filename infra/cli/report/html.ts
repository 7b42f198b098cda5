/**
 * The run report as one self-contained HTML file: inline CSS, the stats as a JSON island, Apache ECharts
 * (`echarts/dist/echarts.min.js`, read at run time) and the chart code (`charts.js`) inline, tables
 * rendered here. It opens from disk with no network, and prints.
 *
 * Every string from the data is untrusted model output: text goes through `escapeHtml`, the JSON island
 * through `jsonForScript`, and a Content-Security-Policy allows only the two inline scripts (by hash) and
 * no requests at all, so that even a missed escape could not run a script or call out.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { METHODS, type MethodDescription, RESPONSE_STYLES } from '../../../functions/shared/methods.ts';
import { formatUsd as usd } from '../../../functions/shared/pricing/money.ts';
import { evolutionSection } from './evolution.ts';
import type { QualityStats, ReportStats, SafetyCounts, SampledTask } from './schema.ts';

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text made safe for HTML element content and quoted attribute values. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ENTITIES[c] as string);

/**
 * JSON for a `<script type="application/json">` island: `<`, `>`, `&`, U+2028 and U+2029 become `\u`
 * escapes (the same string to `JSON.parse`), so no data can close the element (`</script>`), open a
 * comment (`<!--`) or end a JavaScript line.
 */
export const jsonForScript = (value: unknown): string =>
  JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`,
  );

/**
 * JavaScript for an inline `<script>`: `</script` can only occur inside a string, a regular expression or
 * a comment, where `<\/script` means the same; `<!--` would change how the HTML parser ends the element,
 * so a script that contains it is refused. Line ends become LF.
 */
export function inlineScript(code: string): string {
  if (code.includes('<!--')) throw new Error('inline script contains "<!--"');
  // The HTML parser turns CR LF into LF before the CSP hash is taken: hash what it will see.
  return code.replace(/\r\n?/g, '\n').replace(/<\/(script)/gi, '<\\/$1');
}

let scripts: { echarts: string; charts: string } | undefined;

/** ECharts' minified build and the chart code, read once. */
function loadScripts() {
  scripts ??= {
    echarts: inlineScript(
      readFileSync(createRequire(import.meta.url).resolve('echarts/dist/echarts.min.js'), 'utf8'),
    ),
    charts: inlineScript(readFileSync(new URL('./charts.js', import.meta.url), 'utf8')),
  };
  return scripts;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

// ---------------------------------------------------------------------------------------------------
// Formatting.

const integer = (n: number) => n.toLocaleString('en-US');
const percent = (x: number | null) => (x === null ? '–' : `${(100 * x).toFixed(1)}%`);
const score = (x: number | null) => (x === null ? '–' : x.toFixed(3));
const entries = (map: Record<string, number>) => {
  const list = Object.entries(map).filter(([, n]) => n > 0);
  return list.length === 0 ? 'none' : list.map(([key, n]) => `${key} ${integer(n)}`).join(', ');
};
/** Long model output is cut in the tables (stats.json has it whole). */
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const text = (value: string, max = 400) => escapeHtml(clip(value, max));

// ---------------------------------------------------------------------------------------------------
// Sections.

function headline(stats: ReportStats): string {
  const { run, totals } = stats;
  const estimated = run.tokensEstimated ? ' (estimated)' : '';
  const costNote = totals.cost.modelUnpriced
    ? ` (no price for ${run.model}: model cost left out)`
    : run.model === 'offline'
      ? ' (the offline model is free; AWS is what the run would cost deployed)'
      : '';
  const rows: [string, string][] = [
    ['Run', run.runId],
    ['Pool', `${run.pool}: ${integer(totals.poolSizeBefore)} → ${integer(totals.poolSizeAfter)} tasks`],
    ['Model / profile', `${run.model} / ${run.profile}`],
    ['Status', `${run.status}${run.stopReason ? `: ${run.stopReason}` : ''}`],
    ['Started / ended', `${run.startedAt} / ${run.endedAt ?? '–'}`],
    ['ROUGE-L threshold', `${run.rougeThreshold} (a candidate is rejected above it)`],
    ['Seed tasks', integer(totals.seeds)],
    [
      'Iterations',
      `${integer(totals.iterations)}${run.maxIterations === null ? '' : ` of at most ${run.maxIterations}`}`,
    ],
    ['Target', run.target === null ? '–' : `${integer(run.target)} new tasks`],
    ['Candidates generated', integer(totals.generated)],
    ['Rejected', entries(totals.rejected)],
    ['Passed filters and ROUGE-L', `${integer(totals.accepted)} (${percent(totals.acceptanceRate)})`],
    ['Dropped at the instance stage', entries(totals.droppedAtInstances)],
    [
      'Added (tasks with valid instances)',
      `${integer(totals.added)} (${percent(totals.yieldRate)} of candidates), ${integer(totals.instances)} instances`,
    ],
    ['Model calls', integer(totals.usage.calls)],
    [
      'Tokens in / out',
      `${integer(totals.usage.inputTokens)} / ${integer(totals.usage.outputTokens)}${estimated}`,
    ],
    [
      'Cost (estimated)',
      `${usd(totals.cost.totalUsd)} = model ${usd(totals.cost.modelUsd)} + AWS ${usd(totals.cost.awsUsd)}${costNote}`,
    ],
    [
      'Per 1,000 added tasks',
      totals.per1000Added === null
        ? '–'
        : `${usd(totals.per1000Added.usd)}, ${integer(Math.round(totals.per1000Added.tokens))} tokens`,
    ],
    ...qualityHeadline(stats),
  ];
  return `<table class="kv" id="headline"><tbody>
${rows.map(([key, value]) => `<tr><th scope="row">${escapeHtml(key)}</th><td>${escapeHtml(value)}</td></tr>`).join('\n')}
</tbody></table>`;
}

/** The summary's rows on the quality checks. */
function qualityHeadline({ run, totals, nearDuplicates }: ReportStats): [string, string][] {
  const { quality, safety } = totals;
  const fullyValid = PAPER_AUDIT.find(([field]) => field === 'fullyValid')?.[2] ?? 0;
  return [
    [
      'Judge',
      quality === null || run.judgeModel === null
        ? notMeasured('judgeModel')
        : `${run.judgeModel}: mean score ${quality.meanScore === null ? '–' : quality.meanScore.toFixed(2)} of 5, ${percent(quality.fullyValid)} fully valid (the paper: ${percent(fullyValid)}), ${integer(quality.scores.unscored)} unscored`,
    ],
    [
      'Near-duplicates (embeddings)',
      nearDuplicates === null
        ? notMeasured('embeddingModel')
        : `${integer(nearDuplicates.count)} rejected (${nearDuplicates.embeddingModel}, cosine above ${nearDuplicates.threshold ?? '–'})`,
    ],
    [
      'Safety screen',
      safety === null || run.safetyScreen === null
        ? notMeasured('safetyScreen')
        : `${run.safetyScreen}: ${flagged(safety)}`,
    ],
  ];
}

/** What a check that did not run shows instead of its numbers. */
const notMeasured = (option: 'judgeModel' | 'embeddingModel' | 'safetyScreen') =>
  `not measured: ${option} none`;

/** The safety screen's flags in a line. */
const flagged = ({ instructions, instances }: SafetyCounts) =>
  Object.keys(instructions).length + Object.keys(instances).length === 0
    ? 'nothing flagged'
    : `instructions ${entries(instructions)}; instances ${entries(instances)}`;

function iterationTable(stats: ReportStats): string {
  const rows = stats.iterations.map(
    (it) => `<tr>
<td class="num">${it.iteration}${it.saved ? '' : '*'}</td><td class="num">${integer(it.generated)}</td>
<td>${escapeHtml(entries(it.rejected))}</td><td class="num">${integer(it.accepted)}</td>
<td>${escapeHtml(entries(it.droppedAtInstances))}</td><td class="num">${integer(it.added)}</td>
<td class="num">${integer(it.poolSize)}</td><td class="num">${percent(it.acceptanceRate)}</td>
<td class="num">${integer(it.usage.inputTokens)} / ${integer(it.usage.outputTokens)}</td>
<td class="num">${usd(it.cost.totalUsd)}</td>
<td class="num">${it.per1000Added === null ? '–' : usd(it.per1000Added.usd)}</td></tr>`,
  );
  const unsaved = stats.iterations.some((it) => !it.saved)
    ? '<p class="note">* not saved in the run record (the run stopped in it): no usage or cost.</p>'
    : '';
  return `<table class="data" id="iterations">
<thead><tr><th>Iteration</th><th>Generated</th><th>Rejected</th><th>Accepted</th><th>Dropped at instances</th>
<th>Added</th><th>Pool size</th><th>Accepted %</th><th>Tokens in / out</th><th>Cost</th><th>Per 1,000 added</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>${unsaved}`;
}

/** Batch mode's share of each iteration's instance calls; empty without batch mode. */
function batchTable(stats: ReportStats): string {
  const rows = stats.iterations.flatMap(({ iteration, batch }) => {
    if (batch === null) return [];
    const job = batch.belowMinimum
      ? `on demand: ${text(batch.reason ?? 'below the minimum of records per job', 200)}`
      : `${escapeHtml(batch.provider)} job <code>${text(batch.jobId ?? '', 80)}</code>`;
    return [
      `<tr><td class="num">${iteration}</td><td>${job}</td><td class="num">${integer(batch.planned)}</td><td class="num">${integer(batch.sent)}</td><td class="num">${integer(batch.served)}</td><td class="num">${integer(batch.failed)}</td><td class="num">${integer(batch.madeOnDemand)}</td></tr>`,
    ];
  });
  if (rows.length === 0) return '';
  return `<table class="data" id="batch">
<thead><tr><th>Iteration</th><th>Batch job</th><th>Instance calls</th><th>Sent to the job</th><th>Served from it</th><th>Failed by it</th><th>Of those, made on demand</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
<p class="note">Batch mode: each iteration's instance calls go to the provider's batch job at its batch price; a record the job failed is made on demand (on-demand price), and an iteration with fewer calls than the provider's minimum per job runs on demand entirely.</p>`;
}

function neighbourList(task: SampledTask): string {
  if (task.neighbours.length === 0) return '<span class="muted">–</span>';
  return `<ol class="neighbours">${task.neighbours
    .map((n) => `<li><span class="score">${score(n.score)}</span> ${text(n.instruction, 200)}</li>`)
    .join('')}</ol>`;
}

const STAGES: Record<NonNullable<SampledTask['stage']>, string> = {
  filter: 'filter',
  gate: 'ROUGE-L gate',
  instances: 'instance stage',
};

function sampleTable(id: string, tasks: SampledTask[], kind: 'added' | 'rejected'): string {
  if (tasks.length === 0) return `<p class="no-data" id="${id}">No ${kind} tasks.</p>`;
  const head =
    kind === 'added'
      ? '<th>#</th><th>Iter.</th><th>Instruction</th><th>First instance (input → output)</th><th>ROUGE-L pool / seeds</th><th>Nearest in the pool</th>'
      : '<th>#</th><th>Iter.</th><th>Instruction</th><th>Reason</th><th>ROUGE-L pool</th><th>Nearest in the pool</th>';
  const rows = tasks.map((task, i) => {
    const middle =
      kind === 'added'
        ? `<td>${
            task.example
              ? `<div class="io"><span class="label">input</span> ${task.example.input === '' ? '<span class="muted">(empty)</span>' : text(task.example.input, 300)}</div>
<div class="io"><span class="label">output</span> ${text(task.example.output, 300)}</div>`
              : '–'
          }${task.instances > 1 ? `<div class="muted">${task.instances} instances</div>` : ''}</td>
<td class="num">${score(task.maxSimilarity)} / ${score(task.seedSimilarity)}</td>`
        : `<td>${escapeHtml(task.reason ?? '–')}${task.stage ? ` <span class="muted">(${STAGES[task.stage]})</span>` : ''}</td><td class="num">${score(task.maxSimilarity)}</td>`;
    return `<tr data-sample="${kind}"><td class="num">${i + 1}</td><td class="num">${task.iteration}</td>
<td class="instruction">${text(task.instruction)}${task.isClassification ? ' <span class="tag">classification</span>' : ''}</td>
${middle}<td>${neighbourList(task)}</td></tr>`;
  });
  return `<table class="data samples" id="${id}"><thead><tr>${head}</tr></thead><tbody>
${rows.join('\n')}
</tbody></table>`;
}

// ---------------------------------------------------------------------------------------------------
// Quality.

/**
 * The Self-Instruct paper's quality review (Wang et al., 2022, section 4.2, Table 2): an expert
 * annotator's answers on 200 generated instructions with one instance each. Field of `QualityStats`,
 * question, share answered yes.
 */
export const PAPER_AUDIT = [
  ['instructionValid', 'Does the instruction describe a valid task?', 0.92],
  ['inputAppropriate', 'Is the input appropriate for the instruction?', 0.79],
  ['outputCorrect', 'Is the output a correct and acceptable response to the instruction and input?', 0.58],
  ['fullyValid', 'All fields are valid', 0.54],
] as const satisfies readonly (readonly [keyof QualityStats, string, number])[];

const diversityMeasured = (iterations: ReportStats['iterations']) =>
  iterations.some((it) => it.diversity !== null);

/** The one line a check that did not run shows instead of its charts and tables. */
const notMeasuredLine = (id: string, option: Parameters<typeof notMeasured>[0]) =>
  `<p class="no-data" id="${id}">${escapeHtml(notMeasured(option))}</p>`;

function auditTable(run: ReportStats['run'], quality: QualityStats): string {
  const scored = quality.judged - quality.scores.unscored;
  const rows = PAPER_AUDIT.map(
    ([field, question, paper]) =>
      `<tr><td>${escapeHtml(question)}</td><td class="num">${percent(quality[field])}</td><td class="num">${percent(paper)}</td></tr>`,
  );
  return `<table class="data" id="audit">
<thead><tr><th>Quality review question</th><th>This run<br><span class="muted">judge ${text(run.judgeModel ?? '–', 80)}, ${integer(scored)} tasks</span></th><th>Self-Instruct<br><span class="muted">human, 200 tasks</span></th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
<p class="note">Share of the scored tasks the judge answered yes for, next to the paper’s Table 2 (an expert’s review of 200 random GPT-3 tasks, one instance each). A model judging every task is not a human judging a sample: compare with care. Mean score ${quality.meanScore === null ? '–' : quality.meanScore.toFixed(2)} of 5${run.minQuality === null ? '' : `; tasks below ${run.minQuality} are dropped as <code>low-quality</code>`}.</p>`;
}

function scoreTable(stats: ReportStats): string {
  const row = (label: string, q: QualityStats) =>
    `<tr><td class="num">${label}</td><td class="num">${integer(q.judged)}</td>${(
      [1, 2, 3, 4, 5, 'unscored'] as const
    )
      .map((key) => `<td class="num">${integer(q.scores[key])}</td>`)
      .join(
        '',
      )}<td class="num">${q.meanScore === null ? '–' : q.meanScore.toFixed(2)}</td><td class="num">${percent(q.fullyValid)}</td></tr>`;
  const rows = stats.iterations.flatMap((it) => (it.quality ? [row(String(it.iteration), it.quality)] : []));
  if (stats.totals.quality) rows.push(row('run', stats.totals.quality));
  return `<table class="data" id="quality-scores-table">
<thead><tr><th>Iteration</th><th>Judged</th><th>1</th><th>2</th><th>3</th><th>4</th><th>5</th><th>Unscored</th><th>Mean</th><th>Fully valid</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>`;
}

function safetyBlock({ run, totals }: ReportStats): string {
  const { safety } = totals;
  if (safety === null) return notMeasuredLine('safety', 'safetyScreen');
  const categories = [...new Set([...Object.keys(safety.instructions), ...Object.keys(safety.instances)])];
  const screen = `the <code>${text(run.safetyScreen ?? '–', 200)}</code> screen`;
  if (categories.length === 0) {
    return `<p id="safety">Nothing flagged by ${screen}, in the candidate instructions or the generated instances.</p>`;
  }
  const rows = categories.map(
    (category) =>
      `<tr><td>${text(category, 80)}</td><td class="num">${integer(safety.instructions[category] ?? 0)}</td><td class="num">${integer(safety.instances[category] ?? 0)}</td></tr>`,
  );
  return `<table class="data narrow" id="safety">
<thead><tr><th>Category</th><th>Candidate instructions</th><th>Instances</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
<p class="note">Flagged by ${screen} and dropped: an instruction at the filter (<code>unsafe-&lt;category&gt;</code>), an instance at the instance stage (a task left with none is dropped as <code>no-valid-instances</code>). Their texts stay out of this report, stored with the export; <code>runs/&lt;run&gt;/iteration-&lt;n&gt;/gate.jsonl</code> keeps the instructions for review.</p>`;
}

function nearDuplicateBlock({ nearDuplicates, samples }: ReportStats): string {
  if (nearDuplicates === null) return notMeasuredLine('near-duplicates', 'embeddingModel');
  const { count, embeddingModel, threshold, examples } = nearDuplicates;
  const intro = `<p>${integer(count)} candidates rejected as <code>near-duplicate</code>: their highest cosine to the pool (or to a candidate accepted before them) by <code>${text(embeddingModel, 200)}</code> embeddings was above ${threshold ?? '–'}, though ROUGE-L let them through.</p>`;
  if (examples.length === 0) return `${intro}<p class="no-data" id="near-duplicates">No near-duplicates.</p>`;
  const rows = examples.map(
    (example, i) =>
      `<tr><td class="num">${i + 1}</td><td class="num">${example.iteration}</td><td class="instruction">${text(example.instruction)}</td><td class="instruction">${example.nearestInstruction === null ? '<span class="muted">–</span>' : text(example.nearestInstruction)}</td><td class="num">${score(example.cosine)}</td></tr>`,
  );
  return `${intro}
<table class="data" id="near-duplicates">
<thead><tr><th>#</th><th>Iter.</th><th>Rejected instruction</th><th>Nearest instruction</th><th>Cosine</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
<p class="note">${integer(examples.length)} of them, drawn with the seed <code>${escapeHtml(samples.seed)}</code>.</p>`;
}

function diversityBlock({ run, iterations, nearDuplicates, plateau }: ReportStats): string {
  if (!diversityMeasured(iterations)) {
    return '<p class="no-data" id="diversity-not-measured">not measured: no iteration of the run saved diversity figures</p>';
  }
  const rule =
    plateau === null
      ? 'The run had no plateau rule (<code>diversityPlateau: false</code>).'
      : `The plateau rule watches <code>${plateau.figure}</code> (${plateau.metric}): below ${percent(plateau.floor)} (the dashed line) for ${plateau.iterations} iteration${plateau.iterations === 1 ? '' : 's'} in a row stops the run. Below the floor: ${plateau.belowFloor.length === 0 ? 'no iteration' : `iteration ${plateau.belowFloor.join(', ')}`}. ${plateau.stoppedAt === null ? 'The run did not stop for a plateau.' : `The run stopped after iteration ${plateau.stoppedAt} for a plateau (the vertical line): ${text(run.stopReason ?? '', 300)}.`}`;
  const clusters =
    nearDuplicates === null ? ` New clusters: ${escapeHtml(notMeasured('embeddingModel'))}.` : '';
  return `<div class="grid">
${figure('diversity-curves', 'New diversity per iteration', `Of each iteration’s added tasks, the share with a verb–noun pair new to the run and the share opening a new cluster (nearest earlier instruction by embedding below <code>newClusterCosine</code>), as “Save iteration” measured them.${clusters} ${rule}`)}
</div>`;
}

function qualitySection(stats: ReportStats): string {
  const { quality } = stats.totals;
  const judge =
    quality === null
      ? notMeasuredLine('judge-not-measured', 'judgeModel')
      : `<div class="grid">
${figure('quality-scores', 'Judge scores per iteration', 'Tasks the judge rated 1 (poor) to 5 (excellent), per iteration, and those left unscored (verdict unreadable or judge call lost); tasks dropped as <code>low-quality</code> count too.')}
<div class="side">${auditTable(stats.run, quality)}</div>
</div>
${scoreTable(stats)}`;
  return `<section id="quality">
<h2>Quality</h2>
<h3 class="part">The judge</h3>
${judge}
<h3 class="part">Safety screen</h3>
${safetyBlock(stats)}
<h3 class="part">Near-duplicates by embedding</h3>
${nearDuplicateBlock(stats)}
<h3 class="part">Diversity and the plateau</h3>
${diversityBlock(stats)}
</section>`;
}

/** A chart's figure: the element the chart code draws into, and its caption. */
const figure = (id: string, title: string, caption: string, wide = false) =>
  `<figure class="chart${wide ? ' wide' : ''}"><h3>${escapeHtml(title)}</h3><div class="plot" id="${id}" role="img" aria-label="${escapeHtml(title)}"></div><figcaption>${caption}</figcaption></figure>`;

/** The chart ids of the report, in page order (each records its status on `window.__charts`). */
export const CHART_IDS = [
  'pool-growth',
  'acceptance-rate',
  'quality-scores',
  'diversity-curves',
  'rouge-seeds',
  'rouge-pool',
  'length-instructions',
  'length-inputs',
  'length-outputs',
  'verb-noun',
  'tokens-cost',
  'per-1000',
] as const;

/** The charts a report of `stats` draws: all but those of a check the run did not have. */
export const chartIdsOf = (stats: ReportStats): string[] =>
  CHART_IDS.filter(
    (id) =>
      (id !== 'quality-scores' || stats.totals.quality !== null) &&
      (id !== 'diversity-curves' || diversityMeasured(stats.iterations)),
  );

const STYLE = `
:root { --ink: #222; --muted: #666; --rule: #d0d0d0; --soft: #f4f4f2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); font-weight: 600; }
h3 { font-size: 14px; margin: 0 0 4px; font-weight: 600; }
p { margin: 6px 0; }
.sub, .muted, figcaption, .note { color: var(--muted); }
figcaption, .note { font-size: 12.5px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft); padding: 0 3px; }
.grid { display: flex; flex-wrap: wrap; gap: 20px; }
figure.chart { margin: 0; width: 550px; break-inside: avoid; page-break-inside: avoid; }
figure.chart.wide { width: 100%; max-width: 1120px; }
.plot { width: 550px; height: 320px; }
figure.wide .plot { width: 100%; height: 560px; }
.plot.empty { display: flex; align-items: center; justify-content: center; border: 1px dashed var(--rule); background: var(--soft); }
.no-data { color: var(--muted); font-style: italic; }
.side { flex: 1 1 480px; min-width: 0; }
h3.part { font-size: 15px; margin: 22px 0 8px; }
table.data.narrow { width: auto; min-width: 50%; }
table { border-collapse: collapse; font-size: 13px; }
table.kv th { text-align: left; font-weight: 600; padding: 3px 16px 3px 0; vertical-align: top; white-space: nowrap; }
table.kv td { padding: 3px 0; }
table.data { width: 100%; margin: 8px 0; }
table.data th { text-align: left; font-weight: 600; border-bottom: 1.5px solid var(--ink); padding: 4px 6px; vertical-align: bottom; }
table.data td { border-bottom: 1px solid var(--rule); padding: 5px 6px; vertical-align: top; overflow-wrap: anywhere; }
table.data tr { break-inside: avoid; page-break-inside: avoid; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.instruction { width: 32%; }
.samples td:nth-child(4) { width: 26%; }
.io { margin-bottom: 3px; white-space: pre-wrap; }
.label { font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.tag { font-size: 11px; color: var(--muted); border: 1px solid var(--rule); border-radius: 3px; padding: 0 4px; white-space: nowrap; }
ol.neighbours { margin: 0; padding-left: 18px; font-size: 12.5px; }
.score { font-variant-numeric: tabular-nums; color: var(--muted); }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); }
@media print {
  @page { margin: 14mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  noscript { display: none; }
  figure.chart.wide { width: 100%; }
  figure.wide .plot { width: 100%; height: 520px; }
  table.data { font-size: 8pt; }
  table.data th, table.data td { padding: 3px 3px; }
}
`;

/**
 * The papers the run followed, in the method registry's words (`functions/shared/methods.ts`): its
 * method, in Self-Instruct's loop (section 3), and the explanation traces of explained responses.
 */
function methodText({ method, responseStyle }: Pick<ReportStats['run'], 'method' | 'responseStyle'>): string {
  const cite = ({ name, paper }: MethodDescription) =>
    `${escapeHtml(paper.cite)}, <i>${escapeHtml(name)}</i>`;
  const loop = `${cite(METHODS['self-instruct'])}, section 3`;
  const style = RESPONSE_STYLES[responseStyle];
  return (
    (method === 'self-instruct'
      ? `the method follows ${loop}`
      : `the method follows ${cite(METHODS[method])}, in the loop of ${loop}`) +
    (style ? `; the responses follow ${cite(style)}` : '')
  );
}

/**
 * The report page for `stats` (see `computeStats`): headline numbers, the charts (pool growth,
 * acceptance rate, ROUGE-L to the seeds and to the pool, lengths, verb–noun sunburst, tokens and cost),
 * the per-iteration table, the quality section (the judge's scores and the audit table next to the
 * paper's, the safety screen's flags, near-duplicates with examples, diversity per iteration with the
 * plateau rule; "not measured" for a check the run did not have) and the sampled tasks. One file, no
 * network.
 */
export function renderReport(stats: ReportStats): string {
  const { echarts, charts } = loadScripts();
  const { run, totals, verbNoun, lengths, similarity } = stats;
  const title = `Self-Instruct run report: ${run.runId}`;
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(echarts)} ${sha256(charts)}`,
    "style-src 'unsafe-inline'",
    'img-src data:',
  ].join('; ');
  const structureShare = verbNoun.instructions > 0 ? verbNoun.withStructure / verbNoun.instructions : null;

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header>
<h1>Self-Instruct run report</h1>
<p class="sub">Run <code>${escapeHtml(run.runId)}</code> on pool <code>${escapeHtml(run.pool)}</code>, ${escapeHtml(run.model)} / ${escapeHtml(run.profile)}, ${escapeHtml(run.status.toLowerCase())}. Numbers as in <code>stats.json</code>; ${methodText(run)}.</p>
<noscript><p class="note">The charts need JavaScript; the tables hold the numbers.</p></noscript>
</header>

<section id="summary">
<h2>Summary</h2>
${headline(stats)}
</section>

<section id="growth">
<h2>Pool growth</h2>
<div class="grid">
${figure('pool-growth', 'Candidates by outcome and pool size', 'Each bar is one iteration’s candidates (one gate decision each): rejected by a heuristic filter, by the ROUGE-L gate (<code>rouge</code>) or as duplicates; accepted but left without a valid instance; added to the dataset. The line is the pool size (seeds included) after the iteration.')}
${figure('acceptance-rate', 'Acceptance rate', 'Share of each iteration’s candidates that passed the filters and the ROUGE-L gate, and share added with valid instances. It falls as the pool fills up with similar instructions.')}
</div>
${iterationTable(stats)}
</section>

${qualitySection(stats)}

${evolutionSection(stats)}

<section id="similarity">
<h2>Overlap with the seeds and the pool (ROUGE-L)</h2>
<div class="grid">
${figure('rouge-seeds', 'ROUGE-L to the seed tasks', `For each added instruction, the highest ROUGE-L F against the ${integer(totals.seeds)} seed instructions (the engine’s scores, Google <code>rouge-score</code>’s RougeL), in bins of 0.1 (the Self-Instruct paper’s figure 3). Mass at low scores means new instructions, not paraphrases of the seeds.`)}
${figure('rouge-pool', 'ROUGE-L to the pool at the gate', `The gate’s highest score against the pool as it was at that moment (seeds and every instruction accepted before), for the added instructions and for those the gate rejected (above ${escapeHtml(String(similarity.threshold))}, or duplicates). Candidates a filter rejected never reach the gate.`)}
</div>
</section>

<section id="lengths">
<h2>Lengths</h2>
<div class="grid">
${figure('length-instructions', 'Instructions', `Words (whitespace-separated) per added instruction; n = ${integer(lengths.instructions.count)}.`)}
${figure('length-inputs', 'Inputs', `Words per non-empty instance input; ${integer(lengths.emptyInputs)} instances have an empty input and are left out, as in the paper.`)}
${figure('length-outputs', 'Outputs', `Words per instance output; n = ${integer(lengths.outputs.count)}.`)}
</div>
</section>

<section id="diversity">
<h2>Verbs and their objects</h2>
<div class="grid">
${figure(
  'verb-noun',
  'Root verbs (inner ring) and their direct noun objects (outer ring)',
  `The ${verbNoun.verbs.length} most common root verbs of the added instructions and, for each, its 4 most common direct noun objects, as in the paper’s figure 2. ${integer(verbNoun.withStructure)} of ${integer(verbNoun.instructions)} instructions (${percent(structureShare)}) have this structure; questions, statements and verbs without a noun object don’t. The paper used a constituency parser; this report approximates it with the compromise part-of-speech tagger: the first verb of the first sentence that reads as a command, and the head of the noun phrase right after it, lemmatized.`,
  true,
)}
</div>
</section>

<section id="cost">
<h2>Tokens and cost</h2>
<div class="grid">
${figure('tokens-cost', 'Tokens and estimated cost per iteration', `Input and output tokens of every model call of the iteration${run.tokensEstimated ? ' (estimated)' : ''}, and its estimated cost in USD (model tokens at the price table’s rates, plus the AWS side), from the run record.`)}
${figure('per-1000', 'Per 1,000 added tasks', `The same per 1,000 tasks the iteration added with valid instances: what scaling the dataset up costs. Over the run: ${totals.per1000Added === null ? '–' : `${usd(totals.per1000Added.usd)} and ${integer(Math.round(totals.per1000Added.tokens))} tokens`}.`)}
</div>
${batchTable(stats)}
</section>

<section id="samples">
<h2>Sampled tasks</h2>
<p class="note">Drawn at random with the seed <code>${escapeHtml(stats.samples.seed)}</code>; rejected ones spread over the reasons. Texts are model output, shown as text and cut at a few hundred characters (<code>stats.json</code> has them whole). Scores are ROUGE-L F.</p>
<h3>Added</h3>
${sampleTable('sample-added', stats.samples.added, 'added')}
<h3>Rejected</h3>
${sampleTable('sample-rejected', stats.samples.rejected, 'rejected')}
</section>

<footer>Made by selfinstruct. Charts: Apache ECharts (Apache License 2.0), inlined.</footer>
</main>
<script type="application/json" id="report-data">${jsonForScript(stats)}</script>
<script>${echarts}</script>
<script>${charts}</script>
</body>
</html>
`;
}
