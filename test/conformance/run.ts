import { existsSync } from 'node:fs';
import { conformanceDir, runConformance } from './conformance.ts';

/**
 * `npm run conformance`: pass/total per corpus folder; exit 1 when any case fails.
 *
 * The corpus (libvirt's test XML and virt-install's output) is not part of the repository: it is read
 * from VIRTPLANE_CONFORMANCE_DIR, or from `../shared/conformance` beside the clone. With no setting and
 * no corpus there, the run says so in one line and exits 0 (nothing to check is not a failure); a
 * VIRTPLANE_CONFORMANCE_DIR that names no directory is a mistake, and exits 2.
 */

const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
const root = conformanceDir();
if (!existsSync(root)) {
  if (process.env.VIRTPLANE_CONFORMANCE_DIR) {
    console.error(`error: VIRTPLANE_CONFORMANCE_DIR=${process.env.VIRTPLANE_CONFORMANCE_DIR}: no such directory [invalid-arg]`);
    process.exit(2);
  }
  console.log(`conformance: skipped, no corpus at ${root} (set VIRTPLANE_CONFORMANCE_DIR to a copy of it)`);
  process.exit(0);
}
let failed = 0;
let total = 0;
try {
  const results = runConformance(root);
  console.log(`conformance corpus: ${root}`);
  for (const r of results) {
    total += r.total;
    failed += r.total - r.pass;
    console.log(`${r.pass === r.total ? 'PASS' : 'FAIL'}  ${r.folder.padEnd(24)} ${String(r.pass).padStart(4)}/${r.total}   ${r.manifest}`);
    for (const c of r.cases) {
      if (!c.ok) console.log(`      x ${c.file} (expected ${c.expected}): ${c.detail}`);
      else if (verbose || c.expected === 'reject') console.log(`      - ${c.file}: ${c.detail}`);
    }
  }
  console.log(`${failed === 0 ? 'all pass' : `${failed} failing`}: ${total - failed}/${total}`);
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(2);
}
process.exit(failed === 0 ? 0 : 1);
