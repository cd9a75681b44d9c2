import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

export type Encoding = 'br' | 'gzip' | 'identity';

/**
 * Bodies past this are compressed at brotli quality 5 rather than 11: GraphiQL's 8 MB script takes
 * 0.5 s of CPU and comes to 1.57 MB (quality 9: 2 s, 1.48 MB; quality 11: about 10 s), its
 * 0.8 MB stylesheet 0.05 s instead of 1 s for 3% more bytes.
 */
const LARGE_BODY_BYTES = 64 * 1024;

/**
 * A body that never changes while the process runs (a page, a script, an icon), with how it may be
 * cached. Compressed once per encoding, the first time a client asks for that encoding, on
 * libuv's thread pool; the compressed bytes are kept for every later request.
 */
export class StaticContent {
  /** First 16 hex digits of the SHA-256 of the body. */
  readonly hash: string;
  private readonly compressed = new Map<Exclude<Encoding, 'identity'>, Promise<Buffer>>();

  constructor(
    readonly body: Buffer,
    readonly contentType: string,
    /** The Cache-Control header. */
    readonly cacheControl: string,
    /** Whether responses carry an ETag (and answer a matching If-None-Match with 304). */
    private readonly tagged = true,
    /** Headers beside the content ones (Vary is added to). */
    readonly extraHeaders: Readonly<Record<string, string>> = {},
  ) {
    this.hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
  }

  /** The body in an encoding (compressing it the first time); falls back to the raw body if compression fails. */
  encoded(encoding: Encoding): Promise<{ encoding: Encoding; body: Buffer }> {
    if (encoding === 'identity') return Promise.resolve({ encoding, body: this.body });
    let pending = this.compressed.get(encoding);
    if (!pending) {
      pending = encoding === 'br' ? brotli(this.body, brotliOptions(this.body.length)) : gzipped(this.body, { level: 9 });
      this.compressed.set(encoding, pending);
      pending.catch(() => this.compressed.delete(encoding));
    }
    return pending.then(
      (body) => ({ encoding, body }),
      () => ({ encoding: 'identity' as const, body: this.body }),
    );
  }

  /** The ETag of one encoding of the body (strong: each encoding is its own representation); null when untagged. */
  etag(encoding: Encoding): string | null {
    return this.tagged ? `"${this.hash}${encoding === 'identity' ? '' : `-${encoding}`}"` : null;
  }
}

function brotliOptions(size: number) {
  return {
    params: {
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_QUALITY]: size > LARGE_BODY_BYTES ? 5 : 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: size,
    },
  };
}

/**
 * The encoding to answer an Accept-Encoding header with: brotli, else gzip, else none. A coding
 * with `q=0` is refused; `*` stands for any coding not named.
 */
export function negotiateEncoding(header: string | undefined): Encoding {
  if (!header) return 'identity';
  const weights = new Map<string, number>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const q = params.map((param) => /^\s*q\s*=\s*([\d.]+)\s*$/.exec(param)).find((match) => match !== null);
    weights.set(name.trim(), q ? Number(q[1]) : 1);
  }
  const accepts = (coding: string) => (weights.get(coding) ?? weights.get('*') ?? 0) > 0;
  if (accepts('br')) return 'br';
  if (accepts('gzip')) return 'gzip';
  return 'identity';
}

/** True when an If-None-Match header names the ETag (weak comparison, as RFC 9110 has it for GET and HEAD), or is `*`. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}

/**
 * Answers GET or HEAD with the content: compressed as the client accepts (Vary: Accept-Encoding),
 * with its ETag and Cache-Control, or 304 when If-None-Match names the ETag of what it would send.
 */
export function serveStatic(request: IncomingMessage, response: ServerResponse, content: StaticContent): void {
  const wanted = negotiateEncoding(request.headers['accept-encoding']);
  content
    .encoded(wanted)
    .then(({ encoding, body }) => {
      const etag = content.etag(encoding);
      const vary = content.extraHeaders['vary'];
      const headers: Record<string, string | number> = {
        ...content.extraHeaders,
        vary: vary ? `${vary}, Accept-Encoding` : 'Accept-Encoding',
        'cache-control': content.cacheControl,
        'x-content-type-options': 'nosniff',
        ...(etag ? { etag } : {}),
      };
      if (etag && etagMatches(request.headers['if-none-match'], etag)) {
        response.writeHead(304, headers);
        response.end();
        return;
      }
      response.writeHead(200, {
        ...headers,
        'content-type': content.contentType,
        'content-length': body.length,
        ...(encoding === 'identity' ? {} : { 'content-encoding': encoding }),
      });
      response.end(request.method === 'HEAD' ? undefined : body);
    })
    .catch(() => response.destroy());
}

/** The path of a request's URL, without its query string. */
export function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
