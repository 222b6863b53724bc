import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestKernel } from '@aion/core';
import { startFakeOllama, type FakeOllama, type FakeOllamaReply } from '@aion/ext-provider-ollama/testing';
import { startFakeOpenAI, type FakeOpenAI, type FakeOpenAIReply, type RecordedRequest } from '@aion/ext-provider-openai/testing';
import OpenAI from 'openai';
import WebSocket from 'ws';
import { chatRequests, client, OLLAMA_DIR, OPENAI_DIR, readSse, signedTextPack, SKILLS_DIR, startRouterKernel, TEXT_PACK_DIR, until } from './helpers.js';

const user = (content: string) => [{ role: 'user', content }];
const toolMessages = (r: RecordedRequest) =>
  ((r.body?.messages ?? []) as Array<{ role: string; tool_call_id?: string; content: string }>).filter((m) => m.role === 'tool');
const slugify = (text: string, id = 'call_slug') => ({ id, name: 'text__slugify', arguments: JSON.stringify({ text }) });

/** Calls `calls` on the first turn, then answers `text` once the tool results are in. */
const callThenAnswer =
  (calls: Array<{ id: string; name: string; arguments: string }>, text: string[]) =>
  (r: RecordedRequest): FakeOpenAIReply =>
    toolMessages(r).length === 0
      ? { kind: 'answer', toolCalls: calls, usage: { prompt_tokens: 20, completion_tokens: 5 } }
      : { kind: 'answer', text, usage: { prompt_tokens: 40, completion_tokens: 6 } };

describe('skills as tools: the router runs the tool loop through aion.skills', function () {
  this.timeout(120_000);
  let work: string;
  let openai: FakeOpenAI;
  let ollama: FakeOllama;
  let kernel: TestKernel;
  let script: (r: RecordedRequest) => FakeOpenAIReply = () => ({ kind: 'answer', text: 'unscripted' });
  let ollamaScript: (r: RecordedRequest) => FakeOllamaReply = () => ({ kind: 'answer', text: 'unscripted' });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'aion-router-skills-'));
    const skills = await signedTextPack(join(work, 'packs'), join(work, 'quarantine'));
    openai = await startFakeOpenAI({ reply: (r) => script(r) });
    ollama = await startFakeOllama({ reply: (r) => ollamaScript(r) });
    kernel = await startRouterKernel({
      extensions: [OPENAI_DIR, OLLAMA_DIR, SKILLS_DIR, TEXT_PACK_DIR],
      config: {
        'aion.router': { circuitBreaker: { failureThreshold: 1000 }, defaults: { privacy: 'allow-api' }, skills: { maxSteps: 4 } },
        'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 5000 },
        'aion.provider-ollama': { baseUrl: ollama.url, timeoutMs: 5000 },
        'aion.skills': skills,
      },
    });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
    await ollama?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const task = (body: Record<string, unknown>, token = 'skills-token') => {
    const api = client(kernel, token);
    return api.json(api.post('/v1/tasks', { wait: true, preferred_engine: 'openai/gpt-4o-mini', ...body }));
  };
  const sentSince = (before: number) => chatRequests(openai.requests).slice(before);

  it('runs the WASM and the js skill the model asks for, hands the results back, and records every step', async () => {
    script = callThenAnswer(
      [slugify('Hello World, Again'), { id: 'call_wrap', name: 'text__wrap', arguments: '{"text":"one two three","width":8}' }],
      ['The slug is ', 'hello-world-again.'],
    );
    const before = chatRequests(openai.requests).length;
    const { status, body } = await task({ messages: user('slugify and wrap'), skills: ['text.slugify', 'text.wrap'] });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.status, 'OK', JSON.stringify(body.error));
    assert.deepEqual(body.result, { text: 'The slug is hello-world-again.', tool_calls: [], finish_reason: 'stop' });

    const [first, second, ...rest] = sentSince(before);
    assert.equal(rest.length, 0, 'two model calls');
    assert.deepEqual(first!.body.tools.map((t: any) => t.function.name).sort(), ['text__slugify', 'text__wrap']);
    assert.equal(first!.body.tools.find((t: any) => t.function.name === 'text__slugify').function.parameters.required[0], 'text');
    const assistant = second!.body.messages.find((m: any) => m.role === 'assistant');
    assert.deepEqual(
      assistant.tool_calls.map((c: any) => c.id),
      ['call_slug', 'call_wrap'],
    );
    const results = Object.fromEntries(toolMessages(second!).map((m) => [m.tool_call_id, JSON.parse(m.content)]));
    assert.deepEqual(results, { call_slug: { slug: 'hello-world-again' }, call_wrap: { text: 'one two\nthree', lines: 2 } });

    assert.deepEqual(
      body.steps.map((s: any) => `${s.step}:${s.type}`),
      ['1:model', '1:tool', '1:tool', '2:model'],
    );
    const [call1, tools1, tools2, call2] = body.steps;
    assert.equal(call1.engine.provider, 'openai');
    assert.equal(call1.engine.model, 'gpt-4o-mini');
    assert.equal(call1.finish_reason, 'tool_calls');
    assert.deepEqual(call1.usage.tokens, { input: 20, output: 5, total: 25 });
    assert.deepEqual(call2.usage.tokens, { input: 40, output: 6, total: 46 });
    const bySkill = Object.fromEntries([tools1, tools2].map((s: any) => [s.skill, s]));
    assert.deepEqual(Object.keys(bySkill).sort(), ['text.slugify', 'text.wrap']);
    for (const s of [tools1, tools2]) {
      assert.equal(s.ok, true);
      assert.equal(typeof s.duration_ms, 'number');
    }
    assert.equal(bySkill['text.slugify'].arguments, '{"text":"Hello World, Again"}');
    assert.deepEqual(body.usage.tokens, { input: 60, output: 11, total: 71 });
    assert.equal(body.usage.cost_usd, Math.round((call1.usage.cost_usd + call2.usage.cost_usd) * 1e8) / 1e8);
    assert.ok(body.usage.cost_usd > 0);
    assert.deepEqual(
      body.transcript.map((m: any) => m.role),
      ['assistant', 'tool', 'tool'],
    );
    assert.deepEqual(
      body.routing.attempts.map((a: any) => [a.engine, a.step]),
      [
        ['openai/gpt-4o-mini', 1],
        ['openai/gpt-4o-mini', 2],
      ],
    );

    const api = client(kernel, 'skills-token');
    const stored = await api.json(api.get(`/v1/tasks/${body.task_id}`));
    assert.deepEqual(stored.body.steps, body.steps);

    // The task's stream: the steps as they happened, then the answer's tokens.
    const events = await readSse(await api.get(`/v1/stream/${body.task_id}`));
    const names = events.map((e) => e.event);
    assert.deepEqual(
      names.filter((n) => n === 'tool' || n === 'step'),
      ['step', 'tool', 'tool', 'step', 'step', 'step'],
    );
    assert.ok(names.indexOf('tool') < names.indexOf('token'));
    assert.equal(
      events
        .filter((e) => e.event === 'token')
        .map((e) => e.data.text)
        .join(''),
      body.result.text,
    );
    assert.deepEqual(events.find((e) => e.event === 'tool')!.data.step, 1);
    assert.equal(names.at(-1), 'done');
  });

  it('a failing skill (bad arguments) goes back to the model as an error, and the loop goes on', async () => {
    script = callThenAnswer([{ id: 'call_bad', name: 'text__slugify', arguments: '{"txt":"wrong field"}' }], ['The tool refused those arguments.']);
    const before = chatRequests(openai.requests).length;
    const { body } = await task({ messages: user('slugify badly'), skills: ['text.slugify'] });
    assert.equal(body.status, 'OK');
    assert.equal(body.result.text, 'The tool refused those arguments.');
    const tool = body.steps.find((s: any) => s.type === 'tool');
    assert.equal(tool.ok, false);
    assert.equal(tool.error.code, 'VALIDATION_FAILED');
    const [, second] = sentSince(before);
    const content = JSON.parse(toolMessages(second!)[0]!.content);
    assert.equal(content.error.code, 'VALIDATION_FAILED');
    assert.match(content.error.message, /text|txt/);
  });

  it('the step limit stops a model that keeps calling tools, with TOOL_LOOP_LIMIT and the partial transcript', async () => {
    let n = 0;
    script = () => ({ kind: 'answer', toolCalls: [slugify(`round ${++n}`, `call_${n}`)] });
    const before = chatRequests(openai.requests).length;
    const { body } = await task({ messages: user('loop forever'), skills: ['text.slugify'], max_steps: 3 });
    assert.equal(body.status, 'ERROR');
    assert.equal(body.error.code, 'TOOL_LOOP_LIMIT');
    assert.match(body.error.message, /after 3 steps/);
    assert.equal(sentSince(before).length, 3);
    assert.deepEqual(
      body.steps.map((s: any) => `${s.step}:${s.type}`),
      ['1:model', '1:tool', '2:model', '2:tool', '3:model'],
    );
    assert.deepEqual(
      body.transcript.map((m: any) => m.role),
      ['assistant', 'tool', 'assistant', 'tool', 'assistant'],
    );
    assert.equal(body.transcript[1].content, '{"slug":"round-1"}');
    assert.equal(body.transcript.at(-1).tool_calls[0].id, 'call_3');
    assert.equal(body.result.finish_reason, 'tool_calls');

    // A request may ask for fewer steps than the configuration allows, never more.
    const capped = await task({ messages: user('loop forever'), skills: ['text.slugify'], max_steps: 50 });
    assert.equal(capped.body.error.code, 'TOOL_LOOP_LIMIT');
    assert.equal(capped.body.steps.filter((s: any) => s.type === 'model').length, 4);
  });

  it('a caller without skills:execute gets the denial as the tool result, not a failed task', async () => {
    script = callThenAnswer([slugify('not allowed', 'call_denied')], ['I may not run that tool.']);
    const before = chatRequests(openai.requests).length;
    const { body } = await task({ messages: user('try it'), skills: ['text.slugify'] }, 'test-token');
    assert.equal(body.status, 'OK');
    assert.equal(body.result.text, 'I may not run that tool.');
    const tool = body.steps.find((s: any) => s.type === 'tool');
    assert.equal(tool.ok, false);
    assert.equal(tool.error.code, 'FORBIDDEN');
    const content = JSON.parse(toolMessages(sentSince(before)[1]!)[0]!.content);
    assert.equal(content.error.code, 'FORBIDDEN');
    assert.deepEqual(content.error.details.missingScopes, ['skills:execute']);
  });

  it('local-only holds for every model call of the loop', async () => {
    ollamaScript = (r) =>
      toolMessages(r).length === 0
        ? { kind: 'answer', toolCalls: [{ id: 'call_local', name: 'text__slugify', arguments: { text: 'Stays Here' } }] }
        : { kind: 'answer', text: 'local answer' };
    const openaiBefore = chatRequests(openai.requests).length;
    const ollamaBefore = chatRequests(ollama.requests).length;
    const { body } = await task({ messages: user('private'), skills: ['text.slugify'], privacy: 'local-only', preferred_engine: undefined });
    assert.equal(body.status, 'OK', JSON.stringify(body.error));
    assert.equal(body.result.text, 'local answer');
    assert.ok(body.steps.filter((s: any) => s.type === 'model').every((s: any) => s.engine.route === 'local'));
    assert.equal(chatRequests(openai.requests).length, openaiBefore, 'the api provider received nothing');
    const sent = chatRequests(ollama.requests).slice(ollamaBefore);
    assert.equal(sent.length, 2);
    assert.equal(JSON.parse(toolMessages(sent[1]!)[0]!.content).slug, 'stays-here');
  });

  it('over the WebSocket, tool and step notifications arrive as they happen; text said before a tool call stays in the answer', async () => {
    script = (r) =>
      toolMessages(r).length === 0
        ? { kind: 'answer', text: ['Let me check.'], toolCalls: [slugify('Web Socket')] }
        : { kind: 'answer', text: ['It is web-socket.'] };
    const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: 'Bearer skills-token' } });
    const frames: any[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tasks.submit',
        params: { input: 'ws', preferred_engine: 'openai/gpt-4o-mini', skills: ['text.slugify'], subscribe: true },
      }),
    );
    await until(() => frames.some((f) => f.method === 'tasks.event' && f.params.event === 'done'));
    ws.close();
    const events = frames.filter((f) => f.method === 'tasks.event').map((f) => f.params);
    assert.deepEqual(
      events.filter((e) => e.event === 'tool').map((e) => [e.data.name, e.data.arguments]),
      [['text__slugify', '{"text":"Web Socket"}']],
    );
    assert.deepEqual(
      events.filter((e) => e.event === 'step').map((e) => e.data.type),
      ['model', 'tool', 'model'],
    );
    const text = events
      .filter((e) => e.event === 'token')
      .map((e) => e.data.text)
      .join('');
    assert.equal(text, 'Let me check.\n\nIt is web-socket.');
    assert.equal(events.at(-1).data.result.text, text);
  });

  it('refuses unknown skills and client tools that take a skill name, with 400', async () => {
    const unknown = await task({ messages: user('x'), skills: ['text.slugify', 'text.nope'] });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.code, 'SKILL_NOT_FOUND');
    assert.match(unknown.body.error.message, /text\.nope/);
    const clash = await task({
      messages: user('x'),
      skills: ['text.slugify'],
      tools: [{ type: 'function', function: { name: 'text__slugify', parameters: { type: 'object' } } }],
    });
    assert.equal(clash.status, 400);
    assert.match(clash.body.error.message, /text__slugify/);
    const search = await task({ messages: user('x'), skills: { q: 'no such skill anywhere' } });
    assert.equal(search.status, 400);
  });

  describe('/v1/chat/completions with aion.skills, through the openai client', () => {
    let oa: OpenAI;
    before(() => (oa = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'skills-token', maxRetries: 0 })));

    it('answers with the final message; the steps are in the aion field', async () => {
      script = callThenAnswer([slugify('Front Door')], ['Slug: front-door']);
      const res = await oa.chat.completions.create({
        model: 'openai/gpt-4o-mini',
        messages: [{ role: 'user', content: 'slugify Front Door' }],
        aion: { skills: ['text.slugify'] },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      assert.equal(res.choices[0]!.message.content, 'Slug: front-door');
      assert.equal(res.choices[0]!.finish_reason, 'stop');
      assert.equal(res.choices[0]!.message.tool_calls, undefined);
      assert.deepEqual(res.usage, { prompt_tokens: 60, completion_tokens: 11, total_tokens: 71 });
      const aion = (res as unknown as { aion: { steps: any[]; transcript: any[] } }).aion;
      assert.deepEqual(
        aion.steps.map((s) => s.type),
        ['model', 'tool', 'model'],
      );
      assert.equal(aion.steps[1].skill, 'text.slugify');
      assert.equal(aion.transcript[1].content, '{"slug":"front-door"}');
    });

    it('streams the answer, with the steps on chunks the client reads as empty deltas', async () => {
      script = callThenAnswer([slugify('Streamed Slug')], ['Slug: ', 'streamed-slug']);
      const stream = await oa.chat.completions.create({
        model: 'openai/gpt-4o-mini',
        messages: [{ role: 'user', content: 'stream it' }],
        stream: true,
        aion: { skills: ['text.slugify'] },
      } as OpenAI.ChatCompletionCreateParamsStreaming);
      let text = '';
      const loop: string[] = [];
      let transcript: any[] | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        const aion = (chunk as unknown as { aion?: { tool?: unknown; step?: { type: string }; transcript?: any[] } }).aion;
        if (aion?.tool) loop.push('tool');
        if (aion?.step) loop.push(`step:${aion.step.type}`);
        if (aion?.transcript) transcript = aion.transcript;
        assert.equal(chunk.choices[0]?.delta.tool_calls, undefined, 'skill calls are not handed to the client');
      }
      assert.equal(text, 'Slug: streamed-slug');
      assert.deepEqual(loop, ['step:model', 'tool', 'step:tool', 'step:model']);
      assert.deepEqual(
        transcript?.map((m) => m.role),
        ['assistant', 'tool'],
      );
    });

    it('a call of the client’s own tool goes back to the client, after the skills of that turn ran', async () => {
      script = () => ({ kind: 'answer', toolCalls: [slugify('Mixed Turn'), { id: 'call_lookup', name: 'lookup', arguments: '{"q":"aion"}' }] });
      const before = chatRequests(openai.requests).length;
      const res = await oa.chat.completions.create({
        model: 'openai/gpt-4o-mini',
        messages: [{ role: 'user', content: 'both' }],
        tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }],
        aion: { skills: ['text.slugify'] },
      } as OpenAI.ChatCompletionCreateParamsNonStreaming);
      assert.equal(res.choices[0]!.finish_reason, 'tool_calls');
      assert.deepEqual(res.choices[0]!.message.tool_calls, [{ id: 'call_lookup', type: 'function', function: { name: 'lookup', arguments: '{"q":"aion"}' } }]);
      const sent = sentSince(before);
      assert.equal(sent.length, 1);
      assert.deepEqual(
        sent[0]!.body.tools.map((t: any) => t.function.name),
        ['lookup', 'text__slugify'],
      );
      const aion = (res as unknown as { aion: { transcript: any[] } }).aion;
      assert.deepEqual(
        aion.transcript.map((m) => m.role),
        ['assistant', 'tool'],
      );
      assert.equal(aion.transcript[1].content, '{"slug":"mixed-turn"}');
    });

    it('the step limit is an error with the steps in its details', async () => {
      script = () => ({ kind: 'answer', toolCalls: [slugify('again')] });
      await assert.rejects(
        oa.chat.completions.create({
          model: 'openai/gpt-4o-mini',
          messages: [{ role: 'user', content: 'loop' }],
          aion: { skills: ['text.slugify'], max_steps: 2 },
        } as OpenAI.ChatCompletionCreateParamsNonStreaming),
        (err: any) => {
          assert.equal(err.status, 422);
          assert.equal(err.code ?? err.error?.code, 'TOOL_LOOP_LIMIT');
          assert.equal(err.error.details.steps.length, 3);
          return true;
        },
      );
    });
  });
});

describe('skills as tools without aion.skills installed', function () {
  let openai: FakeOpenAI;
  let kernel: TestKernel;
  before(async () => {
    openai = await startFakeOpenAI();
    kernel = await startRouterKernel({ extensions: [OPENAI_DIR], config: { 'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '' } } });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
  });

  it('a request that enables skills is refused with 400 saying so; one without skills runs', async () => {
    const api = client(kernel, 'skills-token');
    const t = await api.json(api.post('/v1/tasks', { wait: true, input: 'x', skills: '*' }));
    assert.equal(t.status, 400);
    assert.equal(t.body.error.code, 'SKILLS_NOT_INSTALLED');
    assert.match(t.body.error.message, /aion\.skills/);
    const c = await api.json(api.post('/v1/chat/completions', { model: 'aion/auto', messages: user('x'), aion: { skills: ['text.slugify'] } }));
    assert.equal(c.status, 400);
    assert.equal(c.body.error.code, 'SKILLS_NOT_INSTALLED');
    const plain = await api.json(api.post('/v1/tasks', { wait: true, input: 'x' }));
    assert.equal(plain.body.status, 'OK');
  });
});
