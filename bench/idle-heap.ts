/**
 * Live heap of the hub per idle subscription, in process: starts the hub on the memory engine,
 * has a child process open SOCKETS graphql-ws sockets (one token subject each) with 2
 * subscriptions per socket (as S4 does), forces GC and prints the heap each added.
 *
 * Run: node --expose-gc --import tsx bench/idle-heap.ts [sockets=2000]
 */
import { fork } from 'node:child_process';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

const SECRET = 'idle-heap-secret-that-is-at-least-32-bytes';
const PER_SOCKET = 2;
const SUBSCRIBE = 'subscription Idle($id: ID!) { diagnosisUpdates(diagnosisId: $id) { __typename cursor diagnosisId occurredAt replayed } }';

if (process.argv[2] === 'clients') void clients(process.argv[3]!, Number(process.argv[4]));
else void measure(Number(process.argv[2] ?? 2000));

async function measure(sockets: number): Promise<void> {
  if (!global.gc) throw new Error('run with node --expose-gc');
  const config = loadConfig({ NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', JWT_SECRET: SECRET });
  const app = await createApp(config);
  const { url } = await app.start();
  const child = fork(new URL(import.meta.url), ['clients', url.replace(/^http/, 'ws'), String(sockets)], { execArgv: ['--import', 'tsx'] });
  const phase = (name: string) => new Promise<void>((resolve) => child.once('message', (m) => (m === name ? resolve() : undefined)));
  const heap = async () => {
    for (let i = 0; i < 4; i += 1) {
      await new Promise((resolve) => setImmediate(resolve));
      global.gc!();
    }
    return process.memoryUsage().heapUsed;
  };
  const empty = await heap();
  child.send('connect');
  await phase('connected');
  const connected = await heap();
  child.send('subscribe');
  await phase('subscribed');
  const subscriptions = sockets * PER_SOCKET;
  while ((await app.hub.stats(0)).subscriptions < subscriptions) await new Promise((resolve) => setTimeout(resolve, 50));
  const subscribed = await heap();
  const per = (bytes: number, n: number) => Math.round(bytes / n);
  console.log(
    JSON.stringify({
      sockets,
      subscriptions,
      bytesPerSocketAlone: per(connected - empty, sockets),
      bytesPerSubscriptionAlone: per(subscribed - connected, subscriptions),
      bytesPerSubscription: per(subscribed - empty, subscriptions),
    }),
  );
  child.kill();
  await app.stop();
}

/** The child: raw graphql-transport-ws sockets, so that its own heap is not the hub's. */
async function clients(url: string, sockets: number): Promise<void> {
  const key = new TextEncoder().encode(SECRET);
  const open: WebSocket[] = [];
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  for (let i = 0; i < sockets; i += 1) {
    const token = await new SignJWT({ scope: 'updates:read-all' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(`user-${i}`)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(key);
    const socket = new WebSocket(url, 'graphql-transport-ws');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      socket.once('message', () => resolve()); // connection_ack
    });
    open.push(socket);
  }
  process.send!('connected');
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  open.forEach((socket, i) => {
    for (let j = 0; j < PER_SOCKET; j += 1) {
      socket.send(JSON.stringify({ type: 'subscribe', id: String(j), payload: { query: SUBSCRIBE, variables: { id: `diag-${(i * PER_SOCKET + j) % 100}` } } }));
    }
  });
  process.send!('subscribed');
}
