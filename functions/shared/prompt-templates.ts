/**
 * Every prompt template file of the project, and the run's own versions of them (run input `templates`).
 *
 * `PROMPT_TEMPLATES` is the one table of template files: for each file name (unique across the stages),
 * the stage folder that ships it in its `prompts/` and the variables its renderer passes. The renderers
 * fill a template only through the function `stageTemplates` gives them, whose types are this table's:
 * a renderer that passes a variable the table does not list, or leaves one out, does not compile, and
 * `render` throws at run time on any mismatch with the file. "Prepare run" checks a run's templates
 * against the same table, and the README's list of templates is generated from it
 * (`infra/templates-table.ts`).
 *
 * A run's templates replace the shipped files by name; files not given keep the shipped ones. Every
 * variable of a template is required: its prompt needs what the renderer builds (the demonstrations,
 * the task), and the parser of the reply expects the format the shipped prompt asks for. A template
 * without variables is a fixed text (a system message, or a few-shot prefix the stage appends the task to).
 */
import { RunInputInvalid } from './errors.ts';
import type { ObjectStore } from './ports.ts';
import type { RunConfig } from './schemas.ts';
import { loadTemplate, normalizeTemplate, placeholders, render } from './templates.ts';

/** One template file: where it ships, the variables its renderer passes, and what it is for. */
export interface TemplateSpec {
  /** The stage folder whose `prompts/` holds the shipped file. */
  readonly stage: 'generate-instructions' | 'generate-instances';
  /** Its `{{placeholders}}`, each required. */
  readonly variables: readonly string[];
  /** Which profile and call use it (the README's list). */
  readonly use: string;
}

/** The template files, by file name (see the module comment). */
export const PROMPT_TEMPLATES = {
  'self-instruct.txt': {
    stage: 'generate-instructions',
    variables: ['demonstrations', 'next'],
    use: '`self-instruct`: the instruction prompt (completion); `demonstrations` are the numbered lines `1. …\\n`, `next` the number the model continues with',
  },
  'alpaca.txt': {
    stage: 'generate-instructions',
    variables: ['demonstrations', 'next'],
    use: '`alpaca`: the instruction prompt (completion); `demonstrations` are the `###` blocks, `next` the number of the first new task',
  },
  'default-system.txt': {
    stage: 'generate-instructions',
    variables: [],
    use: '`default`: the system message of the instruction prompt',
  },
  'default-user.txt': {
    stage: 'generate-instructions',
    variables: ['demonstrations', 'count'],
    use: '`default`: the instruction prompt; `demonstrations` are numbered lines, `count` the tasks asked for; the reply must be `{"tasks": [{"instruction", "is_classification"}]}`',
  },
  'backtranslate-system.txt': {
    stage: 'generate-instructions',
    variables: [],
    use: 'method `backtranslate`: the system message of the backtranslation prompt',
  },
  'backtranslate-user.txt': {
    stage: 'generate-instructions',
    variables: ['passage'],
    use: 'method `backtranslate`: the instruction a passage answers (self-augmentation); the reply must be `{"instruction"}`',
  },
  'backtranslate-qa-user.txt': {
    stage: 'generate-instructions',
    variables: ['passage', 'count'],
    use: 'method `backtranslate` with `groundedQuestions` > 0: the instruction and up to `count` question–answer pairs grounded in the passage; the reply must be `{"instruction", "pairs": [{"question", "answer"}]}`',
  },
  'evol-depth.txt': {
    stage: 'generate-instructions',
    variables: ['instruction', 'method'],
    use: "`method: evol`: the in-depth evolving prompt (chat); `instruction` is the pool instruction, `method` the operation's sentence (add constraints, deepen, concretize, increase reasoning, complicate the input); the reply is the evolved instruction",
  },
  'evol-breadth.txt': {
    stage: 'generate-instructions',
    variables: ['instruction'],
    use: '`method: evol`: the in-breadth evolving prompt (chat); the reply is a new, rarer instruction of the same domain',
  },
  'evol-equal.txt': {
    stage: 'generate-instructions',
    variables: ['count', 'pairs'],
    use: '`method: evol`: the information-gain question over `count` parent/evolved pairs (`Pair n` blocks); the reply must be `{"verdicts": ["equal" | "not equal", …]}`',
  },
  'self-instruct-classify.txt': {
    stage: 'generate-instances',
    variables: [],
    use: '`self-instruct`, `alpaca`: the few-shot "is it classification?" prefix; the stage appends ` <instruction>\\nIs it classification?`',
  },
  'self-instruct-classification.txt': {
    stage: 'generate-instances',
    variables: [],
    use: '`self-instruct`, `alpaca`: the output-first few-shot instance prefix for classification tasks; the stage appends ` <instruction>\\n`',
  },
  'self-instruct-generation.txt': {
    stage: 'generate-instances',
    variables: [],
    use: '`self-instruct`, `alpaca`: the input-first few-shot instance prefix for other tasks; the stage appends ` <instruction>\\n`',
  },
  'default-classify-system.txt': {
    stage: 'generate-instances',
    variables: [],
    use: '`default`: the system message of the classification question',
  },
  'default-classify-user.txt': {
    stage: 'generate-instances',
    variables: ['instruction'],
    use: '`default`: the classification question; the reply must be `{"is_classification": true}` or `false`',
  },
  'default-instances-system.txt': {
    stage: 'generate-instances',
    variables: [],
    use: '`default`: the system message of the instance prompts',
  },
  'default-instances-classification.txt': {
    stage: 'generate-instances',
    variables: ['instruction'],
    use: '`default`: the instance prompt of a classification task; the reply must be `{"instances": [{"output", "input"}]}`',
  },
  'default-instances-generation.txt': {
    stage: 'generate-instances',
    variables: ['instruction'],
    use: '`default`: the instance prompt of other tasks; the reply must be `{"instances": [{"input", "output"}]}`',
  },
  'judge-system.txt': {
    stage: 'generate-instances',
    variables: [],
    use: 'every profile: the system message of the judge',
  },
  'judge-user.txt': {
    stage: 'generate-instances',
    variables: ['instruction', 'count', 'instances'],
    use: 'every profile: the judge prompt; `instances` are the `Example n` blocks, `count` their number; the reply must be the verdict object',
  },
} as const satisfies Record<string, TemplateSpec>;

/** The name of a template file. */
export type TemplateName = keyof typeof PROMPT_TEMPLATES;

/** The template files a stage folder ships. */
export type StageTemplateName<S extends TemplateSpec['stage']> = {
  [N in TemplateName]: (typeof PROMPT_TEMPLATES)[N]['stage'] extends S ? N : never;
}[TemplateName];

/** The variables a template's renderer passes: exactly the table's (`{}` for a template without any). */
export type TemplateVariables<N extends TemplateName> = VariablesOf<
  (typeof PROMPT_TEMPLATES)[N]['variables'][number]
>;
type VariablesOf<V extends string> = [V] extends [never]
  ? Readonly<Record<string, never>>
  : Readonly<Record<V, string | number>>;

/** A run's templates by file name (text as rendered); a name not given renders the shipped file. */
export type TemplateOverrides = Readonly<Partial<Record<TemplateName, string>>>;

/** The shipped templates only. */
export const SHIPPED_TEMPLATES: TemplateOverrides = {};

/** Longest template file accepted, in characters (the paper's few-shot templates are ~6,600). */
export const MAX_TEMPLATE_CHARS = 100_000;

const isTemplateName = (name: string): name is TemplateName => Object.hasOwn(PROMPT_TEMPLATES, name);
const braces = (names: readonly string[]) => names.map((name) => `{{${name}}}`).join(', ') || 'none';
const plural = (items: readonly unknown[]) => (items.length > 1 ? 's' : '');

/**
 * The filler of one stage's templates: `fill(templates, name, variables)` renders the run's version of
 * `name` when `templates` has one, else the file shipped in `./prompts/` next to `moduleUrl` (pass
 * `import.meta.url`), with exactly the variables the table lists.
 */
export function stageTemplates<S extends TemplateSpec['stage']>(moduleUrl: string, _stage: S) {
  return <N extends StageTemplateName<S>>(
    templates: TemplateOverrides,
    name: N,
    variables: TemplateVariables<N>,
  ): string => render(templates[name] ?? loadTemplate(moduleUrl, name), variables);
}

/**
 * Checks a run's template files (`files`: text by file name, read from `where`) against the table: every
 * name must be a template's, every placeholder one of its variables, every variable used, and the text
 * at most `MAX_TEMPLATE_CHARS`. Returns them as rendered; otherwise throws one `RunInputInvalid` that
 * names every bad file with its wrong placeholders.
 */
export function checkTemplates(files: Readonly<Record<string, string>>, where: string): TemplateOverrides {
  const problems: string[] = [];
  const templates: Partial<Record<TemplateName, string>> = {};
  const names = Object.keys(files).sort();
  if (names.length === 0) problems.push(`${where} holds no template file`);
  for (const name of names) {
    const file = `${where}${name}`;
    if (!isTemplateName(name)) {
      problems.push(
        `${file} is not a template name (the names: ${Object.keys(PROMPT_TEMPLATES).join(', ')})`,
      );
      continue;
    }
    const text = normalizeTemplate(files[name] as string);
    const expected: readonly string[] = PROMPT_TEMPLATES[name].variables;
    if (text.length > MAX_TEMPLATE_CHARS) {
      problems.push(`${file} has ${text.length} characters, more than ${MAX_TEMPLATE_CHARS}`);
    }
    const used = placeholders(text);
    const unknown = used.filter((variable) => !expected.includes(variable));
    const missing = expected.filter((variable) => !used.includes(variable));
    const wrong = [
      ...(unknown.length > 0 ? [`has the unknown placeholder${plural(unknown)} ${braces(unknown)}`] : []),
      ...(missing.length > 0 ? [`lacks the required placeholder${plural(missing)} ${braces(missing)}`] : []),
    ];
    if (wrong.length > 0) problems.push(`${file} ${wrong.join(' and ')} (${name} takes ${braces(expected)})`);
    templates[name] = text;
  }
  if (problems.length > 0)
    throw new RunInputInvalid(`Run input is invalid: templates: ${problems.join('; ')}`);
  return templates;
}

/**
 * Reads and checks (`checkTemplates`) the template files under `prefix`: the objects `names` (as "Prepare
 * run" found them), or every object there when not told (listing the prefix: "Prepare run" alone may).
 */
export async function readTemplates(
  objects: ObjectStore,
  prefix: string,
  names?: readonly string[],
): Promise<TemplateOverrides> {
  const keys = names ? names.map((name) => `${prefix}${name}`) : await objects.list(prefix);
  const files: Record<string, string> = {};
  for (const key of keys) {
    const text = await objects.getText(key);
    if (text === undefined) throw new RunInputInvalid(`Run input is invalid: templates: ${key} is gone`);
    files[key.slice(prefix.length)] = text;
  }
  return checkTemplates(files, prefix);
}

/** The templates of the runs this process served last, per store, by run and prefix (a warm function's next chunk). */
const cache = new WeakMap<ObjectStore, Map<string, Promise<TemplateOverrides>>>();
const CACHED_RUNS = 8;

/**
 * A run's templates (the run input `templates`, the files "Prepare run" found there), read by key and
 * checked once per run and prefix in a process; the shipped ones when the run has none. Checked again by
 * every stage that reads them, not only by "Prepare run", since the files may change during the run.
 */
export function runTemplates(
  objects: ObjectStore,
  runId: string,
  { templates: templatesPrefix, templateFiles }: Pick<RunConfig, 'templates' | 'templateFiles'>,
): Promise<TemplateOverrides> {
  if (templatesPrefix === undefined) return Promise.resolve(SHIPPED_TEMPLATES);
  let runs = cache.get(objects);
  if (runs === undefined) {
    runs = new Map();
    cache.set(objects, runs);
  }
  const key = `${runId}\u0000${templatesPrefix}`;
  let templates = runs.get(key);
  if (templates === undefined) {
    const entries = runs;
    templates = readTemplates(objects, templatesPrefix, templateFiles ?? []);
    // A failed read is not kept: the state machine's retry reads again.
    templates.catch(() => entries.delete(key));
    entries.set(key, templates);
    if (entries.size > CACHED_RUNS) entries.delete(entries.keys().next().value as string);
  }
  return templates;
}
