import { parseClusterInfo, parseClusterNodes } from '../../shared/engine/redis/nodeHealth';

/** The probe's reading of CLUSTER NODES and CLUSTER INFO, on replies as Redis 7 gives them. */

describe('parseClusterNodes', () => {
  test('masters by their slots, replicas by their master, hostnames before IPs', () => {
    const reply = [
      'a1 10.0.0.1:6379@16379,redis-node-1 myself,master - 0 0 1 connected 0-5460',
      'a2 10.0.0.2:6379@16379,redis-node-2 master - 0 1 2 connected 5461-10922 [10923->-a3]',
      'a3 10.0.0.3:6379@16379, master - 0 1 3 connected 10923-16383',
      'b1 10.0.0.4:6379@16379,redis-node-4 slave a1 0 1 1 connected',
      'b3 10.0.0.6:6379@16379 slave,fail a3 0 1 3 disconnected',
      '',
    ].join('\n');
    expect(parseClusterNodes(reply)).toEqual([
      { address: 'redis-node-1:6379', role: 'master', shard: '0-5460' },
      // A slot being migrated away is not one of its ranges.
      { address: 'redis-node-2:6379', role: 'master', shard: '5461-10922' },
      { address: '10.0.0.3:6379', role: 'master', shard: '10923-16383' },
      { address: 'redis-node-4:6379', role: 'replica', shard: '0-5460' },
      { address: '10.0.0.6:6379', role: 'replica', shard: '10923-16383' },
    ]);
  });

  test('a failed master that lost its slots has no shard; nodes without an address are skipped', () => {
    const reply = [
      'a1 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected',
      'b1 127.0.0.1:7004@17004 myself,master - 0 0 4 connected 0-100 200-300',
      'c1 :0@0 master,noaddr - 0 0 0 disconnected',
      'd1 127.0.0.1:7009@17009 handshake - 0 0 0 connected',
    ].join('\n');
    expect(parseClusterNodes(reply)).toEqual([
      { address: '127.0.0.1:7001', role: 'master', shard: '' },
      { address: '127.0.0.1:7004', role: 'master', shard: '0-100,200-300' },
    ]);
  });
});

test('parseClusterInfo reads the state and the slots by state', () => {
  const reply =
    'cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\n' +
    'cluster_slots_pfail:0\r\ncluster_slots_fail:5461\r\ncluster_known_nodes:6\r\n';
  expect(parseClusterInfo(reply)).toEqual({
    ok: false,
    slots: { ok: 10923, pfail: 0, fail: 5461 },
  });
  expect(parseClusterInfo('cluster_state:ok\r\ncluster_slots_ok:16384\r\n').ok).toBe(true);
});
