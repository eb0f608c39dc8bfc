/**
 * How long an unrelated command waits while large XML definitions are being parsed. The command
 * service parses XML on worker threads; this measures the latency of small defines sent one after
 * another while eight ~1 MiB domain documents are in flight, next to the same small defines on an
 * idle service (the baseline, same run). It also prints what one such parse costs on a thread, which
 * is how long the request loop would stand still per document if it parsed them itself.
 *
 *   node --import tsx bench/parse-offload.ts [--samples 40] [--bulky 8]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtplaneClient } from '../client/index.ts';
import { parseDomainXml } from '../contracts/xml/index.ts';
import { startNatsServer } from '../platform/nats-server.ts';
import { connectNats } from '../platform/nats.ts';
import { provision } from '../platform/provision.ts';
import { spawnService } from '../platform/service-process.ts';
import { bigDomainXml } from '../test/fixtures/big-xml.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SAMPLES = arg('samples', 40);
const BULKY = arg('bulky', 8);
const DOC_BYTES = 1000 * 1024;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

const main = async () => {
  const server = await startNatsServer();
  const n = await connectNats(server.url, 'bench');
  await provision(n);
  const dataDir = await mkdtemp(join(tmpdir(), 'vp-bench-'));
  const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_HOST_ID: 'bench-host', VIRTPLANE_DRIVER: 'test', VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_LOG_LEVEL: 'info' };
  const procs = [];
  for (const s of ['command', 'projector', 'host-agent'] as const) {
    const p = spawnService(s, env, { onLine: (l) => process.env.BENCH_LOGS && console.error(`[${s}] ${l}`) });
    await p.ready;
    procs.push(p);
  }
  const client = VirtplaneClient.over(n, { actor: 'bench' });
  let seq = 0;
  const small = async () => {
    const t = performance.now();
    await client.define({ definition: { name: `small-${seq++}`, memoryKiB: 65536, vcpus: 1 } });
    return performance.now() - t;
  };
  try {
    const docs = Array.from({ length: BULKY }, (_, i) => bigDomainXml(`bulky-${i}`, DOC_BYTES).xml);
    // What one parse costs, measured here on this thread: on the service's loop it would block for that long.
    parseDomainXml(docs[0]!);
    const t0 = performance.now();
    parseDomainXml(docs[0]!);
    const parseMs = performance.now() - t0;

    // Warm-up: first use of the parser threads and of the define path.
    await client.define({ xml: bigDomainXml('warm-bulky', DOC_BYTES).xml });
    for (let i = 0; i < 20; i++) await small();

    const idle: number[] = [];
    for (let i = 0; i < SAMPLES; i++) idle.push(await small());

    const loaded: number[] = [];
    let done = 0;
    const t1 = performance.now();
    const failures: string[] = [];
    const bulky = Promise.all(
      docs.map((xml) =>
        client.define({ xml }).then(
          () => done++,
          (e: Error) => (failures.push(e.message), done++),
        ),
      ),
    );
    while (done < BULKY && loaded.length < 10_000) loaded.push(await small());
    await bulky;
    if (failures.length) throw new Error(`large defines failed: ${failures.join('; ')}`);
    const bulkySecs = (performance.now() - t1) / 1000;

    const ratio = pct(loaded, 50) / pct(idle, 50);
    console.log(`one ~1 MiB domain document parse: ${parseMs.toFixed(0)} ms of CPU (what the loop would stand still for, per document)`);
    console.log(`unrelated define, idle service:        p50 ${pct(idle, 50).toFixed(2)} ms, max ${Math.max(...idle).toFixed(2)} ms (${idle.length} samples)`);
    console.log(`unrelated define, ${BULKY} large parses in flight: p50 ${pct(loaded, 50).toFixed(2)} ms, max ${Math.max(...loaded).toFixed(2)} ms (${loaded.length} samples over ${bulkySecs.toFixed(1)} s)`);
    console.log(`loaded/idle p50 latency ratio: ${ratio.toFixed(2)} (on the loop, the unrelated command would wait up to ${((BULKY * parseMs) / 1000).toFixed(1)} s)`);
  } finally {
    for (const p of procs.reverse()) await p.stop('SIGTERM');
    await n.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
};

await main();
