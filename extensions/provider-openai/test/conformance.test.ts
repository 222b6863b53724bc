import { describeProviderConformance, type ConformanceReply } from '@aion/provider-kit/testing';
import { OpenAIClient } from '../src/client.js';
import { startFakeOpenAI, type FakeOpenAIReply } from '../src/testing.js';

const reply = (r: ConformanceReply): FakeOpenAIReply => {
  if (r.kind === 'toolCall') return { kind: 'answer', toolCalls: [{ id: r.id, name: r.name, arguments: JSON.stringify(r.arguments) }] };
  return r;
};

describeProviderConformance({
  name: 'provider-openai',
  model: 'gpt-4o-mini',
  start: (replies, options) => startFakeOpenAI({ ...options, replies: replies.map(reply) }),
  client: (options) => new OpenAIClient(options),
});
