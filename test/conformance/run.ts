import { conformanceDir, runConformance } from './conformance.ts';

/** `npm run conformance`: pass/total per corpus folder; exit 1 when any case fails. */

const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
const root = conformanceDir();
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
