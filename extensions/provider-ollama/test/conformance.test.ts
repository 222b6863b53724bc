import { describeProviderConformance, type ConformanceReply } from '@aion/provider-kit/testing';
import { OllamaClient } from '../src/client.js';
import { startFakeOllama, type FakeOllamaReply } from '../src/testing.js';

const reply = (r: ConformanceReply): FakeOllamaReply => {
  if (r.kind === 'toolCall') return { kind: 'answer', toolCalls: [{ id: r.id, name: r.name, arguments: r.arguments }] };
  return r;
};

describeProviderConformance({
  name: 'provider-ollama',
  model: 'llama3.1',
  start: (replies, options) => startFakeOllama({ ...options, replies: replies.map(reply) }),
  client: (options) => new OllamaClient(options),
});
