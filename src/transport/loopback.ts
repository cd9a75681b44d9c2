import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/** Host names that can only mean this machine, as a Host header gives them (the port aside). */
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * True when a request both comes from this machine (its peer is a loopback address) and was
 * addressed to it by a loopback name (`localhost`, `127.0.0.1` or `[::1]`, any port). The second
 * check stops DNS rebinding: a page on another site whose name resolves to 127.0.0.1 reaches the
 * server from a loopback address, but with its own name in the Host header.
 */
export function isLoopbackRequest(request: IncomingMessage | undefined): boolean {
  if (!request) return false;
  return isLoopbackAddress(request.socket.remoteAddress) && isLoopbackHost(request.headers.host);
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = address.toLowerCase().startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(plain) === 4) return plain.startsWith('127.');
  return isIP(plain) === 6 && (plain === '::1' || plain === '0:0:0:0:0:0:0:1');
}

export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const match = /^(\[[^\]]*\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host.toLowerCase());
  return match !== null && LOOPBACK_HOSTS.has(match[1]!);
}
