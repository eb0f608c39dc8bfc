import { join } from 'node:path';
import type { HypervisorDriver } from './hypervisor.ts';
import { TestDriver } from './test/test-driver.ts';

/**
 * The drivers a host runs. The test driver is always there for `test` domains; its guests live in a
 * state file, so they outlive the agent process the way real guests do.
 */
export const selectDrivers = async (
  choice: 'auto' | 'test' | 'qemu',
  stateDir: string,
): Promise<{ drivers: HypervisorDriver[]; description: string }> => {
  const test = new TestDriver({ stateFile: join(stateDir, 'test-driver.json') });
  if (choice === 'qemu') throw new Error('the qemu driver is not available on this host');
  return { drivers: [test], description: 'test (domain type "test")' };
};
