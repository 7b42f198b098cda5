/**
 * `estimate --method backtranslate --documents <dir>`: the calls and tokens of an instruction
 * backtranslation run on a folder of documents, counted rather than simulated. The documents are split
 * into passages exactly as "Prepare run" splits them; each passage is one backtranslation call (its prompt
 * rendered, its input tokens counted), and each candidate it yields (the instruction, plus the grounded
 * pairs asked for) at most one judge call (the passage or answer rendered in the judge's prompt). The
 * judge count is an upper bound: the filters and the ROUGE-L gate drop some candidates before the judge.
 * Output tokens are per-call figures measured on the offline model; the AWS side is not counted here
 * (it is a small share: see `estimate` for the self-instruct method).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { renderJudgeRequest } from '../../../functions/generate-instances/judge.ts';
import { renderBacktranslateRequest } from '../../../functions/generate-instructions/backtranslate.ts';
import { splitDocuments } from '../../../functions/shared/documents/passages.ts';
import { NotFound } from '../../../functions/shared/errors.ts';
import { NO_JUDGE } from '../../../functions/shared/models/judge-ids.ts';
import { estimateTokens } from '../../../functions/shared/models/usage.ts';
import type { ModelRequest, ObjectStore } from '../../../functions/shared/ports.ts';
import { type ModelCost, modelCost, type PriceTable } from '../../../functions/shared/pricing/pricing.ts';
import type { TemplateOverrides } from '../../../functions/shared/prompt-templates.ts';
import { JUDGE_OUTPUT_TOKENS } from './calibrate.ts';

/** Output tokens of a backtranslation reply's instruction, and of each grounded pair (offline model). */
export const BACKTRANSLATE_OUTPUT_TOKENS = { instruction: 18, pair: 43 };

/** The files of a local folder as a read-only object store (keys `<prefix><file name>`). */
function folderStore(dir: string, prefix: string): ObjectStore {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name);
  } catch {
    throw new NotFound(`Documents folder ${dir} does not exist or can't be read`);
  }
  const file = (key: string) => path.join(dir, key.slice(prefix.length));
  const readOnly = () => Promise.reject(new Error('read-only'));
  return {
    list: async (under) =>
      names
        .map((name) => `${prefix}${name}`)
        .filter((key) => key.startsWith(under))
        .sort(),
    getBytes: async (key) => new Uint8Array(readFileSync(file(key))),
    getText: async (key) => readFileSync(file(key), 'utf8'),
    put: readOnly,
    copy: readOnly,
  };
}

/** One model step's calls and tokens. */
export interface StepCount {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  model: string;
  cost: ModelCost;
}

/** What `estimateBacktranslation` counts. */
export interface BacktranslationEstimate {
  documents: number;
  passages: number;
  backtranslate: StepCount;
  /** Null without a judge. */
  judge: StepCount | null;
  /** The steps' model cost, undefined when one is not priced. */
  totalUsd: number | undefined;
}

const tokensOf = (request: ModelRequest) => estimateTokens((request.system ?? '') + request.prompt);

/** The calls and tokens of a backtranslation run on the documents of `dir` (see the module comment). */
export async function estimateBacktranslation(input: {
  dir: string;
  model: string;
  judgeModel?: string;
  groundedQuestions: number;
  prices: PriceTable;
  templates?: TemplateOverrides;
}): Promise<BacktranslationEstimate> {
  const prefix = 'documents/estimate/';
  const { passages, documents } = await splitDocuments(folderStore(input.dir, prefix), prefix);
  const count = input.groundedQuestions;
  const step = (model: string, calls: number, inputTokens: number, outputTokens: number): StepCount => ({
    calls,
    inputTokens,
    outputTokens: Math.round(outputTokens),
    model,
    cost: modelCost(input.prices, model, { inputTokens, outputTokens: Math.round(outputTokens) }),
  });
  const backtranslate = step(
    input.model,
    passages.length,
    passages.reduce(
      (sum, passage) => sum + tokensOf(renderBacktranslateRequest(passage.text, count, input.templates)),
      0,
    ),
    passages.length * (BACKTRANSLATE_OUTPUT_TOKENS.instruction + count * BACKTRANSLATE_OUTPUT_TOKENS.pair),
  );
  const judgeModel = input.judgeModel ?? input.model;
  // The instruction's own tokens are unknown before the call: its reply's length stands for it.
  const instruction = 'x'.repeat(BACKTRANSLATE_OUTPUT_TOKENS.instruction * 4);
  const judge =
    judgeModel === NO_JUDGE
      ? null
      : step(
          judgeModel,
          passages.length * (1 + count),
          passages.reduce(
            (sum, passage) =>
              sum +
              tokensOf(
                renderJudgeRequest(instruction, [{ input: '', output: passage.text }], input.templates),
              ) +
              count *
                tokensOf(
                  renderJudgeRequest(instruction, [{ input: '', output: 'x'.repeat(160) }], input.templates),
                ),
            0,
          ),
          passages.length * (1 + count) * JUDGE_OUTPUT_TOKENS,
        );
  const costs = [backtranslate, ...(judge ? [judge] : [])].map((s) => s.cost);
  return {
    documents: documents.length,
    passages: passages.length,
    backtranslate,
    judge,
    totalUsd: costs.every((cost) => cost.priced)
      ? costs.reduce((sum, cost) => sum + (cost.usd ?? 0), 0)
      : undefined,
  };
}
