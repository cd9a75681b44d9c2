import type { ResultOf, VariablesOf } from '@graphql-typed-document-node/core';
import { BroadcastEffectivenessDocument, BroadcastFeedbackDocument, BroadcastRecommendationDocument } from './operations.js';

const DOCUMENTS = {
  recommendation: BroadcastRecommendationDocument,
  effectiveness: BroadcastEffectivenessDocument,
  feedback: BroadcastFeedbackDocument,
} as const;

export type BroadcastKind = keyof typeof DOCUMENTS;
type Input<K extends BroadcastKind> = VariablesOf<(typeof DOCUMENTS)[K]>['input'];

export interface BroadcastReceipt {
  readonly cursor: string;
  /** Null when the token may not read the diagnosis. */
  readonly liveSubscribers: number | null;
  readonly duplicate: boolean;
}

/** Sends one broadcast over HTTP; rejects with the hub's error message and code. */
export async function broadcast<K extends BroadcastKind>(url: string, token: string, kind: K, input: Input<K>): Promise<BroadcastReceipt> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: DOCUMENTS[kind].toString(), variables: { input } }),
  });
  const body = (await response.json().catch(() => ({}))) as {
    data?: ResultOf<(typeof DOCUMENTS)[K]> | null;
    errors?: Array<{ message: string; extensions?: { code?: string } }>;
  };
  const [error] = body.errors ?? [];
  if (error || !body.data) {
    throw Object.assign(new Error(error?.message ?? `HTTP ${response.status}`), { code: error?.extensions?.code ?? `HTTP_${response.status}` });
  }
  const receipt = Object.values(body.data)[0] as { event: { cursor: string }; liveSubscribers: number | null; duplicate: boolean };
  return { cursor: receipt.event.cursor, liveSubscribers: receipt.liveSubscribers, duplicate: receipt.duplicate };
}
