import { signToken } from './tokens.js';

/** A token for scraping /metrics on the main port (the `hub:status` scope), as Prometheus would hold one. */
export const scraperToken = () => signToken({ sub: 'prometheus', scopes: ['hub:status'] });

/** GET /metrics at `origin` with a scraper token; the exposition text (throws unless 200). */
export async function scrapeMetrics(origin: string, token?: string): Promise<string> {
  const response = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${token ?? (await scraperToken())}` } });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${origin}/metrics answered ${response.status}: ${text}`);
  return text;
}
