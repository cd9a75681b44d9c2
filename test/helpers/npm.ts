import { spawn } from 'node:child_process';

export interface RunResult {
  readonly code: number | null;
  /** stdout and stderr, interleaved as they came. */
  readonly output: string;
  readonly stdout: string;
}

/**
 * Runs a command to completion and collects its output. The npm_* and VITEST* variables that
 * `npx vitest` leaves in the environment are removed, so an `npm` child reads its project and
 * settings from `cwd` and not from the repository that started the tests.
 */
export function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<RunResult> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && !/^npm_/i.test(entry[0]) && !entry[0].startsWith('VITEST') && entry[0] !== 'NODE_OPTIONS',
    ),
  );
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...inherited, npm_config_update_notifier: 'false', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output, stdout }));
  });
}
