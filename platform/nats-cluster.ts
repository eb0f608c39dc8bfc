/**
 * The one description of a JetStream cluster node's configuration: the deployment's files under
 * infra/nats/ are this function's output (a test keeps them equal), and the test cluster runs the
 * same text on loopback ports with temporary stores.
 */
export interface ClusterNodeSpec {
  /** server_name: JetStream placement and Raft groups know a node by it. */
  name: string;
  clusterName: string;
  /** host:port for clients. */
  listen: string;
  /** host:port for the monitoring endpoint, if any. */
  http?: string;
  storeDir: string;
  /** host:port the node's route listener binds. */
  clusterListen: string;
  /** Every node's route URL, this node's own included (the server skips itself). */
  routes: string[];
}

/** The limit that lets definitions up to the XML layer's own limit through (see nats-server.ts). */
export const MAX_PAYLOAD = '4MB';

export const clusterNodeConf = (s: ClusterNodeSpec): string =>
  [
    `# Node ${s.name} of a three-node JetStream cluster: streams and buckets use 3 replicas (VIRTPLANE_REPLICAS=3),`,
    '# so the log survives the loss of one machine. Written by `npm run infra:nats` from platform/nats-cluster.ts.',
    `server_name: ${s.name}`,
    `listen: ${s.listen}`,
    ...(s.http ? [`http: ${s.http}`] : []),
    `max_payload: ${MAX_PAYLOAD}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(s.storeDir)}`,
    '}',
    'cluster {',
    `  name: ${s.clusterName}`,
    `  listen: ${s.clusterListen}`,
    '  routes: [',
    ...s.routes.map((r) => `    ${r}`),
    '  ]',
    '}',
    '',
  ].join('\n');

/** The deployment's three nodes, each a host of its own named nats-1..3 (docker compose, VMs). */
export const deploymentClusterConfs = (): Array<{ file: string; text: string }> => {
  const names = ['nats-1', 'nats-2', 'nats-3'];
  return names.map((name, i) => ({
    file: `cluster-node${i + 1}.conf`,
    text: clusterNodeConf({
      name,
      clusterName: 'virtplane',
      listen: '0.0.0.0:4222',
      http: '0.0.0.0:8222',
      storeDir: '/data/jetstream',
      clusterListen: '0.0.0.0:6222',
      routes: names.map((n) => `nats-route://${n}:6222`),
    }),
  }));
};

