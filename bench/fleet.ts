/**
 * A fleet on one machine: real host agents on the test driver (one process), the command service and
 * the projector (their own processes), a nats-server started here. Measures time to detect a lost
 * host and to restart its HA guests, lease renewals sustained and what they cost the server, the
 * projector's memory, and `list` over every domain, each against a baseline from the same run (an idle
 * server; a list of 1,000 domains).
 *
 *   node --import tsx bench/fleet.ts [--hosts 1000] [--domains 100000] [--kill 10] [--duration 30]
 */
import { fleetCommand, toRunOptions } from '../fleet/options.ts';
import { formatResult } from '../fleet/report.ts';
import { runFleet } from '../fleet/run.ts';

const cmd = fleetCommand('bench-fleet', { hosts: 1000, domains: 100_000, kill: 10, duration: 30 }).parse();
const opts = toRunOptions(cmd.opts(), (line) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`));
if (opts.duration === 0) throw new Error('--duration must be at least 1: the steady window is what the bench measures');
const r = await runFleet(opts);
if (opts.json) {
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  process.exit(r.passed ? 0 : 1);
}
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const s = (x: number) => f(x / 1000, 2);
const lines = [
  formatResult(r),
  `| measure | value | baseline (same run) | ratio |`,
  `|---|---:|---:|---:|`,
  `| lost host declared lost, p50 / p99 (${r.detectMs.samples} hosts) | ${s(r.detectMs.p50)} / ${s(r.detectMs.p99)} s | lease TTL ${s(opts.timings.leaseTtlMs)} s | ${f(r.detectMs.p50 / opts.timings.leaseTtlMs, 2)} |`,
  `| its HA guests running elsewhere, p50 / p99 (${r.restartMs.samples} guests) | ${s(r.restartMs.p50)} / ${s(r.restartMs.p99)} s | detection p50 ${s(r.detectMs.p50)} s | ${f(r.restartMs.p50 / r.detectMs.p50, 2)} |`,
];
if (r.steady && r.idle) {
  lines.push(
    `| lease renewals sustained | ${f(r.steady.renewalsPerSec, 0)}/s | ${f(r.steady.expectedRenewalsPerSec, 0)}/s (hosts / renew interval) | ${f(r.steady.renewalsPerSec / r.steady.expectedRenewalsPerSec, 2)} |`,
    `| nats-server CPU, steady fleet | ${f(r.steady.serverCpuPct)}% | ${f(r.idle.serverCpuPct)}% idle, no hosts | +${f(r.steady.serverCpuPct - r.idle.serverCpuPct)} points |`,
    `| nats-server CPU above idle per 1,000 renewals/s (all steady traffic) | ${f((r.steady.serverCpuPct - r.idle.serverCpuPct) / (r.steady.renewalsPerSec / 1000))}% | | |`,
  );
}
if (r.list && r.listBaseline) {
  lines.push(
    `| list --all, first page (${r.list.domains} domains) | ${f(r.list.firstPageMs)} ms | ${f(r.listBaseline.firstPageMs)} ms (${r.listBaseline.domains} domains) | ${f(r.list.firstPageMs / r.listBaseline.firstPageMs)} |`,
    `| list --all, every page (${r.list.pages} pages) | ${f(r.list.fullMs, 0)} ms | ${f(r.listBaseline.fullMs, 0)} ms (${r.listBaseline.domains} domains) | ${f(r.list.fullMs / r.listBaseline.fullMs)} |`,
  );
}
lines.push(`| projector RSS | ${f(r.rssMiB.projector, 0)} MiB | | |`);
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(r.passed ? 0 : 1);
