import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../platform/config.ts';

/**
 * The CLI the tests run is bin/virtplane.mjs, which runs the bundle in dist/: it is rebuilt from the
 * sources under test first (under a second), so no test runs a stale bundle.
 */
export default function setup(): void {
  execFileSync(process.execPath, [join(PROJECT_ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
}
