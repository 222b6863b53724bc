import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import 'vscode-jsonrpc/node';
import { AionError, ErrorCodes } from '@aion/extension-api';
import { ContributionsProtocol, ExtensionApisProtocol, LifecycleProtocol, RpcEndpoint } from '@aion/extension-api/protocol';
import { createInMemoryConnectionPair, ExtensionHost } from '../src/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/${name}/`, import.meta.url));

/** Two extensions in one host: one implements a contribution, the other calls it. */
for (const kind of ['kernel', 'shared'] as const)
  describe(`contributions called within one ${kind} host`, () => {
    let kernel: RpcEndpoint;
    const viaKernel: string[] = [];
    // The kernel host calls its own implementations directly; other hosts go through the kernel, copying.
    const direct = kind === 'kernel';

    before(async () => {
      const [kernelSide, hostSide] = createInMemoryConnectionPair();
      new ExtensionHost(new RpcEndpoint(hostSide), kind);
      hostSide.listen();
      kernel = new RpcEndpoint(kernelSide);
      // The kernel's answers: `counter` is implemented by test.impl (in this host), `remote` by an extension elsewhere.
      kernel.onRequest(ContributionsProtocol.kernel.resolve, ({ id }) => ({
        methods: ['count', 'closed', 'fail'],
        extensionId: id === 'counter' ? 'test.impl' : 'test.elsewhere',
      }));
      kernel.onRequest(ContributionsProtocol.kernel.invoke, ({ id, method }) => {
        viaKernel.push(`${id}.${method}`);
        if (method === 'count')
          return (async function* () {
            yield { i: 'via kernel', caller: null };
          })();
        return 0;
      });
      kernelSide.listen();
      for (const name of ['contrib-impl', 'contrib-user']) {
        const dir = fixture(name);
        await kernel.sendRequest(LifecycleProtocol.host.activate, {
          extension: {
            id: `test.${name.replace('contrib-', '')}`,
            manifest: { name, publisher: 'test', version: '1.0.0', engines: { aion: '*' }, main: 'extension.js' },
            extensionPath: dir,
            mainPath: join(dir, 'extension.js'),
            storagePath: mkdtempSync(join(tmpdir(), 'aion-host-')),
            configuration: {},
          },
          hostKind: kind,
        });
      }
    });
    after(() => kernel.close(new AionError(ErrorCodes.SHUTTING_DOWN, 'test over')));

    const call = (method: string, ...args: unknown[]) =>
      kernel.sendRequest(ExtensionApisProtocol.host.invokeApi, { extensionId: 'test.user', method, args, callerId: 'test.kernel-side' });

    it(
      direct
        ? 'calls an implementation in the same host directly, as its caller, with its stream'
        : 'asks the kernel, even for an implementation in the same host',
      async () => {
        viaKernel.length = 0;
        const got = (await call('all', 'counter', 3)) as Array<{ i: number | string; caller: string | null }>;
        if (direct) {
          assert.deepEqual(
            got,
            [1, 2, 3].map((i) => ({ i, caller: 'test.user' })),
          );
          assert.deepEqual(viaKernel, [], 'no call went through the kernel');
        } else {
          assert.deepEqual(viaKernel, ['counter.count'], 'the call went through the kernel');
        }
      },
    );

    if (direct)
      it('closes the implementation’s stream when the caller stops reading', async () => {
        const { item, closed } = (await call('first', 'counter')) as { item: { i: number }; closed: number };
        assert.equal(item.i, 1);
        assert.ok(closed >= 1, 'the generator’s finally ran when the caller left the loop');
      });

    if (direct)
      it('passes the implementation’s error code to the caller', async () => {
        await assert.rejects(call('fail', 'counter'), (e: AionError) => e.code === 'THING_BROKEN');
      });

    it('pulls a stream as the call that returned it, also when the kernel pulls it', async () => {
      const stream = (await kernel.sendRequest(ContributionsProtocol.host.invoke, {
        point: 'things',
        id: 'counter',
        method: 'count',
        args: [2],
        callerId: 'test.x',
        extensionId: 'test.impl',
      })) as AsyncIterable<{ i: number; caller: string | null }>;
      const got: Array<{ i: number; caller: string | null }> = [];
      for await (const item of stream) got.push(item);
      assert.deepEqual(got, [
        { i: 1, caller: 'test.x' },
        { i: 2, caller: 'test.x' },
      ]);
    });

    it('goes through the kernel for an implementation in another host', async () => {
      viaKernel.length = 0;
      const got = (await call('all', 'remote', 3)) as Array<{ i: string }>;
      assert.deepEqual(got, [{ i: 'via kernel', caller: null }]);
      assert.deepEqual(viaKernel, ['remote.count']);
    });
  });
