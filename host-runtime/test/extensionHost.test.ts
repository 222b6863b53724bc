import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Installs vscode-jsonrpc's Node runtime layer, as a host's entry point does.
import 'vscode-jsonrpc/node';
import { AionError, ErrorCodes } from '@aion/extension-api';
import { CommandsProtocol, ExtensionApisProtocol, LifecycleProtocol, RpcEndpoint } from '@aion/extension-api/protocol';
import { createInMemoryConnectionPair, ExtensionHost } from '../src/index.js';

const probe = fileURLToPath(new URL('../../test/fixtures/probe/', import.meta.url));

describe('the extension host', () => {
  let kernel: RpcEndpoint;
  const registered: string[] = [];

  before(async () => {
    const [kernelSide, hostSide] = createInMemoryConnectionPair();
    new ExtensionHost(new RpcEndpoint(hostSide), 'kernel');
    hostSide.listen();
    kernel = new RpcEndpoint(kernelSide);
    kernel.onNotification(CommandsProtocol.kernel.register, ({ command }) => registered.push(command));
    kernelSide.listen();
    const manifest = { name: 'probe', publisher: 'test', version: '1.0.0', engines: { aion: '*' }, main: 'extension.js' };
    await kernel.sendRequest(LifecycleProtocol.host.activate, {
      extension: {
        id: 'test.probe',
        manifest,
        extensionPath: probe,
        mainPath: join(probe, 'extension.js'),
        storagePath: mkdtempSync(join(tmpdir(), 'aion-host-')),
        configuration: {},
      },
      hostKind: 'kernel',
    });
  });
  after(() => kernel.close(new AionError(ErrorCodes.SHUTTING_DOWN, 'test over')));

  it('registers what activate registers with the kernel', () => {
    assert.deepEqual(registered, ['probe.who']);
  });

  it('runs a command as its extension, for the caller and the user the kernel names', async () => {
    const principal = { sub: 'ada', type: 'user', scopes: ['x:read'], tenant_id: 'default' };
    const asCalled = await kernel.sendRequest(CommandsProtocol.host.execute, { command: 'probe.who', args: [], callerId: 'test.other', principal });
    assert.deepEqual(asCalled, { extension: 'test.probe', caller: 'test.other', principal });
    const fromKernel = await kernel.sendRequest(CommandsProtocol.host.execute, { command: 'probe.who', args: [] });
    assert.deepEqual(fromKernel, { extension: 'test.probe', caller: null, principal: null });
  });

  it("keeps each concurrent API call's caller apart across awaits", async () => {
    const calls = ['test.a', 'test.b', 'test.c', undefined].map((callerId) =>
      kernel.sendRequest(ExtensionApisProtocol.host.invokeApi, { extensionId: 'test.probe', method: 'slowly', args: [], callerId }),
    );
    const answers = (await Promise.all(calls)) as Array<{ caller: string | null }>;
    assert.deepEqual(
      answers.map((a) => a.caller),
      ['test.a', 'test.b', 'test.c', null],
    );
  });

  it('answers an unknown command, API method or extension with its stable code', async () => {
    await assert.rejects(
      kernel.sendRequest(CommandsProtocol.host.execute, { command: 'probe.nope', args: [] }),
      (e: AionError) => e.code === ErrorCodes.COMMAND_NOT_FOUND,
    );
    await assert.rejects(
      kernel.sendRequest(ExtensionApisProtocol.host.invokeApi, { extensionId: 'test.probe', method: 'nope', args: [] }),
      (e: AionError) => e.code === ErrorCodes.API_METHOD_NOT_FOUND,
    );
    await assert.rejects(
      kernel.sendRequest(ExtensionApisProtocol.host.invokeApi, { extensionId: 'test.absent', method: 'who', args: [] }),
      (e: AionError) => e.code === ErrorCodes.EXTENSION_NOT_FOUND,
    );
  });
});
