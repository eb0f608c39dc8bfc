/**
 * Guest interfaces plugged and unplugged per second on one host, against raw `ip tuntap add` /
 * `ip link del` pairs as the baseline. Runs in a network namespace it creates and removes.
 *
 *   node --import tsx bench/interfaces.ts [--iterations N] [--write]
 *
 * --write puts the figures into the "## Interfaces" section of BENCHMARKS.md (other sections are
 * left as they are). The last line printed is the headline figure with the ratio.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NetworkDefinition } from '../contracts/network/definition.ts';
import type { InterfaceModel } from '../contracts/domain/definition.ts';
import { NetworkHost } from '../drivers/network/index.ts';
import { createNetns } from '../test/fixtures/netns.ts';

const exec = promisify(execFile);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const iterations = arg('--iterations', 200);
const write = process.argv.includes('--write');

async function timed(n: number, fn: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return n / ((performance.now() - t0) / 1000);
}

async function concurrent(n: number, workers: number, fn: () => Promise<void>): Promise<number> {
  let left = n;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (left-- > 0) await fn();
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

const ns = await createNetns('vpbench');
const stateDir = await mkdtemp(join(tmpdir(), 'vp-bench-if-'));
const rows: [string, number][] = [];
try {
  // Baseline: the two iproute2 calls every tap costs at minimum.
  const raw = await timed(iterations, async () => {
    await exec('ip', ['-n', ns.name, 'tuntap', 'add', 'dev', 'rawtap0', 'mode', 'tap']);
    await exec('ip', ['-n', ns.name, 'link', 'del', 'dev', 'rawtap0']);
  });
  rows.push(['raw `ip tuntap add` + `ip link del` (baseline)', raw]);

  const host = await NetworkHost.open({ stateDir, netns: ns.name });
  const def = NetworkDefinition.parse({
    name: 'bench',
    uuid: randomUUID(),
    forward: { mode: 'nat' },
    ips: [
      {
        family: 'ipv4',
        address: '10.201.0.1',
        prefix: 16,
        dhcp: { ranges: [{ start: '10.201.1.0', end: '10.201.255.254' }], hosts: [] },
      },
    ],
  });
  const lookup = () => def;
  const dom = randomUUID();
  const onNet: InterfaceModel = { type: 'network', source: { network: 'bench' } };
  // One guest stays plugged so the network is not torn down and rebuilt on every cycle.
  const anchor = await host.plugInterface(dom, onNet, lookup);

  const eth = await timed(iterations, async () => {
    const p = await host.plugInterface(dom, { type: 'ethernet' }, lookup);
    await host.unplugInterface(dom, p.ifname);
  });
  rows.push(['tap, type ethernet (create, MAC, up; state persisted)', eth]);

  const net = await timed(iterations, async () => {
    const p = await host.plugInterface(dom, onNet, lookup);
    await host.unplugInterface(dom, p.ifname);
  });
  rows.push(['tap on a NAT network (+ bridge port, nft port filter)', net]);

  const par = await concurrent(iterations, 4, async () => {
    const p = await host.plugInterface(dom, onNet, lookup);
    await host.unplugInterface(dom, p.ifname);
  });
  rows.push(['tap on a NAT network, 4 guests in parallel', par]);

  await exec('ip', ['-n', ns.name, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink1']);
  const direct = await timed(iterations, async () => {
    const p = await host.plugInterface(dom, { type: 'direct', source: { dev: 'uplink0', mode: 'bridge' } }, lookup);
    await host.unplugInterface(dom, p.ifname);
  });
  rows.push(['macvtap, type direct', direct]);

  await host.unplugInterface(dom, anchor.ifname);
  await host.close();

  const width = Math.max(...rows.map(([l]) => l.length));
  for (const [label, v] of rows) console.log(`${label.padEnd(width)}  ${v.toFixed(1)} pairs/s`);

  if (write) {
    const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'BENCHMARKS.md');
    const section = [
      '## Interfaces',
      '',
      `\`node --import tsx bench/interfaces.ts --iterations ${iterations}\` on ${new Date().toISOString().slice(0, 10)},`,
      `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, inside a network namespace.`,
      'One plug followed by one unplug is a pair; sequential unless noted. The ratio is against the',
      'raw iproute2 baseline measured in the same run. The kernel dominates: removing a device',
      '(`ip link del`) takes tens of milliseconds; on top, every plug and unplug fsyncs two small',
      'state files (name counters, recorded devices) and a network tap adds one nft transaction each way.',
      '',
      '| path | pairs/s | ratio to baseline |',
      '|---|---:|---:|',
      ...rows.map(([l, v]) => `| ${l} | ${v.toFixed(1)} | ${(v / raw).toFixed(2)} |`),
      '',
    ].join('\n');
    let doc = '';
    try {
      doc = await readFile(file, 'utf8');
    } catch {
      doc = '# Benchmarks\n\n';
    }
    const start = doc.search(/^## Interfaces[ \t]*$/m);
    if (start < 0) {
      doc = `${doc.replace(/\n*$/, '\n\n')}${section}`;
    } else {
      const rest = doc.slice(start + 1).search(/^## /m);
      const end = rest < 0 ? doc.length : start + 1 + rest;
      doc = `${doc.slice(0, start)}${section}${rest < 0 ? '' : '\n'}${doc.slice(end)}`;
    }
    await writeFile(file, doc);
  }
  console.log(
    `interfaces plugged+unplugged per second: ${net.toFixed(1)} (NAT network tap; raw ip tuntap add/link del ${raw.toFixed(1)}/s; ratio ${(net / raw).toFixed(2)})`,
  );
} finally {
  await ns.remove();
  await rm(stateDir, { recursive: true, force: true });
}
