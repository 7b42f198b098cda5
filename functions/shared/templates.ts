/**
 * Prompt templates and the JSON in their replies.
 *
 * Each stage keeps its templates as plain text files in a `prompts/` folder next to its `prompt.ts`;
 * the bundler copies that folder next to the Lambda's `index.mjs`, so resolving the file against the
 * calling module's `import.meta.url` finds it both in the source tree and in a bundle.
 *
 * Placeholders are `{{name}}`. Lists (numbered demonstrations and the like) are built in code and passed
 * in as one variable, so a template needs no loops and no template engine; nothing is HTML-escaped,
 * since these are prompts.
 */
import { readFileSync } from 'node:fs';
import { ConfigurationError } from './errors.ts';

const cache = new Map<string, string>();

/**
 * Reads `./prompts/<name>` relative to `moduleUrl` (pass `import.meta.url`), once per process, as
 * `normalizeTemplate` reads it.
 */
export function loadTemplate(moduleUrl: string, name: string): string {
  const url = new URL(`./prompts/${name}`, moduleUrl);
  const cached = cache.get(url.href);
  if (cached !== undefined) return cached;
  let text: string;
  try {
    text = readFileSync(url, 'utf8');
  } catch (error) {
    throw new ConfigurationError(`Prompt template ${url.pathname} could not be read`, { cause: error });
  }
  const template = normalizeTemplate(text);
  cache.set(url.href, template);
  return template;
}

/**
 * A template file's text as it is rendered: line endings normalized to `\n` and one final newline
 * dropped (as Jinja does by default), so an editor that adds or keeps a newline at the end of the file
 * does not change the prompt, and a checkout with CRLF line endings renders the same bytes.
 */
export function normalizeTemplate(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/\n$/, '');
}

/** A `{{name}}` placeholder (spaces inside the braces allowed); group 1 is the name. */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][\w]*)\s*\}\}/g;

/** The names of the placeholders of `template`, each once, in order of first use. */
export function placeholders(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((match) => match[1] as string))];
}

/**
 * Replaces each `{{name}}` in `template` with `vars[name]`, in one pass (a value that itself contains
 * `{{…}}` is not expanded again). Throws when the template names a variable that is not given or a
 * given variable is not used, so a typo in a template fails its tests instead of reaching a model.
 */
export function render(template: string, vars: Readonly<Record<string, string | number>>): string {
  const used = new Set<string>();
  const text = template.replace(PLACEHOLDER, (_match, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new ConfigurationError(`Template variable {{${name}}} is not given`);
    used.add(name);
    return String(value);
  });
  const unused = Object.keys(vars).filter((name) => !used.has(name));
  if (unused.length > 0) {
    throw new ConfigurationError(`Template does not use the variable(s) ${unused.join(', ')}`);
  }
  return text;
}

/**
 * Finds the JSON object in a chat model's reply: the text from the first `{` to the last `}` (so a
 * ```json fence or a sentence before or after it does not matter). `undefined` when there is none
 * or it is not valid JSON.
 */
export function extractJsonObject(text: string): unknown {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) return undefined;
  try {
    return JSON.parse(text.slice(start, end + 1));
  } catch {
    return undefined;
  }
}

/** The items of the array under one key of a reply's JSON object, read as far as they go. */
export interface JsonItems {
  /** Whether the reply has such an array at all. */
  found: boolean;
  /** The items that are complete and valid JSON, in order. */
  items: unknown[];
  /** Items that are complete but not valid JSON. */
  unparseable: number;
  /** Whether the reply ends inside the array, leaving one item unfinished (not in `items`). */
  unfinished: boolean;
}

/**
 * Reads the array `key` of the JSON object in a reply (e.g. `{"tasks": [...]}`), tolerating what chat
 * models do: a fence or prose around the object, a reply cut by the token limit in the middle of the
 * array (complete items are kept, the cut one is reported as `unfinished`), a broken item among good
 * ones (counted in `unparseable`), a trailing comma.
 *
 * No package does this part: JSON "repair" libraries complete the cut item instead of reporting it,
 * and a cut task must not pass for a whole one.
 */
export function extractJsonArrayItems(text: string, key: string): JsonItems {
  const whole = extractJsonObject(text);
  if (whole !== undefined) {
    const value =
      typeof whole === 'object' && whole !== null ? (whole as Record<string, unknown>)[key] : undefined;
    if (Array.isArray(value)) return { found: true, items: value, unparseable: 0, unfinished: false };
  }
  const opening = new RegExp(`"${key}"\\s*:\\s*\\[`).exec(text);
  if (!opening) return { found: false, items: [], unparseable: 0, unfinished: false };

  const items: unknown[] = [];
  let unparseable = 0;
  const take = (raw: string) => {
    const trimmed = raw.trim();
    if (trimmed === '') return;
    try {
      items.push(JSON.parse(trimmed));
    } catch {
      unparseable++;
    }
  };
  let depth = 0;
  let inString = false;
  let escaped = false;
  let itemStart = opening.index + opening[0].length;
  for (let i = itemStart; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) {
        // The closing bracket of the array itself.
        take(text.slice(itemStart, i));
        return { found: true, items, unparseable, unfinished: false };
      }
      depth--;
    } else if (c === ',' && depth === 0) {
      take(text.slice(itemStart, i));
      itemStart = i + 1;
    }
  }
  const unfinished = text.slice(itemStart).trim() !== '';
  return { found: true, items, unparseable, unfinished };
}
