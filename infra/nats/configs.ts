import { renderServerConfig } from '../../platform/security/server-config.ts';

/**
 * The shipped nats-server files, rendered by the same code as the embedded default's and the tests'.
 * Each includes `auth/auth.conf`, which `infra/auth.ts init` writes (users, keys and permissions) into
 * the directory mounted there: no file here holds a credential.
 */
const AUTH_INCLUDE = 'auth/auth.conf';
const NODES = ['nats-1', 'nats-2', 'nats-3'];

export const shippedConfigs = (): Record<string, string> => ({
  'single.conf': renderServerConfig({
    title: 'One nats-server with JetStream and authentication, as the embedded default runs it.',
    listen: '0.0.0.0:4222',
    http: '0.0.0.0:8222',
    storeDir: '/data/jetstream',
    maxFileStore: '10G',
    include: AUTH_INCLUDE,
  }),
  ...Object.fromEntries(
    NODES.map((name, i) => [
      `cluster-node${i + 1}.conf`,
      renderServerConfig({
        title: `Node ${i + 1} of a three-node JetStream cluster with authentication: streams and buckets use 3 replicas (VIRTPLANE_REPLICAS=3).`,
        serverName: name,
        listen: '0.0.0.0:4222',
        http: '0.0.0.0:8222',
        storeDir: '/data/jetstream',
        include: AUTH_INCLUDE,
        cluster: { name: 'virtplane', listen: '0.0.0.0:6222', routes: NODES.map((n) => `nats-route://${n}:6222`) },
      }),
    ]),
  ),
});
