import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseJudgeReply, renderJudgeRequest } from '../../../functions/generate-instances/judge.ts';
import {
  parseClassifyReply,
  parseInstancesReply,
  renderClassifyRequest,
  renderInstancesRequest,
} from '../../../functions/generate-instances/prompt.ts';
import { renderBacktranslateRequest } from '../../../functions/generate-instructions/backtranslate.ts';
import {
  OPERATION_NAMES,
  renderEqualRequest,
  renderEvolveRequest,
} from '../../../functions/generate-instructions/evol.ts';
import {
  parseInstructionReply,
  renderInstructionRequest,
} from '../../../functions/generate-instructions/prompt.ts';
import { prepareRun } from '../../../functions/prepare/core.ts';
import { RunInputInvalid } from '../../../functions/shared/errors.ts';
import { toJsonLines } from '../../../functions/shared/json-lines.ts';
import { OfflineModel } from '../../../functions/shared/models/offline.ts';
import type { ModelRequest } from '../../../functions/shared/ports.ts';
import {
  checkTemplates,
  MAX_TEMPLATE_CHARS,
  PROMPT_TEMPLATES,
  runTemplates,
  SHIPPED_TEMPLATES,
  type TemplateName,
  type TemplateOverrides,
} from '../../../functions/shared/prompt-templates.ts';
import { ProfileName, RunConfig } from '../../../functions/shared/schemas.ts';
import { placeholders } from '../../../functions/shared/templates.ts';
import { measurePrompts } from '../../../infra/cli/estimate/prompts.ts';
import { TEMPLATES_MARKERS, templatesTable, withTemplatesTable } from '../../../infra/templates-table.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from '../fakes.ts';

const NAMES = Object.keys(PROMPT_TEMPLATES) as TemplateName[];
const demos = [
  { instruction: 'Name a fruit that is red.', input: '', output: 'A cherry.' },
  { instruction: 'Sort the numbers from low to high.', input: '3, 1, 2', output: '1, 2, 3' },
  { instruction: 'Translate the greeting into French.', input: 'Good morning', output: 'Bonjour' },
];
const instances = [{ input: 'Good morning', output: 'Bonjour' }];

/** Every request any renderer makes, for every profile and branch, with `templates`. */
function everyRequest(templates: TemplateOverrides): ModelRequest[] {
  return [
    ...ProfileName.options.flatMap((profile) => [
      renderInstructionRequest(profile, demos, templates),
      renderClassifyRequest(profile, 'Is the review positive or negative?', templates),
      renderInstancesRequest(profile, 'Is the review positive or negative?', true, templates),
      renderInstancesRequest(profile, 'Name a fruit.', false, templates),
    ]),
    renderBacktranslateRequest('Feed the starter once a day.', 0, templates),
    renderBacktranslateRequest('Feed the starter once a day.', 2, templates),
    ...OPERATION_NAMES.map((operation) => renderEvolveRequest('Name a fruit.', operation, templates)),
    renderEqualRequest([{ parent: 'Name a fruit.', child: 'Name a red fruit.' }], templates),
    renderJudgeRequest('Translate the greeting into French.', instances, templates),
  ];
}

describe('the table of prompt templates', () => {
  it('lists every shipped template file, with the stage folder that ships it and exactly its placeholders', () => {
    const shipped = ['generate-instructions', 'generate-instances'].flatMap((stage) =>
      readdirSync(`functions/${stage}/prompts`).map((name) => ({ stage, name })),
    );

    expect(shipped.map(({ name }) => name).sort()).toEqual([...NAMES].sort());
    for (const { stage, name } of shipped) {
      const spec = PROMPT_TEMPLATES[name as TemplateName];
      const text = readFileSync(`functions/${stage}/prompts/${name}`, 'utf8');
      expect(spec.stage, name).toBe(stage);
      expect(placeholders(text).sort(), name).toEqual([...spec.variables].sort());
    }
  });

  it('is what the renderers pass: a run’s version of every template, holding exactly the table’s placeholders, renders', () => {
    // `render` throws on a placeholder it is not given and on a variable the template does not use, so
    // each renderer passes exactly the variables the table lists for the template it fills.
    const templates = Object.fromEntries(
      NAMES.map((name) => [
        name,
        `<<${name}>>${PROMPT_TEMPLATES[name].variables.map((v) => `{{${v}}}`).join('|')}`,
      ]),
    );

    const used = new Set(
      everyRequest(templates).flatMap((request) =>
        [...`${request.system ?? ''}${request.prompt}`.matchAll(/<<([\w.-]+)>>/g)].map((m) => m[1]),
      ),
    );

    // … and every template of the table is one a renderer fills.
    expect([...used].sort()).toEqual([...NAMES].sort());
  });

  it('is the list of templates in the README (regenerate: npx tsx infra/templates-table.ts --write)', () => {
    const readme = readFileSync('README.md', 'utf8');

    expect(readme).toContain(`${TEMPLATES_MARKERS.begin}\n${templatesTable()}\n${TEMPLATES_MARKERS.end}`);
    expect(withTemplatesTable(readme)).toBe(readme);
    expect(templatesTable().split('\n').slice(2)).toHaveLength(NAMES.length);
  });

  it('renders the shipped file for every template a run does not give', () => {
    const overridden = everyRequest({ 'judge-system.txt': 'Be strict.' });
    const shipped = everyRequest(SHIPPED_TEMPLATES);

    expect(overridden.at(-1)?.system).toBe('Be strict.');
    expect(overridden.slice(0, -1)).toEqual(shipped.slice(0, -1));
    expect({ ...overridden.at(-1), system: undefined }).toEqual({ ...shipped.at(-1), system: undefined });
  });
});

describe('a run’s own template', () => {
  it('replaces the shipped one in the rendered prompt, exactly', () => {
    const templates = {
      'default-user.txt':
        'Tasks for lawyers:\n{{demonstrations}}\nWrite {{count}} new tasks about contract law.',
    };

    const request = renderInstructionRequest('default', demos.slice(0, 2), templates);

    expect(request.prompt).toBe(
      'Tasks for lawyers:\n1. Name a fruit that is red.\n2. Sort the numbers from low to high.\nWrite 10 new tasks about contract law.',
    );
    expect(request.system).toBe(renderInstructionRequest('default', demos).system);
    expect(request.format).toBe('instructions/default');
  });

  it('keeps the stage’s own framing around a few-shot prefix (the paper appends the task)', () => {
    const templates = { 'self-instruct-generation.txt': 'My examples.\n\nTask:' };

    expect(renderInstancesRequest('self-instruct', ' Name a fruit. ', false, templates).prompt).toBe(
      'My examples.\n\nTask: Name a fruit.\n',
    );
  });

  it('still gets replies the offline model writes and the parsers read (it answers by format, not text)', async () => {
    const model = new OfflineModel({ seed: 'templates', noise: 0 });
    const templates: TemplateOverrides = {
      'self-instruct.txt': 'List new tasks for a legal assistant:\n{{demonstrations}}{{next}}.',
      'default-user.txt': 'Examples:\n{{demonstrations}}\nGive {{count}} new tasks as {"tasks": [...]}.',
      'default-classify-user.txt': 'Task: {{instruction}}\nClassification? JSON please.',
      'default-instances-generation.txt': 'Task: {{instruction}}\nExamples as JSON {"instances": [...]}.',
      'judge-user.txt': 'Instruction: {{instruction}}\n{{count}} examples:\n{{instances}}\nVerdict as JSON.',
    };
    const many = [...demos, ...demos.map((d) => ({ instruction: `Explain why ${d.instruction}` }))];

    for (const profile of ['self-instruct', 'default'] as const) {
      const reply = await model.generate(renderInstructionRequest(profile, many, templates));
      expect(parseInstructionReply(profile, reply, { demonstrations: many.length }).candidates.length).toBe(
        profile === 'default' ? 10 : 16 - many.length - 1,
      );
    }
    const classify = await model.generate(renderClassifyRequest('default', 'Tell spam from ham.', templates));
    expect(parseClassifyReply('default', classify.text)).not.toBeNull();
    const generated = await model.generate(
      renderInstancesRequest('default', 'Give three tips for a beginner in knitting.', false, templates),
    );
    expect(parseInstancesReply('default', generated, false).instances.length).toBeGreaterThan(0);
    const verdict = await model.generate(renderJudgeRequest('Translate the greeting.', instances, templates));
    expect(parseJudgeReply(verdict.text)).not.toBeNull();
  });
});

describe('the estimate of a run with its own templates', () => {
  it('counts the input tokens of the run’s templates, not the shipped ones', () => {
    const shipped = measurePrompts('self-instruct', SEED_TASKS);
    const paperSized = 'An example task and its instances. '.repeat(180);

    const measured = measurePrompts('self-instruct', SEED_TASKS, {
      templates: {
        'self-instruct-generation.txt': paperSized,
        'self-instruct-classification.txt': paperSized,
      },
    });

    // Every seed's instance prompt is the ~6,300-character prefix and the task: ~1,575 tokens more or less.
    expect(measured['generate-instances']).toBeGreaterThan(1_575);
    expect(measured['generate-instances']).toBeLessThan(1_575 + 40);
    expect(shipped['generate-instances']).toBeLessThan(600);
    expect(measured.classify).toBe(shipped.classify);
  });
});

describe('checkTemplates', () => {
  const where = 'templates/legal/';
  const error = (files: Record<string, string>) => {
    try {
      checkTemplates(files, where);
    } catch (thrown) {
      expect(thrown).toBeInstanceOf(RunInputInvalid);
      return (thrown as Error).message;
    }
    throw new Error('no error');
  };

  it('returns the files as rendered: CRLF line endings made LF, one final newline dropped', () => {
    expect(checkTemplates({ 'judge-system.txt': 'Be strict.\r\nBe fair.\r\n' }, where)).toEqual({
      'judge-system.txt': 'Be strict.\nBe fair.',
    });
  });

  it('names a file that is not a template', () => {
    expect(error({ 'defaults-user.txt': 'x' })).toMatch(
      /^Run input is invalid: templates: templates\/legal\/defaults-user\.txt is not a template name \(the names: self-instruct\.txt, .*judge-user\.txt\)$/,
    );
  });

  it('names the file and its unknown placeholder', () => {
    expect(error({ 'default-user.txt': '{{demonstrations}} {{count}} about {{topic}}' })).toBe(
      'Run input is invalid: templates: templates/legal/default-user.txt has the unknown placeholder {{topic}} (default-user.txt takes {{demonstrations}}, {{count}})',
    );
  });

  it('names the file and the required placeholder it lacks', () => {
    expect(error({ 'self-instruct.txt': 'Come up with a series of tasks:\n{{next}}.' })).toBe(
      'Run input is invalid: templates: templates/legal/self-instruct.txt lacks the required placeholder {{demonstrations}} (self-instruct.txt takes {{demonstrations}}, {{next}})',
    );
  });

  it('says a template without variables takes none', () => {
    expect(error({ 'judge-system.txt': 'Judge {{instruction}}.' })).toMatch(/takes none\)$/);
  });

  it('reports every problem of every file in one error, one clause per file', () => {
    const message = error({
      'judge-user.txt': '{{instruction}} {{score}} {{rank}}',
      'notes.txt': 'x',
      'default-classify-user.txt': 'no task here',
    });

    expect(message.split('; ')).toEqual([
      'Run input is invalid: templates: templates/legal/default-classify-user.txt lacks the required placeholder {{instruction}} (default-classify-user.txt takes {{instruction}})',
      'templates/legal/judge-user.txt has the unknown placeholders {{score}}, {{rank}} and lacks the required placeholders {{count}}, {{instances}} (judge-user.txt takes {{instruction}}, {{count}}, {{instances}})',
      expect.stringMatching(/^templates\/legal\/notes\.txt is not a template name/),
    ]);
  });

  it('refuses an empty folder and a file too long to be a prompt', () => {
    expect(error({})).toBe('Run input is invalid: templates: templates/legal/ holds no template file');
    expect(error({ 'judge-system.txt': 'x'.repeat(MAX_TEMPLATE_CHARS + 1) })).toMatch(
      /judge-system\.txt has 100001 characters, more than 100000/,
    );
  });
});

describe('runTemplates', () => {
  it('is the shipped set for a run without templates', async () => {
    expect(await runTemplates(new MemoryObjects(), 'run-1', {})).toBe(SHIPPED_TEMPLATES);
  });

  it('gets the files "Prepare run" found, by key and without listing, once per run and prefix, and checks them', async () => {
    const objects = new MemoryObjects();
    await objects.put('templates/a/judge-system.txt', 'Be strict.\n');
    await objects.put('templates/a/judge-user.txt', '{{instruction}}');
    const got: string[] = [];
    const getText = objects.getText.bind(objects);
    objects.getText = (key) => {
      got.push(key);
      return getText(key);
    };
    objects.list = () => Promise.reject(new Error('AccessDenied: s3:ListBucket'));
    const config = { templates: 'templates/a/', templateFiles: ['judge-system.txt'] };

    expect(await runTemplates(objects, 'run-1', config)).toEqual({ 'judge-system.txt': 'Be strict.' });
    await runTemplates(objects, 'run-1', config);
    expect(got).toEqual(['templates/a/judge-system.txt']);
    await expect(
      runTemplates(objects, 'run-2', { ...config, templateFiles: ['judge-system.txt', 'judge-user.txt'] }),
    ).rejects.toThrow(/judge-user\.txt lacks the required placeholders \{\{count\}\}, \{\{instances\}\}/);
    await expect(
      runTemplates(objects, 'run-3', { ...config, templateFiles: ['judge-system.txt', 'gone.txt'] }),
    ).rejects.toThrow('templates: templates/a/gone.txt is gone');
  });
});

describe('"Prepare run" with a bad template', () => {
  it('fails with RunInputInvalid naming the file and placeholder, before writing anything', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await objects.put('templates/legal/default-user.txt', 'Tasks:\n{{demonstrations}}\n{{topic}}');

    await expect(
      prepareRun({ runId: 'run-1', input: { templates: 'templates/legal/' } }, { objects, pool }),
    ).rejects.toThrow(
      'templates/legal/default-user.txt has the unknown placeholder {{topic}} and lacks the required placeholder {{count}} (default-user.txt takes {{demonstrations}}, {{count}})',
    );
    expect(pool.writes).toEqual([]);
    expect([...objects.objects.keys()]).toEqual(['templates/legal/default-user.txt']);
  });

  it('gives a replay the templates of the run it replays (the same prompts), checked again', async () => {
    const objects = new MemoryObjects();
    const pool = new MemoryPool();
    await objects.put('seeds/five.jsonl', toJsonLines(SEED_TASKS));
    await objects.put('templates/run-0/judge-system.txt', 'Be strict.');
    const recorded = { pool: 'first', seed: 'x', seedKey: 'seeds/five.jsonl', templates: 'templates/run-0/' };
    await pool.putRun({
      runId: 'run-0',
      pool: 'first',
      status: 'SUCCEEDED',
      config: RunConfig.parse(recorded),
      startedAt: '2026-01-01T00:00:00.000Z',
      iteration: 1,
    });

    const replay = { model: 'replay:run-0', pool: 'again' };
    const state = await prepareRun({ runId: 'run-1', input: replay }, { objects, pool });
    expect(state.config.templates).toBe('templates/run-0/');
    expect(state.config.templateFiles).toEqual(['judge-system.txt']);

    await objects.put('templates/run-0/judge-user.txt', 'no placeholders');
    await expect(
      prepareRun({ runId: 'run-2', input: { ...replay, pool: 'third' } }, { objects, pool }),
    ).rejects.toThrow(/templates\/run-0\/judge-user\.txt lacks the required placeholders/);
  });

  it('refuses a templates folder outside templates/', async () => {
    await expect(
      prepareRun(
        { runId: 'run-1', input: { templates: 'pools/legal/' } },
        { objects: new MemoryObjects(), pool: new MemoryPool() },
      ),
    ).rejects.toThrow(/templates: must be a folder under templates\//);
  });
});
