/**
 * The teardown of the abuse tests that attack hub processes with raw sockets: the sockets are
 * dropped after each test, and after the file the sockets and every hub process started.
 */
import { afterAll, afterEach } from 'vitest';
import { terminateRawSockets } from './hostile.js';
import { killAllHubProcesses } from './hub-process.js';

/** Registers the teardown hooks (call once at the top level of a test file). */
export function tearDownRawSocketsAndHubProcesses(): void {
  afterEach(() => terminateRawSockets());
  afterAll(async () => {
    terminateRawSockets();
    await killAllHubProcesses();
  });
}
