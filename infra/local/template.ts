/**
 * The synthesized CloudFormation template as the local stack reads it. Synthesis (`synth.ts`) takes
 * seconds, so its result is cached under `node_modules/.cache/selfinstruct/`, keyed by a hash of
 * everything that shapes it (see `templateCacheKey`); a run after any such change synthesizes again.
 * The few intrinsic functions the template uses are resolved against local names, so the state
 * machine definition, the functions' environments, the table's keys and the bucket come from the one
 * source that is also deployed.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../project.ts';

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
}

/** Where synthesized templates are cached (the folder build tools share for their caches). */
export const TEMPLATE_CACHE_DIR = path.join(PROJECT_ROOT, 'node_modules', '.cache', 'selfinstruct');

/** Folders whose files shape the template: the CDK app, the code it imports, the seed asset. */
const INPUT_FOLDERS = ['infra', 'functions', 'seeds'];
/** Under those, code that never runs at synthesis (the CLI, the local runner); `synth.ts` does run. */
const NOT_INPUTS = [`infra${path.sep}cli${path.sep}`, `infra${path.sep}local${path.sep}`];
const SYNTH_MODULE = path.join('infra', 'local', 'synth.ts');
/** Context and feature flags, the pinned versions of every dependency, the compiler settings. */
const INPUT_FILES = ['cdk.json', 'package.json', 'package-lock.json', 'tsconfig.json'];
/** The installed versions of the libraries that write the template (in case node_modules drifted). */
const INSTALLED = ['aws-cdk-lib', 'constructs', 'cdk-nag'].map((name) =>
  path.join('node_modules', name, 'package.json'),
);

/** The files whose content shapes the synthesized template, relative to `root`, sorted. */
export function templateInputs(root = PROJECT_ROOT): string[] {
  const files = INPUT_FOLDERS.flatMap((folder) => {
    const dir = path.join(root, folder);
    if (!existsSync(dir)) return [];
    return (readdirSync(dir, { recursive: true }) as string[])
      .map((file) => path.join(folder, file))
      .filter((file) => file === SYNTH_MODULE || !NOT_INPUTS.some((prefix) => file.startsWith(prefix)))
      .filter((file) => statSync(path.join(root, file)).isFile());
  });
  const single = [...INPUT_FILES, ...INSTALLED].filter((file) => existsSync(path.join(root, file)));
  return [...files, ...single].sort();
}

/** What a template is synthesized from besides the files: the context given and CDK's variables. */
export interface TemplateKeyInput {
  root?: string;
  context?: Record<string, unknown>;
  /** Defaults to `process.env`; only `CDK_*` variables (e.g. `CDK_CONTEXT_JSON`) are read. */
  env?: NodeJS.ProcessEnv;
}

/**
 * A hash of everything that shapes the local template: the content of `templateInputs()` (CDK app and
 * the modules it imports, seed asset, `cdk.json`, the lockfile that pins aws-cdk-lib and the rest, the
 * installed CDK libraries), the context passed to the synthesis and the `CDK_*` environment variables.
 */
export function templateCacheKey({
  root = PROJECT_ROOT,
  context = {},
  env = process.env,
}: TemplateKeyInput = {}) {
  const hash = createHash('sha256').update('selfinstruct-template-v1\0');
  hash.update(`${JSON.stringify(context)}\0`);
  const cdkEnv = Object.entries(env).filter(([name]) => name.startsWith('CDK_'));
  hash.update(`${JSON.stringify(cdkEnv.sort(([a], [b]) => a.localeCompare(b)))}\0`);
  for (const file of templateInputs(root)) {
    hash.update(`${file.split(path.sep).join('/')}\0`);
    hash.update(readFileSync(path.join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 32);
}

/** A template for the local stack, and where it came from. */
export interface LoadedTemplate {
  template: CfnTemplate;
  /** The cloud assembly folder (with the esbuild bundles when `bundleTo` was given). */
  outdir?: string;
  /** `cache`: read from the template cache; `synthesis`: synthesized now. */
  from: 'cache' | 'synthesis';
  /** Milliseconds spent getting it. */
  ms: number;
  /** The cache entry it was read from or written to. */
  file?: string;
}

/** The marker of a cached template whose state machine definition passed the States Language check. */
const checkedMarker = (file: string) => file.replace(/\.json$/, '.asl-checked');

/**
 * True when this template's state machine definition was checked against the States Language before
 * (the same template gives the same definition, and the check's version is pinned in the lockfile,
 * one of the cache key's inputs): the local stack then skips the check, seconds of CPU.
 */
export const definitionChecked = (loaded: LoadedTemplate) =>
  loaded.file !== undefined && existsSync(checkedMarker(loaded.file));

/** Records that the template's definition passed the check (`definitionChecked`). */
export function markDefinitionChecked(loaded: LoadedTemplate): void {
  if (loaded.file) writeFileSync(checkedMarker(loaded.file), '');
}

export interface LoadTemplateOptions {
  /** CDK context for synthesis (e.g. `selfinstruct:model`), over `cdk.json`'s. */
  context?: Record<string, unknown>;
  /** Bundle the functions into this folder, as `cdk deploy` would (never cached: the bundles are the point). */
  bundleTo?: string;
  /** The cache folder; `false` always synthesizes. */
  cacheDir?: string | false;
  /** Called before a synthesis starts (the cache missed): a caller can say why start-up takes longer. */
  onSynthesis?: () => void;
}

/** Templates kept in the cache (one per recent combination of sources and context). */
const CACHE_ENTRIES = 8;

/** The stack's template: from the cache when nothing that shapes it changed, else synthesized and cached. */
export async function loadTemplate({
  context = {},
  bundleTo,
  cacheDir = TEMPLATE_CACHE_DIR,
  onSynthesis,
}: LoadTemplateOptions = {}): Promise<LoadedTemplate> {
  const started = performance.now();
  const file =
    cacheDir && !bundleTo ? path.join(cacheDir, `template-${templateCacheKey({ context })}.json`) : undefined;
  if (file && existsSync(file)) {
    try {
      const template = JSON.parse(readFileSync(file, 'utf8')) as CfnTemplate;
      return { template, from: 'cache', ms: performance.now() - started, file };
    } catch {
      // A damaged entry is synthesized again below.
    }
  }
  onSynthesis?.();
  const { synthesizeTemplate } = await import('./synth.ts');
  const { template, outdir } = synthesizeTemplate(context, bundleTo);
  if (file) writeCacheEntry(file, template);
  return {
    template,
    outdir: bundleTo ? outdir : undefined,
    from: 'synthesis',
    ms: performance.now() - started,
    file,
  };
}

/** Writes a cache entry atomically (parallel runs may write the same one) and keeps the newest few. */
function writeCacheEntry(file: string, template: CfnTemplate): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true });
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, JSON.stringify(template));
  renameSync(partial, file);
  const entries = readdirSync(dir)
    .filter((name) => /^template-[0-9a-f]+\.json$/.test(name))
    .map((name) => ({ name, mtime: statSync(path.join(dir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { name } of entries.slice(CACHE_ENTRIES)) {
    rmSync(path.join(dir, name), { force: true });
    rmSync(checkedMarker(path.join(dir, name)), { force: true });
  }
}

export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'us-east-1';

/** What local resource a logical id stands for: its name (`Ref`) and ARN (`Fn::GetAtt …Arn`). */
export interface LocalNames {
  ref(logicalId: string): string;
  arn(logicalId: string): string;
  /** Another `Fn::GetAtt` attribute (e.g. a guardrail's `GuardrailId`), when the local stack knows it. */
  attribute?(logicalId: string, attribute: string): string | undefined;
  /** The region `AWS::Region` stands for. @default LOCAL_REGION */
  region?: string;
}

/** Resolves `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, `Fn::Select` and `Fn::Split` in `value`. */
export function resolveIntrinsics(value: unknown, names: LocalNames): unknown {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': names.region ?? LOCAL_REGION,
    'AWS::AccountId': LOCAL_ACCOUNT,
    'AWS::URLSuffix': 'amazonaws.com',
    'AWS::StackName': 'SelfInstruct',
  };
  const ref = (id: string) => pseudo[id] ?? names.ref(id);
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const entries = Object.entries(node);
    if (entries.length === 1) {
      const [key, arg] = entries[0] as [string, unknown];
      switch (key) {
        case 'Ref':
          return ref(arg as string);
        case 'Fn::GetAtt': {
          const [id, attribute] = arg as [string, string];
          if (attribute === 'Arn') return names.arn(id);
          const known = names.attribute?.(id, attribute);
          if (known !== undefined) return known;
          throw new Error(`local stack: unsupported Fn::GetAtt ${id}.${attribute}`);
        }
        case 'Fn::Join': {
          const [separator, parts] = arg as [string, unknown[]];
          return (walk(parts) as unknown[]).join(separator);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [number, unknown[]];
          return (walk(list) as unknown[])[Number(index)];
        }
        case 'Fn::Split': {
          const [separator, text] = arg as [string, unknown];
          return String(walk(text)).split(separator);
        }
        case 'Fn::Sub': {
          const [text, vars] = (typeof arg === 'string' ? [arg, {}] : arg) as [
            string,
            Record<string, unknown>,
          ];
          return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
            if (name in vars) return String(walk(vars[name]));
            const [id, attribute] = name.split('.');
            return attribute === 'Arn' ? names.arn(id as string) : ref(name);
          });
        }
      }
      if (key.startsWith('Fn::')) throw new Error(`local stack: unsupported intrinsic ${key}`);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, walk(v)]));
  };
  return walk(value);
}

/** The logical ids of the template's resources of one type. */
export const resourcesOfType = (template: CfnTemplate, type: string) =>
  Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
