import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

const tooLarge = () => new GraphQLError('Request body too large', { extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' } });
const badLength = () => new GraphQLError('Content-Length header is invalid.', { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });

/** One non-negative integer; anything else (lists, signs) is refused rather than skipped. */
const CONTENT_LENGTH = /^\d+$/;

/**
 * MAX_BODY_BYTES for HTTP requests, in place of Yoga's `maxRequestBodySize`, which pipes every
 * body through a counting stream. A request that declares its Content-Length is judged by the
 * header alone: Node's HTTP parser never hands on more bytes than it declares (and refuses a
 * request that also says Transfer-Encoding). Only a body without one (chunked) is counted as it
 * is read. Registered after the request parsers, so it wraps whichever one is selected.
 */
export function useBodyLimit(limit: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const length = request.headers.get('content-length');
      if (length !== null) {
        if (!CONTENT_LENGTH.test(length)) throw badLength();
        if (Number(length) > limit) throw tooLarge();
        return;
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((unlimited) => {
        let bytes = 0;
        const counted = unlimited.body!.pipeThrough(
          new fetchAPI.TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              bytes += chunk.byteLength;
              if (bytes > limit) controller.error(tooLarge());
              else controller.enqueue(chunk);
            },
          }),
        );
        const init = { method: unlimited.method, headers: unlimited.headers, signal: unlimited.signal, body: counted, duplex: 'half' };
        return parse(new fetchAPI.Request(unlimited.url, init as RequestInit));
      });
    },
  };
}
