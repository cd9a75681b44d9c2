/**
 * Debian's Chromium driven by playwright-core, for the tests that need a real browser. Chromium
 * comes from CHROMIUM_PATH or /usr/bin/chromium. Where it is missing, those tests are skipped
 * with a warning, except in CI, where they fail (CI installs it).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
/** Whether a browser test is skipped here: only outside CI, without Chromium. */
export const SKIP_BROWSER = !HAVE_CHROMIUM && !process.env['CI'];

/** Says, once per test file, which browser test is skipped and why. */
export function warnWithoutChromium(what: string): void {
  if (SKIP_BROWSER) console.warn(`\n*** No Chromium at ${CHROMIUM} (set CHROMIUM_PATH): ${what} is SKIPPED ***\n`);
}

/** Starts headless Chromium with no network of its own (no updates, sync or QUIC); fails in CI without one. */
export async function launchChromium(): Promise<Browser> {
  if (!HAVE_CHROMIUM) throw new Error(`Chromium is required in CI: none at ${CHROMIUM} (set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
