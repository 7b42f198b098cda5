/**
 * Token counts for providers that report none (the offline model, a server that leaves `usage` out) and
 * for estimates before a run: one approximation, about four characters a token, so that an estimate and
 * the run it predicts count alike.
 */
import type { ModelRequest, TokenUsage } from '../ports.ts';

/** A rough token count for when a provider reports none: about four characters a token. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4);

/** Usage estimated from the text, for a provider that reported none. */
export const estimatedUsage = (
  request: Pick<ModelRequest, 'system' | 'prompt'>,
  reply: string,
): TokenUsage => ({
  inputTokens: estimateTokens((request.system ?? '') + request.prompt),
  outputTokens: estimateTokens(reply),
  estimated: true,
});
