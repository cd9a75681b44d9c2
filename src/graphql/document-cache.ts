import type { DocumentNode, Token } from 'graphql';
import { WeightedLru } from '../weighted-lru.js';

/**
 * Heap kept per lexical token of a parsed document, with some headroom: its AST keeps every
 * token (a linked list from `loc.startToken`) and a node per name, field or argument. Measured
 * on graphql 16 (Node 20) after a full collection: about 290 bytes per token for
 * `a0: __typename …` (572 KB for 2000 tokens in 11 KB of text, 52 bytes per byte of text), 250
 * for arguments, 485 for one-letter fields (`{ a a a … }`: 950 KB in 4 KB of text, 240 bytes per
 * byte). A comment keeps only its text.
 */
export const BYTES_PER_TOKEN = 600;

/**
 * What a document kept in a cache holds, estimated in bytes: its text (the cache's key) plus
 * BYTES_PER_TOKEN per token of its AST. Counting the tokens walks the list the AST already
 * keeps, once per document cached.
 */
export function documentWeight(text: string, document: DocumentNode): number {
  let tokens = 0;
  for (let token: Token | null | undefined = document.loc?.startToken; token; token = token.next) tokens++;
  // Parsed without locations, a document keeps no tokens but still its nodes: as many as its
  // characters at most.
  return text.length + BYTES_PER_TOKEN * (document.loc ? tokens : text.length);
}

/**
 * DOCUMENT_CACHE_BYTES's default, 8 MiB: about 200 operations like the client module's (24 to
 * 41 KB each; GraphiQL's introspection query weighs 100 KB), or 6 documents of MAX_TOKENS (2000).
 */
export const DEFAULT_DOCUMENT_CACHE_BYTES = 8 * 1024 * 1024;

/** Parsed documents by their text, bounded by their estimated bytes (DOCUMENT_CACHE_BYTES). */
export type DocumentCache = WeightedLru<string, DocumentNode>;

export function createDocumentCache(maxBytes: number): DocumentCache {
  return new WeightedLru(maxBytes, documentWeight);
}
