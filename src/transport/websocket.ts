import type { Server } from 'node:http';
import { CloseCode } from 'graphql-ws';
import { getOperationAST, GraphQLError, type ExecutionArgs } from 'graphql';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { fromConnectionParams } from '../auth/extract-token.js';
import type { LiveAccess, LiveConnection } from '../auth/live-access.js';
import type { Principal } from '../auth/principal.js';
import type { Authenticate } from '../auth/verifier.js';
import { HubCloseCode } from '../errors.js';
import type { Config } from '../config.js';
import type { Transport } from '../graphql/context.js';
import type { KnownExecution, KnownOperations } from '../graphql/known-execution.js';
import type { Metrics } from '../metrics.js';
import type { HubSubscription } from '../hub/subscription.js';
import type { EndReason } from '../hub/stream.js';
import { timerDelay, type Connections } from './connections.js';
import { serveGraphqlWs, type OperationOutcome, type Peer } from './graphql-ws-server.js';
import type { Pacer } from './pacer.js';
import { GRAPHQL_PATH, type HubYoga } from './yoga.js';

export interface WebSocketDeps {
  readonly server: Server;
  readonly yoga: HubYoga;
  /** Documents already parsed and validated in Yoga, and how their operations run outside envelop. */
  readonly known: KnownOperations;
  readonly execution: KnownExecution;
  /** The token check, revocations included. */
  readonly authenticate: Authenticate;
  readonly access: LiveAccess;
  readonly connections: Connections;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly limits: Config['limits'];
  /** Paces storms of subscribes, each socket taking its turn (see Pacer); null sets each up as it arrives. */
  readonly pacer: Pacer | null;
}

const END_REASONS: Record<EndReason, string> = {
  'slow-consumer': 'Slow consumer: resume from your last cursor',
  'history-unavailable': 'History unavailable: resume from your last cursor',
  forbidden: 'Forbidden', // not closed for: see GraphqlWsOptions.onEnded
};

/**
 * graphql-ws (graphql-transport-ws) on the HTTP server's /graphql path. An operation whose
 * document is new goes through Yoga's envelop pipeline; one whose document has parsed and
 * validated there before runs without it, as known operations over HTTP do (see
 * graphql/known-execution.ts). Either way auth, context, validation and error masking are the
 * same as over HTTP. A missing or invalid token at connection_init closes with 4403; so does
 * the token's expiry on an open socket. A token subject already holding
 * MAX_CONNECTIONS_PER_SUBJECT connections (WebSockets and SSE streams, one count in
 * Connections) is closed with 4029.
 */
export function attachWebSocket({ server, yoga, known, execution, authenticate, access, connections, metrics, logger, limits, pacer }: WebSocketDeps) {
  const wss = new WebSocketServer({
    server,
    path: GRAPHQL_PATH,
    maxPayload: limits.wsMaxPayloadBytes,
    perMessageDeflate: false,
    clientTracking: false, // serveGraphqlWs keeps the open set
  });
  const graphqlWs = serveGraphqlWs<WsSession>(wss, {
    initTimeoutMs: limits.wsInitTimeoutMs,
    keepAliveMs: limits.keepAliveMs,
    maxBufferedBytes: limits.wsMaxBufferedBytes,
    logger,
    onOpen: ({ id }) => {
      connections.webSockets += 1;
      logger.debug({ connection: id }, 'websocket opened');
    },
    onConnect: async (peer, params) => {
      const { socket } = peer;
      const auth = await authenticate(fromConnectionParams(params));
      if (!auth.principal) {
        if (auth.failure === 'revoked') {
          socket.close(CloseCode.Forbidden, REVOKED_REASON);
          return false;
        }
        metrics.authFailed(auth.failure, 'ws');
        logger.info({ reason: auth.failure }, 'websocket refused');
        return false;
      }
      // The socket may have closed while the token was verified.
      if (socket.readyState !== socket.OPEN) return false;
      if (!connections.admit(auth.principal.subject)) {
        socket.close(HubCloseCode.TooManyConnections, 'Too many connections for this token subject');
        return false;
      }
      logger.debug({ sub: auth.principal.subject }, 'websocket connected');
      access.granted(auth.principal, null);
      return new WsSession(peer, auth, limits.maxDiagnosesPerConnection);
    },
    onStalled: () => connections.slowConsumer(),
    // The hub ended a subscription (and counted a slow consumer itself: see app.ts).
    onEnded: ({ socket }, { reason }) => socket.close(HubCloseCode.TryAgainLater, END_REASONS[reason]),
    onClose: ({ id }, session, code) => {
      if (session) {
        clearTimeout(session.expiry);
        connections.release(session.auth.principal.subject);
      }
      connections.webSockets -= 1;
      metrics.closed(code);
      logger.debug({ connection: id, code }, 'websocket closed');
    },
    onSubscribe: async ({ socket, operations }, state, params) => {
      // The new operation is already counted.
      if (operations > limits.maxSubscriptionsPerConnection) {
        return [
          new GraphQLError(`At most ${limits.maxSubscriptionsPerConnection} operations per connection`, {
            extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' },
          }),
        ];
      }
      const wait = pacer?.turn(socket);
      if (wait) {
        await wait;
        // Closed while it waited: nothing to set up (its close ended the operation).
        if (socket.readyState !== socket.OPEN) return [];
      }
      const request = known.request(params.query, params.operationName ?? null, params.variables ?? null);
      if (request) {
        return async () =>
          (request.operation.operation === 'subscription'
            ? await execution.subscribe(request, state.auth, state)
            : await execution.execute(request, state.auth, state)) as OperationOutcome;
      }
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        socket,
        params,
        auth: state.auth,
        transport: state,
      });
      let document;
      try {
        document = parse(params.query);
      } catch (error) {
        if (error instanceof GraphQLError) return [error];
        throw error;
      }
      const errors = validate(schema, document);
      if (errors.length > 0) return errors;
      const operation = getOperationAST(document, params.operationName);
      if (!operation) return [new GraphQLError('Unable to identify operation')];
      const args: ExecutionArgs = {
        schema,
        document,
        operationName: params.operationName ?? null,
        variableValues: params.variables ?? null,
        contextValue: await contextFactory(),
      };
      return async () => (await (operation.operation === 'subscription' ? subscribe(args) : execute(args))) as OperationOutcome;
    },
  });

  // A revocation walks the accepted sockets (see auth/live-access.ts).
  access.follow(() => graphqlWs.states());

  return {
    /**
     * Closes every socket with 1012, Service Restart (clients reconnect elsewhere and resume) and stops accepting.
     * A client that does not answer the close within `graceMs` (it stopped reading) is cut off,
     * so one stuck client cannot hold up shutdown.
     */
    close(graceMs = 1000): Promise<void> {
      return graphqlWs.dispose(graceMs);
    },
  };
}

/**
 * An accepted socket's state, and its transport (one object: every idle socket holds one). It
 * owns its subscriptions' access: a revocation of its token closes it with 4403, a refresh
 * replaces its credentials.
 */
class WsSession implements Transport, LiveConnection {
  /** Closes the socket with 4403 when its token expires. */
  expiry: NodeJS.Timeout;
  /**
   * The subscriptions it started, for revocations and refreshes: the first one alone, then an
   * array (the most compact V8 has for two: no spare capacity until the third). Ended ones are
   * dropped when the array reaches a power-of-two length, so nothing is allocated per subscription.
   */
  private started: HubSubscription | HubSubscription[] | null = null;
  /** Diagnoses of subscriptions being set up (see holdDiagnoses). */
  private held = 0;

  constructor(
    private readonly peer: Peer,
    public auth: { readonly principal: Principal },
    private readonly maxDiagnoses: number,
  ) {
    this.expiry = setTimeout(closeExpired, timerDelay(auth.principal.expiresAt), peer.socket);
  }

  get principal(): Principal {
    return this.auth.principal;
  }

  subscriptions(): readonly HubSubscription[] {
    const { started } = this;
    return started === null ? [] : Array.isArray(started) ? started : [started];
  }

  revoked(): void {
    this.peer.socket.close(CloseCode.Forbidden, REVOKED_REASON);
  }

  /** New credentials of the same subject: a new expiry; subscriptions they do not grant end as forbidden. */
  refresh(principal: Principal, access: LiveAccess): void {
    this.auth = { principal };
    clearTimeout(this.expiry);
    this.expiry = setTimeout(closeExpired, timerDelay(principal.expiresAt), this.peer.socket);
    access.refreshed(this, principal);
  }

  track(subscription: HubSubscription): HubSubscription {
    const { started } = this;
    if (started === null || (!Array.isArray(started) && started.isEnded)) this.started = subscription;
    else if (!Array.isArray(started)) this.started = [started, subscription];
    else {
      if (isPowerOfTwo(started.length)) dropEnded(started);
      started.push(subscription);
    }
    return subscription;
  }

  holdDiagnoses(count: number): (() => void) | null {
    let watched = this.held + count;
    for (const subscription of this.subscriptions()) watched += subscription.diagnoses;
    if (watched > this.maxDiagnoses) return null;
    this.held += count;
    return () => {
      this.held -= count;
    };
  }
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Removes the ended subscriptions, in place. */
function dropEnded(subscriptions: HubSubscription[]): void {
  let kept = 0;
  for (const subscription of subscriptions) if (!subscription.isEnded) subscriptions[kept++] = subscription;
  subscriptions.length = kept;
}

const REVOKED_REASON = 'Forbidden: token revoked';

function closeExpired(socket: WebSocket): void {
  socket.close(CloseCode.Forbidden, 'Forbidden: token expired');
}
