import { parseArgs } from 'node:util';
import { BaseConfig, loadConfig, PrincipalName, resolveNatsUrl } from '../platform/config.ts';
import { createLogger } from '../platform/log.ts';
import { connectNats } from '../platform/nats.ts';
import { AuthStore, ensureServicePrincipals, prepareBus } from '../platform/security/principals.ts';

/**
 * Credentials for a deployment outside the embedded default (docker-compose, a cluster; infra/README.md).
 * In the image this is dist/auth.mjs; from a clone:
 *
 *   node --import tsx infra/auth.ts init --dir /auth --url nats://nats-1:4222 --host hv-1 --operator ops
 *     writes a seed and a NATS context per principal and the server's auth.conf (keeps existing keys);
 *   VIRTPLANE_REPLICAS=3 node --import tsx infra/auth.ts prepare --dir /auth
 *     as admin, once the server runs: streams, buckets and each enrolled host's task consumers.
 *
 * More hosts and people later: `virtplane host-enroll HOST --auth-dir /auth` and `principal-add`.
 */
const log = createLogger('auth');
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string' },
    url: { type: 'string' },
    host: { type: 'string', multiple: true },
    operator: { type: 'string', multiple: true },
    auditor: { type: 'string', multiple: true },
    'ack-wait-ms': { type: 'string' },
  },
});
const cfg = loadConfig(BaseConfig);
const dir = values.dir;
if (!dir || (positionals[0] !== 'init' && positionals[0] !== 'prepare')) {
  log.error('usage: infra/auth.ts init|prepare --dir DIR [--url URL] [--host ID]... [--operator NAME]... [--auditor NAME]...');
  process.exit(2);
}
const hosts = (values.host ?? []).map((h) => PrincipalName.parse(h));
const store = AuthStore.open(dir, values.url ? { url: values.url } : {});
if (positionals[0] === 'init') {
  ensureServicePrincipals(store);
  for (const h of hosts) store.add(h, 'host');
  for (const o of values.operator ?? []) store.add(o, 'operator');
  for (const a of values.auditor ?? []) store.add(a, 'auditor');
  log.info(`principals in ${dir}: ${store.entries.map((p) => `${p.name} (${p.role})`).join(', ')}`);
} else {
  const admin = await connectNats(resolveNatsUrl({ ...cfg, natsContext: store.contextFile('admin'), ...(values.url ? { natsUrl: values.url } : {}) }), 'virtplane-admin');
  await prepareBus(admin, { replicas: cfg.replicas, hosts: store.entries.filter((p) => p.role === 'host').map((p) => p.name), ackWaitMs: Number(values['ack-wait-ms'] ?? 15_000) });
  await admin.close();
  log.info('streams, buckets and host consumers are in place');
}
