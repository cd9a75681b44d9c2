/**
 * Dev mode (no JWT key config) prints tokens that grant every scope, so what it exposes is kept to
 * this machine. Regression: it bound 0.0.0.0, put the admin token in the GraphiQL page for anyone
 * who fetched it, and answered any Origin with Access-Control-Allow-Credentials.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { devBanner } from '../src/dev-banner.js';
import { isLoopbackAddress, isLoopbackHost } from '../src/transport/loopback.js';
import { startTestApp } from './helpers/app.js';
import { killAllHubProcesses, startHubProcess } from './helpers/hub-process.js';
import { TEST_SECRET } from './helpers/tokens.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  await killAllHubProcesses();
});

function secretFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hub-dev-mode-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'dev-secret');
}

/** A hub in dev mode, in this process. */
async function startDevApp(env: Record<string, string> = {}): Promise<{ app: App; port: number; address: string }> {
  const app = await createApp(loadConfig({ NODE_ENV: 'development', PORT: '0', LOG_LEVEL: 'silent', DEV_SECRET_FILE: secretFile(), ...env }));
  const { port, address } = await app.start();
  cleanups.push(() => app.stop());
  return { app, port, address };
}

/** This machine's first non-loopback IPv4 address (how another machine would reach it), if any. */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address;
}

/** GET with a chosen Host header, to a chosen address of this machine. */
function get(
  address: string,
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, method: 'GET', headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Whether a TCP connection to address:port is accepted. */
function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('dev mode listen address', () => {
  it('should default HOST to 127.0.0.1 without key config, to 0.0.0.0 with it, and take HOST when it is set', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'test' }).host).toBe('127.0.0.1');
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(loadConfig({ JWT_SECRET: TEST_SECRET }).host).toBe('0.0.0.0');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET }).host).toBe('0.0.0.0');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET, HOST: '10.1.2.3' }).host).toBe('10.1.2.3');
  });

  it('should bind 127.0.0.1 when started in dev mode without HOST', async () => {
    const { address, port } = await startDevApp();
    expect(address).toBe('127.0.0.1');
    expect(await accepts('127.0.0.1', port)).toBe(true);
    const external = externalAddress();
    if (external) expect(await accepts(external, port)).toBe(false);
  });

  it('should, as a process in dev mode without HOST, listen on 127.0.0.1 only and say so, with what the printed tokens grant and where GraphiQL carries the admin token', async () => {
    const hub = await startHubProcess({ NODE_ENV: 'development', JWT_SECRET: '', HOST: '', DEV_SECRET_FILE: secretFile(), LOG_LEVEL: 'silent' });
    cleanups.push(() => hub.stop());
    const external = externalAddress();
    if (external) expect(await accepts(external, hub.port)).toBe(false);
    await expect.poll(() => hub.output(), { timeout: 5000 }).toContain('More tokens');
    const output = hub.output();
    expect(output).toContain(`Listening on 127.0.0.1:${hub.port}: this machine only`);
    expect(output).toContain('Admin token: grants EVERY scope (broadcast, status, read any diagnosis, revoke access)');
    expect(output).toContain('The GraphiQL page carries the admin token, only for requests from this machine to localhost, 127.0.0.1 or [::1]');
    expect(output).toMatch(/\n {4}ey[\w-]+\.[\w-]+\.[\w-]+\n/);
  });

  it('should print in the banner that a hub bound to every interface is reachable from other machines, and when GraphiQL is off', () => {
    const banner = (url: string, address: string, graphiql: boolean) =>
      devBanner({ url, address, port: 4000, graphiql, historySize: 100, secretFile: '.dev-secret', tokens: { admin: 'ADMIN', reader: 'READER' } });
    const exposed = banner('http://localhost:4000/graphql', '0.0.0.0', true);
    expect(exposed).toContain('Listening on 0.0.0.0:4000: reachable from other machines (HOST)');
    expect(exposed).toContain('The GraphiQL page carries the admin token, only for requests from this machine');
    const quiet = banner('http://[::1]:4000/graphql', '::1', false);
    expect(quiet).toContain('Listening on [::1]:4000: this machine only');
    expect(quiet).toContain('GraphiQL: off (GRAPHIQL=false)');
    expect(quiet).not.toContain('carries the admin token');
  });
});

describe('the dev admin token in the GraphiQL page', () => {
  it('should be in the page for a loopback request addressed to localhost, 127.0.0.1 or [::1], with any port', async () => {
    const { app, port } = await startDevApp({ HOST: '0.0.0.0' });
    const token = app.devTokens!.admin;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost', 'LOCALHOST:80']) {
      const page = await get('127.0.0.1', port, '/graphql', { host, accept: 'text/html' });
      expect(page.status, host).toBe(200);
      expect(page.body.includes(`Bearer ${token}`), host).toBe(true);
    }
  });

  it('should not be in the page for a request addressed to another name, even from this machine (DNS rebinding)', async () => {
    const { app, port } = await startDevApp({ HOST: '0.0.0.0' });
    const token = app.devTokens!.admin;
    for (const host of [
      `evil.example:${port}`,
      `localhost.evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `192.0.2.1:${port}`,
      `[::ffff:127.0.0.1]:${port}`,
    ]) {
      const page = await get('127.0.0.1', port, '/graphql', { host, accept: 'text/html' });
      expect(page.status, host).toBe(200);
      expect(page.body.includes('Diagnosis update hub'), host).toBe(true);
      expect(page.body.includes(token), host).toBe(false);
      expect(/Bearer ey/.test(page.body), host).toBe(false);
    }
  });

  it('should not be in the page for a request from another address, whatever its Host header says', async () => {
    const external = externalAddress();
    expect(external, 'this test needs a non-loopback network interface').toBeDefined();
    const { app, port } = await startDevApp({ HOST: '0.0.0.0' });
    const page = await get(external!, port, '/graphql', { host: `localhost:${port}`, accept: 'text/html' });
    expect(page.status).toBe(200);
    expect(page.body.includes('Diagnosis update hub')).toBe(true);
    expect(page.body.includes(app.devTokens!.admin)).toBe(false);
  });

  it('should tell loopback addresses and names apart from others', () => {
    expect(['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1'].map(isLoopbackAddress)).toEqual([true, true, true, true]);
    expect(['192.0.2.2', '::ffff:192.0.2.2', '::', '0.0.0.0', '10.0.0.1', undefined].map(isLoopbackAddress)).toEqual(Array(6).fill(false));
    expect(['localhost', 'localhost:4000', '127.0.0.1:1', '[::1]', '[::1]:4000'].map(isLoopbackHost)).toEqual([true, true, true, true, true]);
    expect(['localhost.', 'evil.example', '127.0.0.2', '::1', '[::1', 'localhost:x', '', undefined].map(isLoopbackHost)).toEqual(Array(8).fill(false));
  });
});

describe('CORS never allows credentials', () => {
  const preflight = (url: string, origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
  const post = (url: string, origin: string) =>
    fetch(url, { method: 'POST', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });

  it('should answer a preflight and a request from an arbitrary origin (CORS_ORIGINS any, the dev default) without Access-Control-Allow-Credentials', async () => {
    const { port } = await startDevApp();
    const url = `http://127.0.0.1:${port}/graphql`;
    const answered = await preflight(url, 'https://evil.example');
    expect(answered.status).toBe(204);
    expect(answered.headers.get('access-control-allow-origin')).toBe('https://evil.example');
    expect(answered.headers.get('access-control-allow-credentials')).toBeNull();
    const response = await post(url, 'https://evil.example');
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('should answer a listed origin without Access-Control-Allow-Credentials too', async () => {
    const app = await startTestApp({ CORS_ORIGINS: 'https://app.example,https://admin.example' });
    const answered = await preflight(app.url, 'https://app.example');
    expect(answered.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(answered.headers.get('access-control-allow-credentials')).toBeNull();
    const response = await post(app.url, 'https://admin.example');
    expect(response.headers.get('access-control-allow-origin')).toBe('https://admin.example');
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
  });
});
