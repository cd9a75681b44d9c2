/**
 * LISTEN_BACKLOG: the kernel completes and queues this many connections for the hub to accept,
 * so a reconnect storm (an instance died, its clients all come back within a second) is queued
 * rather than dropped. Proven on a real hub process that is frozen (SIGSTOP: it accepts nothing),
 * so only the kernel's queue can complete the handshakes.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { killAllHubProcesses, startHubProcess, type HubProcess } from './helpers/hub-process.js';

const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await killAllHubProcesses();
});

/** Opens `n` TCP connections to a frozen hub; how many the kernel completed within `windowMs`. */
async function handshakesWhileFrozen(hub: HubProcess, n: number, windowMs: number): Promise<number> {
  process.kill(hub.pid, 'SIGSTOP');
  try {
    let completed = 0;
    let all!: () => void;
    const done = new Promise<void>((resolve) => (all = resolve));
    for (let i = 0; i < n; i += 1) {
      const socket = connect(hub.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.once('connect', () => {
        completed += 1;
        if (completed === n) all();
      });
      sockets.push(socket);
    }
    // A dropped SYN is retried after 1 s, so within the window only queued handshakes complete.
    const timer = setTimeout(all, windowMs);
    await done;
    clearTimeout(timer);
    return completed;
  } finally {
    process.kill(hub.pid, 'SIGCONT');
  }
}

describe('LISTEN_BACKLOG', () => {
  it('should queue a burst of 600 connections to a hub that accepts none of them with the default, and drop what is over a small backlog', async () => {
    const roomy = await startHubProcess({});
    expect(await handshakesWhileFrozen(roomy, 600, 800)).toBe(600);
    await roomy.kill();

    const small = await startHubProcess({ LISTEN_BACKLOG: '64' });
    // Linux holds backlog + 1 completed connections; the rest wait for a SYN retry.
    expect(await handshakesWhileFrozen(small, 600, 800)).toBeLessThanOrEqual(65);
  }, 60_000);
});
