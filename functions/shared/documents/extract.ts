/**
 * The text of a document, as instruction backtranslation (method `backtranslate`) reads it: plain text,
 * Markdown, HTML and PDF, by file extension. Passages and their spans (`passages.ts`) are positions in
 * this text, so a span is only meaningful against the text this module extracts.
 *
 * - Plain text and Markdown are kept as written (UTF-8, a byte-order mark dropped, line ends made `\n`).
 *   Markdown is not stripped: it is the format chat models answer in, so a passage with its headings,
 *   lists and code fences is a realistic response, and the span maps to the file's own characters.
 * - HTML goes through `html-to-text` (htmlparser2): block elements become paragraphs, no line wrapping,
 *   links without their URLs, images, navigation, footers, scripts and styles left out, headings as written (not upper-cased).
 * - PDF goes through `unpdf` (Mozilla's pdf.js, serverless build): the text of each page, pages separated
 *   by a blank line. A PDF without a text layer (a scan) gives no text, hence no passages.
 */
import { convert, type HtmlToTextOptions } from 'html-to-text';
import { getDocumentProxy, extractText as pdfText } from 'unpdf';
import { DocumentInvalid } from '../errors.ts';

/** The document types read, by what their text extraction does. */
export type DocumentKind = 'text' | 'markdown' | 'html' | 'pdf';

const KINDS: Readonly<Record<string, DocumentKind>> = {
  txt: 'text',
  text: 'text',
  md: 'markdown',
  markdown: 'markdown',
  html: 'html',
  htm: 'html',
  pdf: 'pdf',
};

/** The kind of the document at `key`, by its extension; `undefined` for a file that is not read. */
export function documentKind(key: string): DocumentKind | undefined {
  const match = /\.([a-z0-9]+)$/i.exec(key);
  return match ? KINDS[(match[1] as string).toLowerCase()] : undefined;
}

/** Line ends as `\n`, no byte-order mark, no NUL: the text positions are counted in. */
function normalize(text: string): string {
  return text
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n')
    .replaceAll('\u0000', '');
}

const HTML_OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'nav', format: 'skip' },
    { selector: 'footer', format: 'skip' },
    { selector: 'h1', options: { uppercase: false } },
    { selector: 'h2', options: { uppercase: false } },
    { selector: 'h3', options: { uppercase: false } },
    { selector: 'h4', options: { uppercase: false } },
    { selector: 'h5', options: { uppercase: false } },
    { selector: 'h6', options: { uppercase: false } },
    { selector: 'table', format: 'dataTable' },
  ],
};

/**
 * The text of the document `key` (its kind by extension, see `documentKind`), or throws `DocumentInvalid`
 * naming the key when the file can't be read as that kind.
 */
export async function extractText(key: string, bytes: Uint8Array): Promise<string> {
  const kind = documentKind(key);
  try {
    switch (kind) {
      case 'text':
      case 'markdown':
        return normalize(new TextDecoder('utf-8').decode(bytes));
      case 'html':
        return normalize(convert(new TextDecoder('utf-8').decode(bytes), HTML_OPTIONS));
      case 'pdf': {
        // pdf.js may detach the buffer it is given: hand it a copy. Its warnings (a damaged file it
        // repairs) are not the run's log lines.
        const pdf = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
        const { text } = await pdfText(pdf, { mergePages: false });
        return normalize(text.map((page) => page.trim()).join('\n\n'));
      }
      default:
        throw new Error('not a document type that is read (.txt, .md, .html, .pdf)');
    }
  } catch (error) {
    throw new DocumentInvalid(`Document ${key} can't be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
