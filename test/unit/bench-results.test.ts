import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resultName, writeResults, type BenchReport } from '../../bench/report.js';

const ALL = ['S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'S7'];
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('benchmark results', () => {
  it('should name a run of every scenario by its engine, and a run of some by its engine and scenarios', () => {
    expect(resultName('memory', ALL, ALL)).toBe('memory');
    expect(resultName('redis', ALL, ALL)).toBe('redis');
    expect(resultName('memory', ['S7'], ALL)).toBe('memory-s7');
    expect(resultName('redis', ['S1', 'S5'], ALL)).toBe('redis-s1-s5');
  });

  it('should keep one result per name, the next run replacing the last', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-results-'));
    dirs.push(dir);
    const report = (startedAt: string) => ({ startedAt, engine: 'memory' }) as unknown as BenchReport;
    writeResults(dir, 'memory', report('2026-12-01T00:00:00.000Z'), '<svg>first</svg>');
    const files = writeResults(dir, 'memory', report('2026-12-02T00:00:00.000Z'), '<svg>second</svg>');
    expect(files.map((file) => path.basename(file))).toEqual(['memory.json', 'memory.svg']);
    expect(readdirSync(dir).sort()).toEqual(['memory.json', 'memory.svg']);
    expect(JSON.parse(readFileSync(path.join(dir, 'memory.json'), 'utf8')).startedAt).toBe('2026-12-02T00:00:00.000Z');
    expect(readFileSync(path.join(dir, 'memory.svg'), 'utf8')).toBe('<svg>second</svg>');
  });
});
