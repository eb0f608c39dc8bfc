import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../platform/config.ts';
import { clusterConfigs, shippedConfigs } from './nats/configs.ts';

/**
 * `npm run infra:nats` writes infra/nats/*.conf (the files docker-compose.yml mounts).
 * `npm run infra:nats -- --hosts nats-1.example,nats-2.example,nats-3.example --out DIR` writes one
 * file per host of a cluster on real hosts instead: routes by those names, the store under
 * /var/lib/nats (infra/README.md).
 */
const { values } = parseArgs({ options: { hosts: { type: 'string' }, out: { type: 'string' }, 'store-dir': { type: 'string' } } });
const hosts = values.hosts?.split(',').map((h) => h.trim()).filter(Boolean);
if (hosts && hosts.length < 3) {
  process.stderr.write('error: --hosts names every node of the cluster, at least three [invalid-arg]\n');
  process.exit(2);
}
const out = values.out ? resolve(values.out) : join(PROJECT_ROOT, 'infra', 'nats');
const files = hosts
  ? clusterConfigs(hosts, {
      storeDir: values['store-dir'] ?? '/var/lib/nats/jetstream',
      title: (i) => `${hosts[i]}: node ${i + 1} of ${hosts.length} of virtplane's JetStream cluster (VIRTPLANE_REPLICAS=3).`,
    })
  : shippedConfigs();
mkdirSync(out, { recursive: true });
for (const [file, text] of Object.entries(files)) {
  writeFileSync(join(out, file), text);
  process.stdout.write(`wrote ${join(out, file)}\n`);
}
