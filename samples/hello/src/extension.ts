import * as aion from '@aion/extension-api';

export async function activate(ctx: aion.ExtensionContext) {
  const greeting = () => ctx.configuration.get<string>('greeting');

  ctx.subscriptions.push(
    aion.http.handle('GET /v1/hello', async (req) => ({
      body: { message: `${greeting()} ${req.query.name ?? req.principal?.sub ?? 'world'}` },
    })),
    aion.http.handle('POST /v1/hello/echo', async (req) => {
      if (req.body === undefined) throw new aion.AionError(aion.ErrorCodes.BAD_REQUEST, 'send a JSON body to echo');
      return { status: 200, body: { echo: req.body } };
    }),
    aion.http.handle('GET /v1/hello/count', async (req) => {
      const to = Math.min(Number(req.query.to ?? 5), 10_000);
      async function* count() {
        for (let i = 1; i <= to; i++) yield { event: 'count', id: String(i), data: { n: i } };
      }
      return { stream: count() };
    }),
    aion.http.handle('GET /v1/hello/socket', async (req) => {
      async function* replies() {
        for await (const message of req.messages!) yield message.toUpperCase();
      }
      return { stream: replies() };
    }),
    aion.commands.register('hello.greet', (name: string) => `${greeting()} ${name}`),
  );

  ctx.logger.info('hello is active');
  // The public API other extensions reach with aion.extensions.getApi('samples.hello').
  return { greet: (name: string) => `${greeting()} ${name}` };
}

export function deactivate() {}
