import type { Duplex } from 'node:stream';
import {
  CloseCode,
  GRAPHQL_TRANSPORT_WS_PROTOCOL,
  handleProtocols,
  MessageType,
  parseMessage,
  stringifyMessage,
  type Message,
  type SubscribePayload,
} from 'graphql-ws';
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { WebSocket, WebSocketServer } from 'ws';
import { HubCloseCode } from '../errors.js';
import { resultJson } from './result-json.js';

/** What an operation runs to: one result (query, mutation) or a stream of them (subscription). */
export type OperationOutcome = ExecutionResult | AsyncIterable<ExecutionResult>;

/** An accepted `subscribe` message, ready to run. */
export type Operation = () => Promise<OperationOutcome>;

/** One open socket as the hooks see it. */
export interface Peer {
  readonly socket: WebSocket;
  /** Operations running on this socket, including the one being subscribed. */
  readonly operations: number;
}

export interface GraphqlWsOptions<S> {
  /** Close with 4408 when `connection_init` has not arrived by then. */
  readonly initTimeoutMs: number;
  /** Ping period; a socket that has not answered the previous ping is cut off. 0 disables. */
  readonly keepAliveMs: number;
  /** Bytes queued on a socket beyond which its reader counts as stalled (closed with 1013). */
  readonly maxBufferedBytes: number;
  readonly logger: Logger;
  /**
   * `connection_init`: the connection's state, or false to refuse it with 4403. A hook that
   * closes the socket itself returns false too.
   */
  onConnect(peer: Peer, params: Record<string, unknown> | undefined): Promise<S | false>;
  /** A socket was closed because its reader stopped (1013). */
  onStalled(): void;
  /** `subscribe`: the operation to run, or the errors to answer with. */
  onSubscribe(peer: Peer, state: S, payload: SubscribePayload): Promise<Operation | readonly GraphQLError[]>;
  /** The socket closed; runs once, after every operation on it has been ended. */
  onClose(state: S | undefined): void;
}

/**
 * The graphql-transport-ws protocol (the one graphql-ws speaks) on a `ws` server. Messages are
 * parsed and validated by graphql-ws's own codec and answered with its close codes; what is
 * ours is the delivery path. A subscription's results are written without waiting for each
 * write to complete, and a result that many subscribers share (see shared-execution.ts) is
 * serialised once: each subscriber's frame is its id around the shared JSON. A socket whose
 * reader has stopped shows up as a growing write buffer and is closed with 1013 (try again
 * later: resume from the last cursor) before it can hold more than `maxBufferedBytes`.
 * Failures are logged with ids and messages only, never frames.
 */
export function serveGraphqlWs<S>(wss: WebSocketServer, options: GraphqlWsOptions<S>) {
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (err) => options.logger.error({ err: err.message }, 'websocket server error'));
  // The upgrade request is not kept: an idle subscription should cost little more than its socket.
  wss.on('connection', (socket) => new Connection(socket, options));
  return {
    /** Sends 1001 to every socket and stops accepting new ones. */
    async dispose(): Promise<void> {
      for (const socket of wss.clients) socket.close(1001, 'Going away');
      await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

class Connection<S> implements Peer {
  private initReceived = false;
  private state: S | undefined;
  /** Operation id → its result stream (null while it is being set up). */
  private readonly running = new Map<string, AsyncIterator<ExecutionResult> | null>();
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(
    readonly socket: WebSocket,
    private readonly options: GraphqlWsOptions<S>,
  ) {
    socket.on('error', (err) => options.logger.info({ err: err.message }, 'websocket error'));
    socket.once('close', () => this.onClose());
    if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) {
      socket.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    if (options.initTimeoutMs > 0 && Number.isFinite(options.initTimeoutMs)) {
      this.timers.push(setTimeout(() => {
        if (!this.initReceived) socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
      }, options.initTimeoutMs));
    }
    this.startHeartbeat();
    socket.on('message', (data) => {
      this.onMessage(String(data)).catch((err: unknown) => {
        options.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'websocket message failed');
        socket.close(CloseCode.InternalServerError, 'Internal server error');
      });
    });
  }

  get operations(): number {
    return this.running.size;
  }

  /** Pings find peers that vanished without a close. */
  private startHeartbeat(): void {
    const { keepAliveMs } = this.options;
    if (!(keepAliveMs > 0 && Number.isFinite(keepAliveMs))) return;
    let alive = true;
    this.socket.on('pong', () => (alive = true));
    this.timers.push(setInterval(() => {
      if (!alive) return this.socket.terminate();
      alive = false;
      this.socket.ping();
    }, keepAliveMs));
  }

  private async onMessage(data: string): Promise<void> {
    let message: Message;
    try {
      message = parseMessage(data);
    } catch {
      return this.socket.close(CloseCode.BadRequest, 'Invalid message received');
    }
    switch (message.type) {
      case MessageType.ConnectionInit:
        return this.onInit(message.payload);
      case MessageType.Ping:
        return this.send(stringifyMessage(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong }));
      case MessageType.Pong:
        return;
      case MessageType.Subscribe:
        return this.onSubscribe(message.id, message.payload);
      case MessageType.Complete: {
        const stream = this.running.get(message.id);
        this.running.delete(message.id);
        await stream?.return?.();
        return;
      }
      default:
        return this.socket.close(CloseCode.BadRequest, `Unexpected message of type ${message.type} received`);
    }
  }

  private async onInit(params: Record<string, unknown> | undefined): Promise<void> {
    if (this.initReceived) {
      return this.socket.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
    }
    this.initReceived = true;
    const state = await this.options.onConnect(this, params);
    if (this.closed) return;
    if (state === false) return this.socket.close(CloseCode.Forbidden, 'Forbidden');
    this.state = state;
    this.send(stringifyMessage({ type: MessageType.ConnectionAck }));
  }

  private async onSubscribe(id: string, payload: SubscribePayload): Promise<void> {
    if (this.state === undefined) return this.socket.close(CloseCode.Unauthorized, 'Unauthorized');
    if (this.running.has(id)) return this.socket.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
    this.running.set(id, null);
    try {
      const operation = await this.options.onSubscribe(this, this.state, payload);
      if (!this.running.has(id)) return;
      if (Array.isArray(operation)) return this.sendErrors(id, operation);
      const outcome = await (operation as Operation)();
      if (!isAsyncIterable(outcome)) {
        if (this.running.has(id)) this.sendNext(nextPrefix(id), outcome);
      } else {
        const stream = outcome[Symbol.asyncIterator]();
        if (!this.running.has(id)) {
          await stream.return?.();
          return;
        }
        this.running.set(id, stream);
        if (!(await this.stream(id, stream))) return;
      }
      if (this.running.has(id)) this.send(stringifyMessage({ id, type: MessageType.Complete }));
    } finally {
      this.running.delete(id);
    }
  }

  /** Writes a subscription's results until it ends; false when it ended with an error. */
  private async stream(id: string, stream: AsyncIterator<ExecutionResult>): Promise<boolean> {
    const prefix = nextPrefix(id);
    try {
      for (let step = await stream.next(); !step.done; step = await stream.next()) {
        if (!this.running.has(id)) break;
        this.sendNext(prefix, step.value);
      }
      return true;
    } catch (err) {
      if (this.running.has(id)) {
        this.sendErrors(id, [new GraphQLError(err instanceof Error ? err.message : String(err))]);
      }
      return false;
    }
  }

  private sendNext(prefix: string, result: ExecutionResult): void {
    holdWritesForThisTurn(this.socket);
    this.send(prefix + resultJson(result) + '}');
  }

  private sendErrors(id: string, errors: readonly GraphQLError[]): void {
    this.send(stringifyMessage({ id, type: MessageType.Error, payload: errors.map((error) => error.toJSON()) }));
  }

  private send(frame: string): void {
    const { socket } = this;
    if (socket.readyState !== socket.OPEN) return;
    socket.send(frame);
    const limit = this.options.maxBufferedBytes;
    if (socket.bufferedAmount <= limit) return;
    releaseWritesOf(socket); // what is held for this turn goes now; what the kernel refuses stays
    if (socket.bufferedAmount > limit) {
      this.options.logger.info({ buffered: socket.bufferedAmount }, 'websocket reader stalled');
      socket.close(HubCloseCode.TryAgainLater, 'Slow consumer: resume from your last cursor');
      this.options.onStalled();
      // Nothing more is written; the close frame waits behind what is queued.
      this.endOperations();
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.endOperations();
    this.options.onClose(this.state);
  }

  private endOperations(): void {
    const streams = [...this.running.values()];
    this.running.clear();
    for (const stream of streams) void stream?.return?.();
  }
}

/**
 * Frames for one socket within one turn of the event loop (a burst of broadcasts, a replay) leave
 * it in as few writes as possible: the first frame of a turn is written at once, so that a lone
 * event (the usual case at a low rate) is not held up behind the rest of its fan-out; from the
 * second on, the TCP socket is corked and what follows goes in one write when the turn ends.
 * Without this every frame is a system call of its own, the largest single cost of a fan-out.
 */
const wroteThisTurn = new Set<Duplex>();
const held = new Set<Duplex>();
let turnEnds = false;
function holdWritesForThisTurn(socket: WebSocket): void {
  const tcp = tcpOf(socket);
  if (!tcp || held.has(tcp)) return;
  if (!turnEnds) {
    turnEnds = true;
    setImmediate(releaseWrites);
  }
  if (!wroteThisTurn.has(tcp)) {
    wroteThisTurn.add(tcp);
    return;
  }
  tcp.cork();
  held.add(tcp);
}
/** Writes what the socket holds now (the kernel takes what it can); what stays is the backlog. */
function releaseWritesOf(socket: WebSocket): void {
  const tcp = tcpOf(socket);
  if (tcp && held.delete(tcp)) tcp.uncork();
}
function tcpOf(socket: WebSocket): Duplex | undefined {
  return (socket as unknown as { _socket?: Duplex })._socket;
}
function releaseWrites(): void {
  turnEnds = false;
  wroteThisTurn.clear();
  for (const tcp of held) tcp.uncork();
  held.clear();
}

function nextPrefix(id: string): string {
  return `{"id":${JSON.stringify(id)},"type":"next","payload":`;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
