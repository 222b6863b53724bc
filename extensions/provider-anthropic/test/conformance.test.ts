import { describeProviderConformance, type ConformanceReply } from '@aion/provider-kit/testing';
import { AnthropicClient } from '../src/client.js';
import { startFakeAnthropic, type FakeAnthropicReply } from '../src/testing.js';

const reply = (r: ConformanceReply): FakeAnthropicReply => {
  if (r.kind === 'toolCall') return { kind: 'answer', toolUses: [{ id: r.id, name: r.name, input: r.arguments }] };
  return r;
};

describeProviderConformance({
  name: 'provider-anthropic',
  model: 'claude-sonnet-4-5',
  start: (replies, options) => startFakeAnthropic({ ...options, replies: replies.map(reply) }),
  // The Messages API always needs a key; the fake accepts any unless a scenario sets one.
  client: (options) => new AnthropicClient({ ...options, apiKey: options.apiKey ?? 'sk-ant-test' }),
});
