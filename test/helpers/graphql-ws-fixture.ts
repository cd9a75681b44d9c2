/**
 * graphql-ws's own server (`useServer` from graphql-ws/use/ws on a `ws` WebSocketServer) on an
 * ephemeral port, serving a fixture schema with what the protocol tests need: a query, a
 * mutation whose runs are counted, and a subscription the test drives. It is the reference the
 * hub's hand-written server is compared with.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import { createSchema, Repeater } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';

export interface GraphqlWsFixture {
  readonly port: number;
  /** Pushes the next tick to every subscriber of `topic`. */
  emit(topic: string): void;
  /** Live subscribers of `topic`. */
  subscribers(topic: string): number;
  /** How many times `bump(key)` ran. */
  bumps(key: string): number;
  /** Sockets the server still has open. */
  openSockets(): number;
  close(): Promise<void>;
}

/** `connection_init` with this authorization is refused (4403), as a server refuses a bad token. */
export const REFUSED_AUTHORIZATION = 'Bearer refused';

export async function startGraphqlWsFixture({ initTimeoutMs }: { initTimeoutMs: number }): Promise<GraphqlWsFixture> {
  const topics = new Map<string, Set<(tick: number) => void>>();
  const bumps = new Map<string, number>();
  let ticks = 0;
  const schema = createSchema({
    typeDefs: /* GraphQL */ `
      type Query {
        hello: String!
        fail: String
      }
      type Mutation {
        bump(key: String!): Int!
      }
      type Subscription {
        ticks(topic: String!, fail: Boolean): Int!
      }
    `,
    resolvers: {
      Query: {
        hello: () => 'world',
        fail: () => {
          throw new GraphQLError('Cannot read this', { extensions: { code: 'BAD_USER_INPUT' } });
        },
      },
      Mutation: {
        bump: (_: unknown, { key }: { key: string }) => {
          const count = (bumps.get(key) ?? 0) + 1;
          bumps.set(key, count);
          return count;
        },
      },
      Subscription: {
        ticks: {
          subscribe: (_: unknown, { topic, fail }: { topic: string; fail?: boolean }) => {
            if (fail) throw new GraphQLError('Cannot subscribe to this topic', { extensions: { code: 'BAD_USER_INPUT' } });
            return new Repeater<{ ticks: number }>(async (push, stop) => {
              const listeners = topics.get(topic) ?? new Set();
              topics.set(topic, listeners);
              const listener = (tick: number) => void push({ ticks: tick });
              listeners.add(listener);
              await stop;
              listeners.delete(listener);
            });
          },
        },
      },
    },
  });
  const http = createServer();
  const wss = new WebSocketServer({ server: http, path: '/graphql' });
  const server = useServer(
    {
      schema,
      connectionInitWaitTimeout: initTimeoutMs,
      onConnect: ({ connectionParams }) => connectionParams?.['authorization'] !== REFUSED_AUTHORIZATION,
    },
    wss,
    0,
  );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    port: (http.address() as AddressInfo).port,
    emit(topic) {
      ticks += 1;
      for (const listener of topics.get(topic) ?? []) listener(ticks);
    },
    subscribers: (topic) => topics.get(topic)?.size ?? 0,
    bumps: (key) => bumps.get(key) ?? 0,
    openSockets: () => wss.clients.size,
    async close() {
      for (const client of wss.clients) client.terminate();
      await server.dispose();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}
