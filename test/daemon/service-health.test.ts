// Where the health check servers of eTP Local LoadBalancer services listen: the addresses the
// compiled ruleset accepts NodePorts on, read from what the compiler decided, never decided
// again beside it.
import { describe, expect, it } from 'vitest';
import { compileParts } from '../../src/compile/compile.js';
import { healthHostsOf } from '../../src/daemon/service-health.js';
import { buildModel } from '../../src/model/build-model.js';
import { CLUSTER, CLUSTER_ENV } from '../support/address-plan.js';
import { type Env, config } from '../support/builders.js';

const hosts = (env: Env) => healthHostsOf(compileParts(buildModel([]).model, config(env)));

describe('healthHostsOf', () => {
  it.each([
    { what: 'nodePortAddresses primary: the primary IP of each family', env: CLUSTER_ENV, want: [CLUSTER.node, CLUSTER.node6] },
    // IPv4 CIDRs only: the IPv6 family has no entry, so it accepts NodePorts on every address
    // (kube-proxy's NewNodePortAddresses), and its servers listen on ::
    { what: 'CIDRs: the node IPs inside them', env: { ...CLUSTER_ENV, nodePortAddresses: ['192.168.0.0/24'] }, want: [CLUSTER.node, '::'] },
    { what: 'CIDRs of both families', env: { ...CLUSTER_ENV, nodePortAddresses: ['192.168.0.0/24', `${CLUSTER.node6}/128`] }, want: [CLUSTER.node, CLUSTER.node6] },
    { what: '0.0.0.0/0: every address', env: { ...CLUSTER_ENV, nodePortAddresses: ['0.0.0.0/0'] }, want: 'all' },
    { what: 'no node IP known yet: every address', env: { ...CLUSTER_ENV, nodeIPs: [] }, want: 'all' },
  ])('$what', ({ env, want }) => {
    expect(hosts(env)).toEqual(want);
  });
});
