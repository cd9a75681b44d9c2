import { request, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';

export interface RawGet {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body as sent (still encoded). */
  readonly body: Buffer;
  /** The body decoded as its Content-Encoding says (empty for HEAD and 304). */
  readonly decoded: Buffer;
}

/**
 * A GET (or HEAD) with exactly the given headers, over node:http: unlike fetch, it neither adds
 * an Accept-Encoding nor decodes the body, so what the server sent is what the test sees.
 */
export function rawGet(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<RawGet> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        const encoding = response.headers['content-encoding'];
        const decoded = body.length === 0 ? body : encoding === 'br' ? brotliDecompressSync(body) : encoding === 'gzip' ? gunzipSync(body) : body;
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, decoded });
      });
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
