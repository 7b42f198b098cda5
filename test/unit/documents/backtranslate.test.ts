/**
 * Instruction backtranslation (method `backtranslate`): documents read as text, split into passages whose
 * spans map back to the exact text, the prompt as rendered, the reply parsed as untrusted data, each
 * iteration's share of the passages, the run input's checks, "Prepare run" writing the passages and
 * "Generate instructions" turning them into candidates that carry their source.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  parseBacktranslateReply,
  passageSlice,
  renderBacktranslateRequest,
} from '../../../functions/generate-instructions/backtranslate.ts';
import { generateInstructions } from '../../../functions/generate-instructions/core.ts';
import { parseRunInput, prepareRun } from '../../../functions/prepare/core.ts';
import { documentKind, extractText } from '../../../functions/shared/documents/extract.ts';
import { passageSpans, splitDocuments } from '../../../functions/shared/documents/passages.ts';
import { DocumentInvalid, RunInputInvalid } from '../../../functions/shared/errors.ts';
import { fromJsonLines, toJsonLines } from '../../../functions/shared/json-lines.ts';
import { DEFAULT_SEED_KEY, passagesKey } from '../../../functions/shared/keys.ts';
import { OfflineModel } from '../../../functions/shared/models/offline.ts';
import { shippedPrices } from '../../../functions/shared/pricing/pricing.ts';
import { Passage } from '../../../functions/shared/records.ts';
import { Candidate } from '../../../functions/shared/schemas.ts';
import { estimateBacktranslation } from '../../../infra/cli/estimate/backtranslate.ts';
import { MemoryObjects, MemoryPool, SEED_TASKS } from '../fakes.ts';

const FIXTURES = 'test/fixtures/documents/';
const fixture = (name: string) => new Uint8Array(readFileSync(`${FIXTURES}${name}`));

/** Every fixture uploaded under `documents/<pool>/`, plus a file that is not a document. */
function documentsBucket(pool = 'notes'): MemoryObjects {
  const objects = new MemoryObjects();
  for (const name of readdirSync(FIXTURES)) objects.objects.set(`documents/${pool}/${name}`, fixture(name));
  objects.objects.set(`documents/${pool}/photo.jpg`, new Uint8Array([0xff, 0xd8]));
  // The bundled seeds, which a new pool gets.
  objects.objects.set(DEFAULT_SEED_KEY, new TextEncoder().encode(toJsonLines(SEED_TASKS)));
  return objects;
}

describe('reading documents', () => {
  it('knows a document by its extension, whatever its case', () => {
    expect(
      ['a.txt', 'b.MD', 'c.markdown', 'd.htm', 'e.HTML', 'f.pdf', 'g.docx', 'h'].map(documentKind),
    ).toEqual(['text', 'markdown', 'markdown', 'html', 'html', 'pdf', undefined, undefined]);
  });

  it('keeps plain text and Markdown as written, line ends made \\n and no byte-order mark', async () => {
    expect(await extractText('a.txt', new TextEncoder().encode('\uFEFFOne\r\ntwo\rthree'))).toBe(
      'One\ntwo\nthree',
    );
    const markdown = readFileSync(`${FIXTURES}git-branches.md`, 'utf8');
    expect(await extractText('git-branches.md', fixture('git-branches.md'))).toBe(markdown);
  });

  it('reads HTML as its visible text: paragraphs, headings as written, no scripts, styles, navigation or URLs', async () => {
    const text = await extractText('tide-pools.html', fixture('tide-pools.html'));
    expect(text.startsWith('Exploring tide pools\n\nTide pools are rocky hollows')).toBe(true);
    expect(text).toContain('on a day with a negative tide in the tide table.');
    expect(text).toContain('\n\nLeave no trace\n\nLook closely but touch gently');
    for (const absent of ['console.log', 'font-family', 'Home', 'crab.jpg', '<p>']) {
      expect(text).not.toContain(absent);
    }
  });

  it('reads a PDF page by page, pages apart by a blank line', async () => {
    const text = await extractText('field-notes.pdf', fixture('field-notes.pdf'));
    expect(text).toBe(
      [
        'Sourdough starter care.',
        'A sourdough starter is a culture of wild yeast and lactic acid bacteria kept in flour and water.',
        'Feed it once a day at room temperature with equal weights of flour and water, discarding',
        'half before each feeding, so the culture stays active and its acidity stays in check.',
        '',
        'When the starter doubles within four to six hours after a feeding and smells pleasantly sour,',
        'it is ready to leaven bread. A starter kept in the refrigerator needs feeding only once a week,',
        'and two feedings at room temperature bring it back to full strength before baking.',
      ].join('\n'),
    );
  });

  it('names the document it cannot read', async () => {
    await expect(
      extractText('documents/x/broken.pdf', new TextEncoder().encode('not a pdf')),
    ).rejects.toThrow(DocumentInvalid);
    await expect(extractText('documents/x/broken.pdf', new Uint8Array())).rejects.toThrow(
      /documents\/x\/broken\.pdf/,
    );
  });
});

describe('splitting into passages', () => {
  const paragraph = (n: number, words: number) =>
    Array.from({ length: words }, (_, i) => `word${n}x${i}`).join(' ');

  it('makes one passage per paragraph, a heading joined to the paragraph after it, each span the exact text', () => {
    const text = `# Title\n\n${paragraph(1, 30)}.\n\n  ${paragraph(2, 25)}.  \n\n\n${paragraph(3, 20)}.\n`;
    const spans = passageSpans(text);
    expect(spans.map(([start, end]) => text.slice(start, end))).toEqual([
      `# Title\n\n${paragraph(1, 30)}.`,
      `${paragraph(2, 25)}.`,
      `${paragraph(3, 20)}.`,
    ]);
  });

  it('cuts a paragraph longer than maxChars at sentence ends, and leaves out passages shorter than minChars', () => {
    const sentences = Array.from({ length: 12 }, (_, i) => `Sentence number ${i} says a little more here.`);
    const text = `${sentences.join(' ')}\n\nPage 3`;
    const spans = passageSpans(text, { maxChars: 200, minChars: 40 });
    const pieces = spans.map(([start, end]) => text.slice(start, end));
    expect(pieces.every((piece) => piece.length <= 200 && piece.endsWith('.'))).toBe(true);
    expect(pieces.join(' ')).toBe(sentences.join(' '));
    expect(pieces).not.toContain('Page 3');
  });

  it('splits a folder of documents in key order, each passage with its document and its span in that document’s text', async () => {
    const objects = documentsBucket();
    const { passages, documents, skipped } = await splitDocuments(objects, 'documents/notes/');
    expect(documents.map((document) => document.key)).toEqual([
      'documents/notes/bicycle-care.txt',
      'documents/notes/field-notes.pdf',
      'documents/notes/git-branches.md',
      'documents/notes/tide-pools.html',
    ]);
    expect(skipped).toEqual(['documents/notes/photo.jpg']);
    expect(passages.map((passage) => passage.index)).toEqual(passages.map((_, i) => i));
    expect(documents.every((document) => document.passages > 0)).toBe(true);
    for (const passage of passages) {
      const text = await extractText(
        passage.document,
        (await objects.getBytes(passage.document)) as Uint8Array,
      );
      expect(text.slice(passage.start, passage.end)).toBe(passage.text);
      expect(Passage.parse(passage)).toEqual(passage);
    }
  });
});

describe('the backtranslation prompt', () => {
  it('asks for the instruction the passage answers, exactly as the template says', () => {
    const request = renderBacktranslateRequest('Feed the starter daily.', 0);
    expect(request).toEqual({
      stage: 'generate-instructions',
      format: 'backtranslate/default',
      kind: 'chat',
      temperature: 0.7,
      topP: 0.9,
      maxTokens: 600,
      json: true,
      system:
        'You write instructions for a dataset that teaches an AI assistant to follow instructions, working backwards from answers: you are shown a text that a good assistant could have written, and you write the request it answers. You reply with one JSON object and nothing else.',
      prompt: `Here is a passage from a document:

"""
Feed the starter daily.
"""

Write the instruction a user could have given an AI assistant for which this passage, as it stands, is a good and complete answer. The instruction must be self-contained: do not mention "the passage", "the text" or "the document", and do not ask for more than the passage gives.

Reply with JSON only, in this shape:
{"instruction": "<the instruction>"}`,
    });
  });

  it('asks for grounded question–answer pairs too when the run wants them', () => {
    const { prompt } = renderBacktranslateRequest('Feed the starter daily.', 3);
    expect(prompt).toContain(
      '\n\nThen write up to 3 questions a reader could ask whose answers the passage states, each with its answer in one or two sentences that use only what the passage says.\n\n',
    );
    expect(
      prompt.endsWith(
        '{"instruction": "<the instruction>", "pairs": [{"question": "<a question>", "answer": "<its answer>"}]}',
      ),
    ).toBe(true);
  });

  it('renders a run’s own template by name', () => {
    const { prompt } = renderBacktranslateRequest('Text.', 0, {
      'backtranslate-user.txt': 'What asks for: {{passage}}',
    });
    expect(prompt).toBe('What asks for: Text.');
  });
});

describe('reading a backtranslation reply', () => {
  const stop = (text: string) => ({ text, finish: 'stop' as const });

  it('reads the instruction from JSON, in a fence or with prose around it', () => {
    expect(parseBacktranslateReply(stop('```json\n{"instruction": " Explain tides. "}\n```'), 0)).toEqual({
      instruction: 'Explain tides.',
      pairs: [],
      malformed: 0,
      droppedByTruncation: 0,
    });
  });

  it('counts a reply without the object as malformed, and drops a reply cut by the token limit', () => {
    expect(parseBacktranslateReply(stop('A good instruction would be: Explain tides.'), 0).malformed).toBe(1);
    expect(parseBacktranslateReply(stop('{"instruction": ""}'), 0).malformed).toBe(1);
    expect(
      parseBacktranslateReply({ text: '{"instruction": "Explain tides."}', finish: 'length' }, 0),
    ).toEqual({
      instruction: null,
      pairs: [],
      malformed: 0,
      droppedByTruncation: 1,
    });
  });

  it('keeps at most the pairs asked for, counting a pair without its answer', () => {
    const reply = stop(
      '{"instruction": "Explain tides.", "pairs": [{"question": "When?", "answer": "At low tide."}, {"question": "Why?"}, {"question": "Who?", "answer": "Anyone."}, {"question": "Where?", "answer": "Rocks."}]}',
    );
    expect(parseBacktranslateReply(reply, 3)).toEqual({
      instruction: 'Explain tides.',
      pairs: [
        { question: 'When?', answer: 'At low tide.' },
        { question: 'Who?', answer: 'Anyone.' },
      ],
      malformed: 1,
      droppedByTruncation: 0,
    });
    expect(parseBacktranslateReply(reply, 0).pairs).toEqual([]);
  });
});

describe('each iteration’s passages', () => {
  const config = { maxIterations: 3, maxPromptsPerIteration: 200 };

  it('shares the passages out so that the iteration cap covers all of them, in order', () => {
    const slices = [1, 2, 3, 4].map((iteration) => passageSlice(14, iteration, config));
    expect(slices).toEqual([
      [0, 5],
      [5, 10],
      [10, 14],
      [14, 14],
    ]);
  });

  it('takes promptsPerIteration passages when given, never more than maxPromptsPerIteration', () => {
    expect(passageSlice(100, 2, { ...config, promptsPerIteration: 7 })).toEqual([7, 14]);
    expect(passageSlice(10_000, 1, { ...config, maxPromptsPerIteration: 50 })).toEqual([0, 50]);
  });
});

describe('the run input of a backtranslation run', () => {
  it('grows the documents’ pool and keeps only tasks the judge scores 4 or more, unless told otherwise', () => {
    const config = parseRunInput({ method: 'backtranslate', documents: 'documents/legal/' }, 'r');
    expect(config).toMatchObject({ pool: 'legal', minQuality: 4, groundedQuestions: 0 });
    expect(
      parseRunInput({ method: 'backtranslate', documents: 'documents/legal/', minQuality: 2 }, 'r')
        .minQuality,
    ).toBe(2);
    expect(parseRunInput({}, 'r').minQuality).toBeUndefined();
  });

  it('needs documents, which only this method reads', () => {
    expect(() => parseRunInput({ method: 'backtranslate' }, 'r')).toThrow(
      /method: backtranslate needs documents/,
    );
    expect(() => parseRunInput({ documents: 'documents/legal/' }, 'r')).toThrow(RunInputInvalid);
    expect(() => parseRunInput({ method: 'backtranslate', documents: 'seeds/legal/' }, 'r')).toThrow(
      /documents: must be under documents\/<pool>\//,
    );
  });

  it('keeps each passage as its output: no teacher rewrites it (responseStyle explained is refused)', () => {
    const input = { method: 'backtranslate', documents: 'documents/legal/' } as const;
    expect(() => parseRunInput({ ...input, responseStyle: 'explained' }, 'r')).toThrow(
      'method: backtranslate keeps each passage as its output: responseStyle explained does not apply',
    );
    expect(parseRunInput(input, 'r').responseStyle).toBe('direct');
  });
});

describe('a backtranslation run’s first stages', () => {
  it('"Prepare run" writes the passages to the run’s folder, and "Generate instructions" makes candidates that carry them', async () => {
    const objects = documentsBucket();
    const pool = new MemoryPool();
    const state = await prepareRun(
      { runId: 'run-1', input: { method: 'backtranslate', documents: 'documents/notes/', seed: 'bt' } },
      { objects, pool },
    );
    const passages = fromJsonLines<Passage>(await objects.getText(passagesKey('run-1')));
    expect(passages.length).toBe(14);
    expect(passages).toEqual((await splitDocuments(objects, 'documents/notes/')).passages);

    const result = await generateInstructions(state, {
      objects,
      pool,
      model: new OfflineModel({ seed: 'bt', noise: 0 }),
    });
    expect(result.prompts).toBe(5);
    const candidates = fromJsonLines<unknown>(await objects.getText(result.candidatesKey)).map((line) =>
      Candidate.parse(line),
    );
    expect(candidates.length).toBe(5);
    candidates.forEach((candidate, i) => {
      const passage = passages[i] as Passage;
      expect(candidate).toMatchObject({
        input: '',
        output: passage.text,
        isClassification: false,
        document: { document: passage.document, span: [passage.start, passage.end], use: 'output' },
      });
      expect(candidate.instruction.length).toBeGreaterThan(10);
    });
  });

  it('"Prepare run" refuses a folder without passages before writing anything', async () => {
    const objects = new MemoryObjects();
    objects.objects.set('documents/empty/photo.jpg', new Uint8Array([1]));
    const pool = new MemoryPool();
    await expect(
      prepareRun(
        { runId: 'run-2', input: { method: 'backtranslate', documents: 'documents/empty/' } },
        { objects, pool },
      ),
    ).rejects.toThrow(
      /documents\/empty\/ holds no passage to backtranslate \(0 documents read; not read: documents\/empty\/photo\.jpg/,
    );
    expect([...objects.objects.keys()]).toEqual(['documents/empty/photo.jpg']);
    expect(pool.runs.size).toBe(0);
  });
});

describe('the offline model’s backtranslations', () => {
  it('answers most passages with an instruction that parses, and makes the mistakes a real model makes', async () => {
    const model = new OfflineModel({ seed: 'noise', noise: 0.15 });
    const passages = (await splitDocuments(documentsBucket(), 'documents/notes/')).passages;
    const replies = [];
    for (let round = 0; round < 6; round++) {
      for (const passage of passages) {
        const request = renderBacktranslateRequest(`${passage.text}\n(${round})`, 2);
        replies.push(parseBacktranslateReply(await model.generate(request), 2));
      }
    }
    const instructions = replies.flatMap((reply) => reply.instruction ?? []);
    expect(instructions.length).toBeGreaterThan(replies.length * 0.7);
    expect(replies.some((reply) => reply.malformed > 0)).toBe(true);
    expect(replies.some((reply) => reply.droppedByTruncation > 0)).toBe(true);
    // Generic instructions many passages share (the ROUGE-L gate's work), and grounded pairs.
    const repeated = instructions.filter((text, i) => instructions.indexOf(text) !== i);
    expect(repeated.length).toBeGreaterThan(0);
    expect(replies.flatMap((reply) => reply.pairs).length).toBeGreaterThan(replies.length);
  });
});

describe('estimate --method backtranslate', () => {
  it('counts one call per passage and at most one judge call per candidate, with the rendered prompts’ tokens', async () => {
    const prices = shippedPrices();
    const model = 'bedrock:amazon.nova-micro-v1:0';
    const passages = (await splitDocuments(documentsBucket(), 'documents/notes/')).passages;
    const plain = await estimateBacktranslation({ dir: FIXTURES, model, groundedQuestions: 0, prices });
    expect(plain).toMatchObject({ documents: 4, passages: passages.length });
    expect(plain.backtranslate.calls).toBe(passages.length);
    expect(plain.backtranslate.inputTokens).toBe(
      passages.reduce((sum, passage) => {
        const request = renderBacktranslateRequest(passage.text, 0);
        return sum + Math.ceil(((request.system ?? '') + request.prompt).length / 4);
      }, 0),
    );
    expect(plain.judge?.calls).toBe(passages.length);
    const grounded = await estimateBacktranslation({ dir: FIXTURES, model, groundedQuestions: 2, prices });
    expect(grounded.judge?.calls).toBe(passages.length * 3);
    expect(grounded.totalUsd as number).toBeGreaterThan(plain.totalUsd as number);
    const unjudged = await estimateBacktranslation({
      dir: FIXTURES,
      model,
      judgeModel: 'none',
      groundedQuestions: 0,
      prices,
    });
    expect(unjudged.judge).toBeNull();
    expect(unjudged.totalUsd).toBe(plain.backtranslate.cost.usd);
  });
});
