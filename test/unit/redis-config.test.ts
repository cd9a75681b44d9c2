import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configError as error } from '../helpers/config.js';

describe('Redis topology configuration', () => {
  it('should read each topology from its variables', () => {
    expect(loadConfig({ REDIS_URL: 'redis://r:6379' }).redis).toMatchObject({ url: 'redis://r:6379', prefix: 'hub:' });
    expect(loadConfig({ REDIS_SENTINELS: 's1:26379, s2:26379', REDIS_SENTINEL_NAME: 'hub' }).redis).toMatchObject({
      sentinels: ['s1:26379', 's2:26379'],
      sentinelName: 'hub',
    });
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'n1:7000,n2:7001' }).redis).toMatchObject({ clusterNodes: ['n1:7000', 'n2:7001'] });
    expect(loadConfig({}).redis).toBeNull();
  });

  it('should refuse more than one topology, half a Sentinel setting, and addresses that are not host:port', () => {
    expect(error({ REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'n1:7000' })).toContain(
      'set only one of REDIS_URL (standalone), REDIS_SENTINELS (Sentinel) and REDIS_CLUSTER_NODES (Cluster)',
    );
    expect(error({ REDIS_SENTINELS: 's1:26379' })).toContain('REDIS_SENTINELS and REDIS_SENTINEL_NAME go together');
    expect(error({ REDIS_SENTINEL_NAME: 'hub' })).toContain('REDIS_SENTINELS and REDIS_SENTINEL_NAME go together');
    expect(error({ REDIS_CLUSTER_NODES: 'n1' })).toContain('must be host:port, comma-separated');
  });
});
