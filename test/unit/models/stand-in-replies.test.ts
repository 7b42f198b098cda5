import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInstancesReply, renderInstancesRequest } from '../../../functions/generate-instances/prompt.ts';
import {
  parseInstructionReply,
  renderInstructionRequest,
} from '../../../functions/generate-instructions/prompt.ts';
import { LIMIT_SETTINGS } from '../../../functions/shared/limits.ts';
import { createTextModel } from '../../../functions/shared/models/index.ts';
import type { TextModel } from '../../../functions/shared/ports.ts';
import type { ProfileName } from '../../../functions/shared/schemas.ts';
import { type StandIn, startBedrockStandIn, startOpenAIStandIn } from '../../support/model-servers.ts';

const DEMOS = [
  { instruction: 'Give three tips for staying healthy.' },
  { instruction: 'Write a haiku about autumn leaves.' },
  { instruction: 'Classify the sentiment of the given tweet as positive or negative.' },
];

let bedrock: StandIn;
let openai: StandIn;
const models: Record<string, TextModel> = {};

beforeAll(async () => {
  bedrock = await startBedrockStandIn({ noise: 0 });
  openai = await startOpenAIStandIn({ noise: 0 });
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDSTANDIN',
    AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
    // The one endpoint these tests allow (limits.ts).
    [LIMIT_SETTINGS.allowedModelEndpoints.env]: openai.url,
  });
  delete process.env.MODEL_API_KEY_SECRET_ARN;
  models.bedrock = await createTextModel('bedrock:amazon.nova-micro-v1:0', { seed: 's' });
  models.chat = await createTextModel(`openai-compatible:m@${openai.url}`, { seed: 's' });
  models.completions = await createTextModel(`openai-completions:m@${openai.url}`, { seed: 's' });
});

afterAll(async () => {
  await Promise.all([bedrock.close(), openai.close()]);
});

const cases: [string, ProfileName][] = [
  ['bedrock', 'default'],
  ['bedrock', 'self-instruct'],
  ['chat', 'default'],
  ['completions', 'self-instruct'],
  ['completions', 'alpaca'],
];

describe("the stand-ins' replies", () => {
  it.each(cases)('from %s parse into new instructions for the %s profile', async (name, profile) => {
    const reply = await models[name]?.generate(renderInstructionRequest(profile, DEMOS));

    const parsed = parseInstructionReply(profile, reply ?? { text: '', finish: 'stop' });

    expect(parsed.candidates.length).toBeGreaterThan(0);
    expect(parsed.malformed).toBe(0);
  });

  it.each(cases)('from %s parse into instances for the %s profile', async (name, profile) => {
    const request = renderInstancesRequest(profile, 'Give three tips for staying healthy.', false);

    const reply = await models[name]?.generate(request);

    const parsed = parseInstancesReply(profile, reply ?? { text: '', finish: 'stop' }, false);
    expect(parsed.malformed).toBe(false);
    expect(parsed.instances.length).toBeGreaterThan(0);
  });

  it('count as malformed when garbage is injected', async () => {
    openai.enqueue({ malformedText: true }, { malformedText: true });

    const instructions = await models.chat?.generate(renderInstructionRequest('default', DEMOS));
    const instances = await models.completions?.generate(
      renderInstancesRequest('self-instruct', 'Give three tips for staying healthy.', false),
    );

    expect(parseInstructionReply('default', instructions ?? { text: '', finish: 'stop' }).malformed).toBe(1);
    expect(
      parseInstancesReply('self-instruct', instances ?? { text: '', finish: 'stop' }, false).malformed,
    ).toBe(true);
  });
});
