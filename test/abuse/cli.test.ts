/**
 * The CLIs from an attacker's side: what `listen` and `broadcast` hand to whatever answers at
 * `--url`. A mistyped or hostile URL receives the token the CLI sends, so a minted token carries
 * only what the command needs, and no CLI prints a token, even when it is refused. The "hub"
 * here is a capture server that records what it is sent. (Hostile arguments and every CLI's
 * behaviour against the real hub are in test/cli.test.ts.)
 */
import { mkdtempSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { loadOrCreateDevSecret } from '../../src/auth/dev-tokens.js';
import { cliEnv, startCli, type CliProcess } from '../helpers/cli.js';
import { signToken } from '../helpers/tokens.js';

const children = new Set<CliProcess>();
const servers = new Set<{ close(): void }>();
afterEach(async () => {
  await Promise.all([...children].map((child) => child.kill()));
  children.clear();
});
afterAll(() => {
  for (const server of servers) server.close();
});

function cli(name: 'listen' | 'broadcast', args: string[], env = cliEnv()): CliProcess {
  const child = startCli(name, args, env);
  children.add(child);
  return child;
}

/** A WebSocket "hub" that records each connection_init's authorization and refuses it (4403). */
async function captureWs(): Promise<{ url: string; tokens: string[]; next(): Promise<string> }> {
  const tokens: string[] = [];
  const waiters: Array<(token: string) => void> = [];
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (protocols) => [...protocols][0] ?? false });
  servers.add(wss);
  wss.on('connection', (socket) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; payload?: { authorization?: string } };
      if (message.type !== 'connection_init') return;
      const token = String(message.payload?.authorization ?? '').replace(/^Bearer /, '');
      tokens.push(token);
      waiters.shift()?.(token);
      socket.close(4403, 'Forbidden');
    });
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/graphql`,
    tokens,
    next: () => (tokens.length > 0 ? Promise.resolve(tokens[0]!) : new Promise((resolve) => waiters.push(resolve))),
  };
}

/** An HTTP "hub" that records each Authorization header and answers UNAUTHENTICATED. */
async function captureHttp(): Promise<{ url: string; tokens: string[] }> {
  const tokens: string[] = [];
  const server: Server = createServer((request, response) => {
    tokens.push(String(request.headers.authorization ?? '').replace(/^Bearer /, ''));
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ errors: [{ message: 'A valid bearer token is required', extensions: { code: 'UNAUTHENTICATED' } }] }));
    });
  });
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, tokens };
}

const FEEDBACK = ['feedback', '--diagnosis', 'diagnosis-7', '--feedback', 'f1', '--rating', '5', '--effectiveness', '0.9'];

describe('tokens the CLIs mint for themselves', () => {
  it('listen sends a token that may read the one diagnosis it listens to, and nothing else', async () => {
    const hub = await captureWs();
    cli('listen', ['--diagnosis', 'diagnosis-7', '--url', hub.url]);
    const claims = decodeJwt(await hub.next());
    expect(claims['diagnoses']).toEqual(['diagnosis-7']);
    expect(claims['scope']).toBeUndefined();
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBeLessThanOrEqual(3600);
  });

  it('broadcast sends a token that may broadcast and read the one diagnosis it broadcasts to, and nothing else', async () => {
    const hub = await captureHttp();
    const child = cli('broadcast', [...FEEDBACK, '--url', hub.url]);
    expect((await child.exited).code).toBe(1);
    expect(hub.tokens).toHaveLength(1);
    const claims = decodeJwt(hub.tokens[0]!);
    expect(claims['scope']).toBe('updates:broadcast');
    expect(claims['diagnoses']).toEqual(['diagnosis-7']);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBeLessThanOrEqual(3600);
  });
});

describe('a refused token is never printed', () => {
  it('broadcast with a refused --token or HUB_TOKEN says why, without the token', async () => {
    const hub = await captureHttp();
    const token = await signToken({ sub: 'cli-secretive', scopes: ['updates:broadcast'] });
    const viaFlag = cli('broadcast', [...FEEDBACK, '--url', hub.url, '--token', token]);
    const viaEnv = cli('broadcast', [...FEEDBACK, '--url', hub.url], cliEnv({ HUB_TOKEN: token }));
    for (const child of [viaFlag, viaEnv]) {
      expect((await child.exited).code).toBe(1);
      expect(child.stderr()).toMatch(/broadcast refused \(UNAUTHENTICATED\)/);
      expect(child.stderr() + child.stdout()).not.toContain(token);
      expect(child.stderr() + child.stdout()).not.toContain(token.split('.')[2]!);
    }
    expect(hub.tokens).toEqual([token, token]);
  });

  it('listen with a refused --token says so and exits, without the token', async () => {
    const hub = await captureWs();
    const token = await signToken({ sub: 'cli-secretive', diagnoses: ['diagnosis-7'] });
    const child = cli('listen', ['--diagnosis', 'diagnosis-7', '--url', hub.url, '--token', token]);
    await child.waitForStderr(/refused/);
    expect(child.stderr() + child.stdout()).not.toContain(token.split('.')[2]!);
    expect(hub.tokens[0]).toBe(token);
  });
});

describe('the dev secret every minted token depends on', () => {
  it('is created readable and writable by its owner only, and read back unchanged', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'hub-dev-secret-')), '.dev-secret');
    const secret = loadOrCreateDevSecret(file);
    expect(secret.byteLength).toBe(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(loadOrCreateDevSecret(file)).equals(Buffer.from(secret))).toBe(true);
  });
});
