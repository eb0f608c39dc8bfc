import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../platform/config.ts';
import { shippedConfigs } from './nats/configs.ts';

/** Writes infra/nats/*.conf from infra/nats/configs.ts: `node --import tsx infra/generate-configs.ts`. */
for (const [file, text] of Object.entries(shippedConfigs())) {
  writeFileSync(join(PROJECT_ROOT, 'infra', 'nats', file), text);
  process.stdout.write(`wrote infra/nats/${file}\n`);
}
