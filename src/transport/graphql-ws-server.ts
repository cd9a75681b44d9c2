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
import { isAsyncIterable } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { WebSocket, WebSocketServer } from 'ws';
import { forbidden, FORBIDDEN_END, HubCloseCode, SERVICE_RESTART_REASON } from '../errors.js';
import { flat } from '../flat-string.js';
import { drainTo, type PushSink, type SubscriptionEnd } from '../hub/stream.js';
import { resultBytes, visibleError } from './result-json.js';
import { FrameBatch, frameBatchWritten, textFrame } from './ws-frame.js';

/** What an operation runs to: one result (query, mutation) or a stream of them (subscription). */
export type OperationOutcome = ExecutionResult | AsyncIterable<ExecutionResult>;

/** An accepted `subscribe` message, ready to run. */
export type Operation = () => Promise<OperationOutcome>;

/** One open socket as the hooks see it. */
export interface Peer {
  /** A number for logs, unique within the process. */
  readonly id: number;
  readonly socket: WebSocket;
  /**
   * Operations started on this socket and not yet ended, the one being subscribed included. One
   * the client completed while it was still being set up counts until its setup has finished
   * and it has been ended.
   */
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
  /** A socket was accepted (before its protocol is checked). */
  onOpen(peer: Peer): void;
  /** A socket was closed because its reader stopped (1013). */
  onStalled(): void;
  /**
   * A subscription's stream finished with a SubscriptionEnd (the hub ended it: see
   * hub/stream.ts): close the socket accordingly, so that the client resumes. Nothing
   * is sent for the operation (a `complete` would tell the client not to resume). Not called for
   * `forbidden`: that subscription alone gets an `error` message with FORBIDDEN.
   */
  onEnded(peer: Peer, end: SubscriptionEnd): void;
  /** `subscribe`: the operation to run, or the errors to answer with. */
  onSubscribe(peer: Peer, state: S, payload: SubscribePayload): Promise<Operation | readonly GraphQLError[]>;
  /**
   * The socket closed, with `code`; runs once for every socket `onOpen` saw, after every
   * running operation on it has been ended (one still being set up is ended as soon as its
   * setup finishes). `state` is undefined when it was never accepted.
   */
  onClose(peer: Peer, state: S | undefined, code: number): void;
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
 *
 * An idle socket's own state is kept small, since there can be tens of thousands: `ws` does not
 * track clients (the open set here does), the socket's listeners are shared functions that find
 * its Connection through a symbol, and each subscription's sink is one object.
 */
export function serveGraphqlWs<S>(wss: WebSocketServer, options: GraphqlWsOptions<S>) {
  // Results are written as whole frames (ws-frame.ts), which no extension may transform.
  if (wss.options.perMessageDeflate) throw new Error('serveGraphqlWs needs a WebSocketServer without perMessageDeflate');
  if (wss.clients) throw new Error('serveGraphqlWs tracks its sockets itself: create the WebSocketServer with clientTracking: false');
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (err) => options.logger.error({ err: err.message }, 'websocket server error'));
  const open = new Set<Connection<S>>();
  // The upgrade request is not kept: an idle subscription should cost little more than its socket.
  wss.on('connection', (socket) => new Connection(socket, options, open));
  const heartbeat = startHeartbeat(open, options.keepAliveMs);
  let disposed: Promise<void> | null = null;
  return {
    /** The state of every open socket that was accepted (`onConnect`). */
    *states(): Generator<S> {
      for (const connection of open) if (connection.accepted !== undefined) yield connection.accepted;
    },
    /**
     * Sends 1012 (Service Restart) to every socket and stops accepting new ones. A peer that has not answered the
     * close within `graceMs` (it stopped reading) is cut off, so one stuck client cannot hold
     * up shutdown. Later calls wait for the first.
     */
    dispose(graceMs: number): Promise<void> {
      disposed ??= closeAll(wss, open, heartbeat, graceMs);
      return disposed;
    },
  };
}

async function closeAll(wss: WebSocketServer, open: ReadonlySet<Connection<unknown>>, heartbeat: NodeJS.Timeout | undefined, graceMs: number): Promise<void> {
  clearInterval(heartbeat);
  const connections = [...open];
  const closing = connections.map(({ socket }) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
  for (const { socket } of connections) socket.close(HubCloseCode.ServiceRestart, SERVICE_RESTART_REASON);
  const stopped = new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
  await Promise.race([Promise.all(closing), grace]);
  clearTimeout(timer);
  for (const { socket } of open) socket.terminate();
  await Promise.all([stopped, ...closing]);
}

/** Where a socket's shared listeners find its Connection. */
const CONNECTION = Symbol('connection');
type Served = WebSocket & { [CONNECTION]: Connection<unknown> };
const connectionOf = (socket: WebSocket) => (socket as Served)[CONNECTION];
let lastId = 0;

function onSocketClose(this: WebSocket, code: number): void {
  connectionOf(this).onClose(code);
}
function onSocketMessage(this: WebSocket, data: unknown): void {
  connectionOf(this).receive(String(data));
}
function onSocketPong(this: WebSocket): void {
  connectionOf(this).alive = true;
}
function onSocketError(this: WebSocket, err: Error): void {
  connectionOf(this).logError(err);
}

/**
 * RUNNING: results are sent. CANCELLED: completed by the client, closed with its socket or
 * finished, so nothing more is sent, but still counted on its socket (its setup has not finished).
 * OVER: also ended (its stream returned, or it had none) and no longer counted.
 */
const RUNNING = 0;
const CANCELLED = 1;
const OVER = 2;
type OperationState = typeof RUNNING | typeof CANCELLED | typeof OVER;

/**
 * One operation, from its `subscribe` until it is over, and what its results are pushed to.
 * It owns its id by identity: once the client has completed it, the id is free for another
 * operation (PROTOCOL.md), so a setup that resumes after an await checks that it was not
 * cancelled meanwhile, never whether its id is taken.
 */
class Running implements PushSink<ExecutionResult> {
  /** The frame's start up to the payload (see nextPrefix), built once. */
  readonly prefix: string;
  /** A subscription's results, once its setup has produced them. */
  stream: AsyncIterator<ExecutionResult> | null = null;
  /** One small integer rather than two flags: every idle subscription holds it. */
  state: OperationState = RUNNING;

  constructor(
    private readonly connection: Connection<unknown>,
    readonly id: string,
  ) {
    this.prefix = nextPrefix(id);
  }

  onItem(result: ExecutionResult): void {
    this.connection.deliver(this, result);
  }

  onEnd(error?: unknown, end?: SubscriptionEnd): void {
    this.connection.finish(this, error, end);
  }
}

class Connection<S> implements Peer {
  readonly id = (lastId += 1);
  private initReceived = false;
  private state: S | undefined;
  /** Operation id → the operation that holds it, from its `subscribe` until it is cancelled or over. */
  private readonly running = new Map<string, Running>();
  /** Operations started and not over: those in `running`, and cancelled ones still being set up. */
  private live = 0;
  private initTimer: NodeJS.Timeout | undefined;
  /** A subscription's first results while they are handed over at once: written together as one buffer (see pump). */
  private batch: FrameBatch | null = null;
  /** Whether the peer answered the last ping. */
  alive = true;
  private closed = false;

  constructor(
    readonly socket: WebSocket,
    private readonly options: GraphqlWsOptions<S>,
    private readonly open: Set<Connection<S>>,
  ) {
    (socket as Served)[CONNECTION] = this as Connection<unknown>;
    open.add(this);
    options.onOpen(this);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose); // emitted once
    if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) {
      socket.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    if (options.initTimeoutMs > 0 && Number.isFinite(options.initTimeoutMs)) {
      this.initTimer = setTimeout(closeUninitialised, options.initTimeoutMs, socket);
    }
    socket.on('pong', onSocketPong);
    socket.on('message', onSocketMessage);
  }

  receive(data: string): void {
    // Once the socket is closing (a protocol violation closed it, say), what the peer sent after
    // is not acted on, even when it arrived in the same read: the closure is immediate.
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.onMessage(data).catch((err: unknown) => this.fail(err));
  }

  logError(err: Error): void {
    this.options.logger.info({ connection: this.id, err: err.message }, 'websocket error');
  }

  /** Something of ours threw while serving the socket: log it and close with 1011. */
  private fail(err: unknown): void {
    this.options.logger.error({ connection: this.id, err: err instanceof Error ? err.message : String(err) }, 'websocket message failed');
    this.endBatch(); // what was handed over goes before the close frame
    this.socket.close(CloseCode.InternalServerError, 'Internal server error');
  }

  get operations(): number {
    return this.live;
  }

  /** Its state once accepted (`onConnect`). */
  get accepted(): S | undefined {
    return this.state;
  }

  /** Pings find peers that vanished without a close. */
  heartbeat(): void {
    if (!this.alive) return this.socket.terminate();
    this.alive = false;
    this.socket.ping();
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
        // An unknown id (never used, or its operation is over) is ignored, as the protocol allows.
        const running = this.running.get(message.id);
        if (running) this.cancel(running);
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
    clearTimeout(this.initTimer);
    this.initTimer = undefined;
    const state = await this.options.onConnect(this, params);
    if (this.closed) return;
    if (state === false) return this.socket.close(CloseCode.Forbidden, 'Forbidden');
    this.state = state;
    this.send(stringifyMessage({ type: MessageType.ConnectionAck }));
  }

  /**
   * Runs an operation. After each await it looks at its own Running, not at its id: the client
   * may have completed it meanwhile, and even subscribed again with the same id. Whatever
   * happens, it is ended: by its setup (when it ends up with no stream to run, or was cancelled
   * before it had one), or, once it is streaming, by `finish`, `cancel` or the socket's close.
   */
  private async onSubscribe(id: string, payload: SubscribePayload): Promise<void> {
    if (this.state === undefined) return this.socket.close(CloseCode.Unauthorized, 'Unauthorized');
    if (this.running.has(id))
      return this.socket.close(CloseCode.SubscriberAlreadyExists, closeReason(`Subscriber for ${id} already exists`, 'Subscriber already exists'));
    const running = new Running(this as Connection<unknown>, id);
    this.running.set(id, running);
    this.live += 1;
    let streaming = false;
    try {
      const operation = await this.options.onSubscribe(this, this.state, payload);
      if (running.state !== RUNNING) return;
      if (Array.isArray(operation)) return this.sendErrors(id, operation);
      const outcome = await (operation as Operation)();
      // A socket that is closing takes nothing more: a stream's first results (the pending
      // events it claimed, say) stay undelivered, so ending it gives them back (see hub/subscription.ts).
      if (running.state !== RUNNING || this.socket.readyState !== this.socket.OPEN) {
        if (isAsyncIterable(outcome)) running.stream = outcome[Symbol.asyncIterator]();
        return;
      }
      if (!isAsyncIterable(outcome)) {
        this.sendNext(running.prefix, outcome);
        return this.send(stringifyMessage({ id, type: MessageType.Complete }));
      }
      const stream = outcome[Symbol.asyncIterator]();
      running.stream = stream;
      this.pump(running, stream);
      streaming = true;
    } finally {
      if (!streaming) this.release(running, true);
    }
  }

  /** The client completed `running`, or its socket is closing: nothing more is sent for it. */
  private cancel(running: Running): void {
    if (this.running.get(running.id) === running) this.running.delete(running.id);
    if (running.state === RUNNING) running.state = CANCELLED;
    // One still being set up has no stream yet: its setup ends it when it finishes.
    if (running.stream) this.end(running, true);
  }

  /** `running` is done with: its id is free and it is ended (its stream returned when `returnStream`). */
  private release(running: Running, returnStream: boolean): void {
    if (this.running.get(running.id) === running) this.running.delete(running.id);
    this.end(running, returnStream);
  }

  /** Ends `running` once: it stops counting on the socket, and its stream (if any) is returned. */
  private end(running: Running, returnStream: boolean): void {
    if (running.state === OVER) return;
    running.state = OVER;
    this.live -= 1;
    if (!returnStream || !running.stream?.return) return;
    running.stream.return().then(undefined, (err: unknown) => this.logReturnFailure(err));
  }

  private logReturnFailure(err: unknown): void {
    this.options.logger.error({ connection: this.id, err: err instanceof Error ? err.message : String(err) }, 'ending an operation failed');
  }

  /**
   * Writes a subscription's results as they come, until it ends or is ended. The hub's streams
   * push (see hub/stream.ts): each result is handed over as it is produced, synchronously inside
   * the broadcast that stored its event, with no promise per delivery; nothing may throw back
   * into it. Any other stream is pulled.
   */
  private pump(running: Running, stream: AsyncIterator<ExecutionResult>): void {
    // What the stream hands over at once (a replay, pushed as soon as the sink is attached)
    // leaves as one buffer in one write, as soon as it has been handed over.
    this.batch = new FrameBatch(running.prefix, '}');
    try {
      drainTo(stream, running);
    } finally {
      this.endBatch();
    }
  }

  /** Writes the batch's frames, if any; anything written after them follows them. */
  private endBatch(): void {
    const batch = this.batch;
    this.batch = null;
    const { socket } = this;
    if (!batch || batch.isEmpty || socket.readyState !== socket.OPEN) return;
    const tcp = tcpOf(socket)!;
    const frames = batch.toBuffer();
    tcp.write(frames);
    // Nothing left queued on the socket: the kernel took the frames as they were written.
    frameBatchWritten(frames, tcp.writableLength === 0);
  }

  /** A result of `running`'s stream. */
  deliver(running: Running, result: ExecutionResult): void {
    if (running.state !== RUNNING) return; // completed or closed meanwhile
    try {
      this.sendNext(running.prefix, result);
    } catch (err) {
      this.fail(err);
    }
  }

  /** `running`'s stream ended by itself: with `end` when the hub ended it. */
  finish(running: Running, error: unknown, end: SubscriptionEnd | undefined): void {
    if (running.state !== RUNNING) return;
    const { id } = running;
    this.release(running, false);
    try {
      if (end?.reason === 'forbidden') this.sendErrors(id, [forbidden(FORBIDDEN_END)]);
      else if (end !== undefined) this.options.onEnded(this, end);
      else if (error === undefined) this.send(stringifyMessage({ id, type: MessageType.Complete }));
      else this.sendErrors(id, [new GraphQLError(error instanceof Error ? error.message : String(error))]);
    } catch (err) {
      this.fail(err);
    }
  }

  /** A result's frame goes straight to the TCP socket, built around the result's shared JSON (see ws-frame.ts). */
  private sendNext(prefix: string, result: ExecutionResult): void {
    const { socket, batch } = this;
    if (socket.readyState !== socket.OPEN) return;
    if (batch?.prefix === prefix) batch.add(resultBytes(result));
    else {
      this.endBatch();
      holdWritesForThisTurn(socket);
      tcpOf(socket)!.write(textFrame(prefix, resultBytes(result), '}'));
    }
    this.checkBuffered();
  }

  private sendErrors(id: string, errors: readonly GraphQLError[]): void {
    this.send(stringifyMessage({ id, type: MessageType.Error, payload: errors.map(visibleError) }));
  }

  /** Sends a protocol message through `ws`. */
  private send(message: string): void {
    const { socket } = this;
    if (socket.readyState !== socket.OPEN) return;
    this.endBatch();
    socket.send(message, { binary: false });
    this.checkBuffered();
  }

  /** Closes a socket whose reader has stopped, before its queued bytes pass the limit. */
  private checkBuffered(): void {
    const { socket } = this;
    const limit = this.options.maxBufferedBytes;
    if (socket.bufferedAmount + (this.batch?.bytes ?? 0) <= limit) return;
    // What is held (for this turn or this batch) goes now; what the kernel refuses stays.
    this.endBatch();
    releaseWritesOf(socket);
    if (socket.bufferedAmount > limit) {
      this.options.logger.info({ buffered: socket.bufferedAmount }, 'websocket reader stalled');
      socket.close(HubCloseCode.TryAgainLater, 'Slow consumer: resume from your last cursor');
      this.options.onStalled();
      // Nothing more is written; the close frame waits behind what is queued.
      this.endOperations();
    }
  }

  onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.open.delete(this);
    clearTimeout(this.initTimer);
    this.endOperations();
    this.options.onClose(this, this.state, code);
  }

  /** Cancels every operation: running ones are ended now, those still being set up when their setup finishes. */
  private endOperations(): void {
    const running = [...this.running.values()];
    for (const operation of running) this.cancel(operation);
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

/**
 * One timer pings every socket, a slice of them per tick so that a round of pings is spread
 * over the period (per-socket timers would cost more memory than the rest of an idle socket's
 * state). A socket that has not answered the previous ping by its next turn is cut off. A round
 * walks the open set itself rather than a copy of it, so a socket that closes is let go at once,
 * not one period later.
 */
const HEARTBEAT_SLICES = 20;
function startHeartbeat(open: ReadonlySet<Connection<unknown>>, periodMs: number): NodeJS.Timeout | undefined {
  if (!(periodMs > 0 && Number.isFinite(periodMs))) return undefined;
  let round = open.values();
  let perTick = 0;
  let tick = 0;
  return setInterval(() => {
    // A round starts once per period, however few sockets there are.
    if (tick === 0) {
      round = open.values();
      perTick = Math.ceil(open.size / HEARTBEAT_SLICES);
    }
    tick = (tick + 1) % HEARTBEAT_SLICES;
    for (let visited = 0; visited < perTick; visited += 1) {
      const step = round.next();
      if (step.done) break;
      step.value.heartbeat();
    }
  }, periodMs / HEARTBEAT_SLICES).unref();
}

/** A close reason fits in a close frame (123 bytes, RFC 6455 §5.5); `shorter` when `reason` does not. */
function closeReason(reason: string, shorter: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : shorter;
}

function closeUninitialised(socket: WebSocket): void {
  socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
}

/** Kept by every subscription, so in one piece. */
function nextPrefix(id: string): string {
  return flat(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
}
