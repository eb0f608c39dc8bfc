import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './config.ts';
import { deploymentClusterConfs } from './nats-cluster.ts';

describe('the deployment cluster configuration', () => {
  it('is what the generator the test cluster runs produces', async () => {
    for (const { file, text } of deploymentClusterConfs()) {
      expect(await readFile(join(PROJECT_ROOT, 'infra', 'nats', file), 'utf8'), file).toBe(text);
    }
  });
});
