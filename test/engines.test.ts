/**
 * `engines` in package.json says which Node the hub runs on; each runtime dependency in the
 * lockfile must accept that Node too. npm itself is the judge: a dry `npm ci --omit=dev` of this
 * package.json and lockfile prints EBADENGINE for every runtime package whose own `engines` rules
 * out the Node that runs npm (CI runs this on Node 20 and on Node 24). Dev-only tools are left
 * out: the codegen CLI (7.x) and its loaders declare Node >= 22.
 */
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from './helpers/npm.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const scratch: string[] = [];

afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The manifests npm ci reads: the root's, its lockfile, and each workspace package's package.json. */
async function copyManifests(to: string): Promise<void> {
  await cp(join(ROOT, 'package.json'), join(to, 'package.json'));
  await cp(join(ROOT, 'package-lock.json'), join(to, 'package-lock.json'));
  const packages = await readdir(join(ROOT, 'packages')).catch(() => []);
  for (const name of packages) {
    await mkdir(join(to, 'packages', name), { recursive: true });
    await cp(join(ROOT, 'packages', name, 'package.json'), join(to, 'packages', name, 'package.json'));
  }
}

describe('engines', () => {
  it('should install every runtime dependency without an EBADENGINE warning on the running Node', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hub-engines-'));
    scratch.push(dir);
    await copyManifests(dir);
    const { code, output } = await run('npm', ['ci', '--omit=dev', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], dir);
    expect(code, output).toBe(0);
    const unsupported = [...output.matchAll(/EBADENGINE\s+package: '([^']+)'/g)].map((match) => match[1]);
    expect(unsupported, `runtime packages whose engines exclude Node ${process.version}`).toEqual([]);
  }, 120_000);
});
