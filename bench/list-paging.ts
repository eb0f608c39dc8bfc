/**
 * A full paged `list --all` against the projector, at two fleet sizes in one run: its cost should
 * grow with the number of domains, not with its square. Domains are appended straight to the log
 * (one DomainDefined commit each) on a stack of the run's own.
 *
 *   node --import tsx bench/list-paging.ts [--small 1000] [--large 100000] [--page 500] [--rounds 3]
 *
 * Prints, per size, the first page and the whole listing (median of the rounds), then the line
 * `full list per domain, large/small: R` (1.0 is linear).
 */
import { isVirtError } from '../contracts/errors.ts';
import { seedDomains } from '../test/fixtures/seed-domains.ts';
import { startStack } from '../test/fixtures/stack.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const small = arg('--small', 1_000);
const large = arg('--large', 100_000);
const pageSize = arg('--page', 500);
const rounds = arg('--rounds', 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stack = await startStack({ services: ['command', 'projector'] });
try {
  const c = stack.client;
  const results: Array<{ size: number; first: number; full: number; pages: number }> = [];
  let seeded = 0;
  for (const size of [small, large]) {
    // The small fleet's prefix lists only its own domains; the large one's is seeded on top of it.
    const prefix = `s${size}-`;
    const names = Array.from({ length: size }, (_, i) => `${prefix}${String(i).padStart(7, '0')}`);
    const t0 = performance.now();
    const seq = await seedDomains(stack.nats.nats, names);
    seeded += size;
    for (;;) {
      const ok = await c.list({ all: true, name: prefix, pageSize: 1, minSeq: seq, waitMs: 25_000 }).then(
        () => true,
        (e: unknown) => (isVirtError(e) && e.code === 'timeout' ? false : Promise.reject(e)),
      );
      if (ok) break;
    }
    console.error(`${size} domains in the log and the views in ${((performance.now() - t0) / 1000).toFixed(1)} s (${seeded} in all)`);
    const first: number[] = [];
    const full: number[] = [];
    let pages = 0;
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      pages = 0;
      let count = 0;
      // Unfiltered, as `list --all` asks: the large listing also carries the small fleet's domains.
      for await (const page of c.listPages({ all: true, pageSize })) {
        if (pages++ === 0) first.push(performance.now() - t);
        count += page.length;
      }
      full.push(performance.now() - t);
      if (count !== seeded) throw new Error(`listed ${count} domains, ${seeded} defined`);
    }
    results.push({ size: seeded, first: median(first), full: median(full), pages });
  }
  console.log(`\nfull paged list --all, page size ${pageSize}, median of ${rounds} rounds\n`);
  console.log('| domains | pages | first page | every page | per domain |');
  console.log('|---:|---:|---:|---:|---:|');
  for (const r of results) console.log(`| ${r.size.toLocaleString('en')} | ${r.pages} | ${r.first.toFixed(1)} ms | ${r.full.toFixed(0)} ms | ${((r.full / r.size) * 1000).toFixed(1)} µs |`);
  const [a, b] = results;
  console.log(`\nfull list per domain, large/small: ${(b!.full / b!.size / (a!.full / a!.size)).toFixed(2)}`);
} finally {
  await stack.stop();
}
