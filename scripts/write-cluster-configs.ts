// Writes the deployment's cluster node configurations under infra/nats/ from the one generator.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../platform/config.ts';
import { deploymentClusterConfs } from '../platform/nats-cluster.ts';

for (const { file, text } of deploymentClusterConfs()) await writeFile(join(PROJECT_ROOT, 'infra', 'nats', file), text);
