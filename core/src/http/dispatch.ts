import { AionError, CancellationTokenSource, ErrorCodes, isAionError, type HttpRequestData, type RouteContribution } from '@aion/extension-api';
import type { ServerConfig } from '../config/configuration.js';
import type { ActivationService } from '../activation/activationService.js';
import type { Logger } from '../logging.js';
import type { ExtensionRegistry } from '../registry/extensionRegistry.js';
import type { Admission } from './admission.js';
import type { EdgeAuthentication } from './authentication.js';
import { readRequestBody } from './body.js';
import { sanitizeMessage } from './errorResponse.js';
import { writeSseStream } from './sse.js';
import type { EdgeExchange } from './exchange.js';

export interface RouteDispatcherOptions {
  config: ServerConfig;
  logger: Logger;
  registry: ExtensionRegistry;
  activation: ActivationService;
  authentication: EdgeAuthentication;
  admission: Admission;
}

/** A declared route: authorise, read the body (no dispatch slot held yet), take a slot, call the owning extension over RPC. */
export class RouteDispatcher {
  constructor(private readonly options: RouteDispatcherOptions) {}

  async dispatch(exchange: EdgeExchange, extensionId: string, route: RouteContribution): Promise<void> {
    const { config, authentication, admission } = this.options;
    const ip = exchange.clientIp;
    // Set first, so an authentication failure is answered in the route's error format too.
    if (route.errorFormat) exchange.errorFormat = route.errorFormat;
    const principal = await authentication.authorize(route, { headers: exchange.headers, method: exchange.method, path: exchange.path, ip }, (k, v) =>
      exchange.set(k, v),
    );
    exchange.principal = principal;
    const { body, rawBody } = await readRequestBody(exchange.req, {
      limit: route.bodyLimit ?? config.bodyLimit,
      maxDepth: config.jsonMaxDepth,
      progress: config.bodyProgress,
    });
    const request: HttpRequestData = {
      method: exchange.method,
      path: exchange.path,
      route: route.path,
      params: exchange.params,
      query: exchange.query,
      headers: exchange.headers as Record<string, string>,
      body,
      rawBody,
      principal,
      requestId: exchange.requestId,
      ip,
    };
    await admission.run(() => this.callExtension(exchange, extensionId, route, request));
  }

  private async callExtension(exchange: EdgeExchange, extensionId: string, route: RouteContribution, request: HttpRequestData): Promise<void> {
    const routeKey = `${route.method} ${route.path}`;
    const record = this.options.registry.require(extensionId);
    const cancel = new CancellationTokenSource();
    const res = exchange.res;
    const onClose = () => {
      if (!res.writableEnded) cancel.cancel();
    };
    res.once('close', onClose);
    const timeoutMs = route.timeoutMs ?? record.manifest.aion?.resources?.requestTimeoutMs ?? this.options.config.requestTimeoutMs;
    try {
      const activation = this.options.activation;
      const host = activation.activeHostOf(extensionId) ?? (await activation.hostOf(extensionId, `onRoute:${routeKey}`));
      const response = await withTimeout(host.handleRoute({ extensionId, route: routeKey, request }, cancel.token), timeoutMs, () => {
        cancel.cancel();
        return new AionError(ErrorCodes.TIMEOUT, `${routeKey} did not answer within ${timeoutMs} ms`);
      });
      if (response?.stream) await writeSseStream(exchange, response);
      else {
        const status = response?.status;
        // A status from another process arrives as JSON: only a whole number HTTP knows is sent on.
        if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 999)) {
          throw new AionError(ErrorCodes.INTERNAL, `${routeKey} answered the status ${JSON.stringify(status)}, which is not an HTTP status`);
        }
        exchange.status = status ?? (response?.body === undefined ? 204 : 200);
        exchange.setAll(response?.headers);
        exchange.body = response?.body;
      }
    } catch (err) {
      throw this.fromExtension(err, extensionId, request.requestId);
    } finally {
      res.off('close', onClose);
    }
  }

  /** Errors from extension code reach the client sanitized; the full text goes to the log. */
  fromExtension(err: unknown, extensionId: string, requestId: string): AionError {
    if (!isAionError(err) || err.code === ErrorCodes.INTERNAL) {
      this.options.logger.error({ requestId, extension: extensionId, ...(isAionError(err) ? { message: err.message } : { err }) }, 'extension route failed');
      return new AionError(ErrorCodes.INTERNAL, `the extension ${extensionId} failed to handle the request (request ${requestId})`);
    }
    return new AionError(err.code, sanitizeMessage(err.message), { details: err.details, status: err.status, headers: err.headers });
  }
}

/** `answer`, or the error `onTimeout` makes if it takes longer than `ms` (one promise and one timer, not a race of three). */
function withTimeout<T>(answer: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    answer.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
