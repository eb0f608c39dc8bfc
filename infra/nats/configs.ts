import { renderServerConfig } from '../../platform/security/server-config.ts';

/**
 * The shipped nats-server files, rendered by the same code as the embedded default's and the tests'.
 * Each includes `auth/auth.conf`, which `infra/auth.ts init` writes (users, keys and permissions) into
 * the directory mounted there: no file here holds a credential.
 */
const AUTH_INCLUDE = 'auth/auth.conf';
const NODES = ['nats-1', 'nats-2', 'nats-3'];

/**
 * One file per node of a three-node (or larger) cluster: `nodes` are the names the servers know each
 * other by (the compose services, or the hosts' DNS names), routes between all of them on 6222.
 */
export const clusterConfigs = (nodes: string[], opts: { storeDir: string; title: (i: number) => string }): Record<string, string> =>
  Object.fromEntries(
    nodes.map((name, i) => [
      `cluster-node${i + 1}.conf`,
      renderServerConfig({
        title: opts.title(i),
        serverName: name,
        listen: '0.0.0.0:4222',
        http: '0.0.0.0:8222',
        storeDir: opts.storeDir,
        include: AUTH_INCLUDE,
        cluster: { name: 'virtplane', listen: '0.0.0.0:6222', routes: nodes.map((n) => `nats-route://${n}:6222`) },
      }),
    ]),
  );

export const shippedConfigs = (): Record<string, string> => ({
  'single.conf': renderServerConfig({
    title: 'One nats-server with JetStream and authentication, as the embedded default runs it.',
    listen: '0.0.0.0:4222',
    http: '0.0.0.0:8222',
    storeDir: '/data/jetstream',
    maxFileStore: '10G',
    include: AUTH_INCLUDE,
  }),
  ...clusterConfigs(NODES, {
    storeDir: '/data/jetstream',
    title: (i) => `Node ${i + 1} of a three-node JetStream cluster with authentication: streams and buckets use 3 replicas (VIRTPLANE_REPLICAS=3).`,
  }),
});
