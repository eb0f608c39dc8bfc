import type { FleetResult } from './run.ts';

const ms = (x: number) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : 'n/a');

/** The result as a reader wants it: what ran, what it cost, what a loss took, whether it held. */
export const formatResult = (r: FleetResult): string => {
  const out = [
    `fleet: ${r.hosts} hosts, ${r.domains} domains (${r.running} running, ${r.ha} HA)`,
    `populate: hosts up in ${r.hostsStartS.toFixed(1)} s, defined in ${r.defineS.toFixed(1)} s (${(r.domains / r.defineS).toFixed(0)}/s), started in ${r.startS.toFixed(1)} s`,
  ];
  if (r.idle && r.steady) {
    out.push(
      `lease renewals: ${r.steady.renewalsPerSec.toFixed(0)}/s sustained (${r.steady.expectedRenewalsPerSec.toFixed(0)}/s expected) over ${r.steady.seconds.toFixed(0)} s`,
      `nats-server: ${r.steady.serverCpuPct.toFixed(1)}% CPU, ${r.steady.inMsgsPerSec.toFixed(0)} msgs/s in, ${r.steady.outMsgsPerSec.toFixed(0)} out; idle baseline ${r.idle.serverCpuPct.toFixed(1)}% CPU, ${r.idle.inMsgsPerSec.toFixed(0)} msgs/s in`,
      `steady CPU: ${Object.entries(r.steady.cpuPct).map(([k, v]) => `${k} ${v.toFixed(1)}%`).join(', ')}`,
    );
  }
  out.push(`simulator event-loop delay: p99 ${r.loopDelayMs.p99.toFixed(0)} ms, max ${r.loopDelayMs.max.toFixed(0)} ms`);
  if (r.notRunning || r.replaced || r.spuriouslyLost.length) out.push(`not cut off but declared lost: ${r.spuriouslyLost.length} hosts (${r.spuriouslyLost.slice(0, 5).join(', ')}); started domains never running: ${r.notRunning}; domains placed elsewhere than planned: ${r.replaced}`);
  out.push(`RSS MiB: nats-server ${r.rssMiB.nats.toFixed(0)}, command ${r.rssMiB.command.toFixed(0)}, projector ${r.rssMiB.projector.toFixed(0)}, simulator ${r.rssMiB.simulator.toFixed(0)}`);
  if (r.list && r.listBaseline) {
    out.push(
      `list --all: ${r.list.domains} domains first page ${r.list.firstPageMs.toFixed(1)} ms, all ${r.list.pages} pages ${r.list.fullMs.toFixed(0)} ms; ` +
        `${r.listBaseline.domains} domains ${r.listBaseline.firstPageMs.toFixed(1)} / ${r.listBaseline.fullMs.toFixed(1)} ms; ratio first page ${(r.list.firstPageMs / r.listBaseline.firstPageMs).toFixed(1)}x, full ${(r.list.fullMs / r.listBaseline.fullMs).toFixed(1)}x`,
    );
  }
  if (r.losses.length) {
    out.push(
      `lost ${r.losses.length} hosts: declared lost after p50 ${ms(r.detectMs.p50)}, p99 ${ms(r.detectMs.p99)} (${r.detectMs.samples} hosts)`,
      `HA guests running elsewhere after p50 ${ms(r.restartMs.p50)}, p99 ${ms(r.restartMs.p99)} (${r.restartMs.samples} of ${r.losses.reduce((n, l) => n + l.guests.length, 0)} guests)`,
    );
  }
  if (r.check) {
    const bad = Object.entries(r.check).filter(([, xs]) => xs.length > 0);
    out.push(bad.length === 0 ? 'check: every lost host declared lost, every HA guest running once elsewhere (views and drivers), nothing on two hosts' : `check FAILED: ${bad.map(([k, xs]) => `${k}: ${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ` (+${xs.length - 5})` : ''}`).join('; ')}`);
  }
  return `${out.join('\n')}\n`;
};
