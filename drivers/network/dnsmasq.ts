import { readFile, rm } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NetworkDefinition } from '../../contracts/network/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { HostCommands } from './exec.ts';

/**
 * DHCP for a network through dnsmasq, one daemon per network with its own configuration, pid and
 * lease files in the state dir. DNS is off (`port=0`): serving DNS would forward guest queries to
 * the host's upstream resolvers, which is a separate feature with its own policy.
 */

export interface DnsmasqFiles {
  conf: string;
  pid: string;
  leases: string;
  /** The fixed DHCP hosts (dhcp-hosts.ts), re-read on SIGHUP. */
  hosts: string;
}

export const hasDhcp = (def: NetworkDefinition): boolean =>
  def.ips.some((ip) => (ip.dhcp?.ranges.length ?? 0) > 0);

const DOMAIN_RE = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?$/;

/** An address of the family, or the error naming what it was for: nothing else reaches dnsmasq's files. */
export function checkAddr(family: 'ipv4' | 'ipv6', a: string, what: string): string {
  if (family === 'ipv4' ? !isIPv4(a) : !isIPv6(a)) {
    throw new VirtError('invalid-arg', `invalid ${family === 'ipv4' ? 'IPv4' : 'IPv6'} ${what} '${a}'`);
  }
  return a;
}

function netmask(prefix: number): string {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
}

/**
 * The configuration file. Every value is validated so that nothing from a definition can start a
 * new line or option in the file. Fixed hosts are not in it but in `files.hosts`, which dnsmasq
 * re-reads on SIGHUP: a restart would be needed to change anything here.
 */
export function dnsmasqConf(def: NetworkDefinition, bridge: string, files: DnsmasqFiles, user?: string): string {
  const lines = [
    '# Managed by virtplane; rewritten whenever the network is started.',
    'strict-order',
    `pid-file=${files.pid}`,
    'except-interface=lo',
    'bind-dynamic',
    `interface=${bridge}`,
    'port=0',
    'no-resolv',
    'no-hosts',
    `dhcp-leasefile=${files.leases}`,
    `dhcp-hostsfile=${files.hosts}`,
    'dhcp-no-override',
    'dhcp-authoritative',
  ];
  if (user !== undefined) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(user)) throw new VirtError('invalid-arg', `invalid dnsmasq user '${user}'`);
    lines.push(`user=${user}`);
  }
  if (def.domain) {
    if (!DOMAIN_RE.test(def.domain)) throw new VirtError('invalid-arg', `invalid network domain '${def.domain}'`);
    lines.push(`domain=${def.domain}`);
  }
  let leaseMax = 0;
  for (const ip of def.ips) {
    for (const r of ip.dhcp?.ranges ?? []) {
      checkAddr(ip.family, r.start, 'DHCP range start');
      checkAddr(ip.family, r.end, 'DHCP range end');
      lines.push(
        ip.family === 'ipv4'
          ? `dhcp-range=${r.start},${r.end},${netmask(ip.prefix)}`
          : `dhcp-range=${r.start},${r.end},${ip.prefix}`,
      );
      if (ip.family === 'ipv4') {
        const toInt = (a: string) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
        leaseMax += Math.max(0, toInt(r.end) - toInt(r.start) + 1);
      }
    }
  }
  if (leaseMax > 0) lines.push(`dhcp-lease-max=${leaseMax}`);
  return `${lines.join('\n')}\n`;
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is a live dnsmasq started with our configuration file. Checking the command line
 * keeps a stale pid file (after a reboot, say) from making us signal an unrelated process.
 */
export async function isOurDnsmasq(pid: number, conf: string): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // A zombie has exited; it only waits for its parent to collect it.
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmdline.some((a) => a.endsWith('dnsmasq')) && cmdline.includes(`--conf-file=${conf}`);
  } catch {
    return false;
  }
}

export async function runningPid(files: DnsmasqFiles): Promise<number | undefined> {
  const pid = await readPid(files.pid);
  return pid !== undefined && (await isOurDnsmasq(pid, files.conf)) ? pid : undefined;
}

/** Starts the daemon; resolves once it has written its pid file and detached. */
export async function startDnsmasq(cmds: HostCommands, files: DnsmasqFiles): Promise<number> {
  // dnsmasq reports configuration and bind errors on stderr before it detaches.
  await cmds.inNs('dnsmasq', [`--conf-file=${files.conf}`]);
  for (let i = 0; i < 50; i++) {
    const pid = await runningPid(files);
    if (pid !== undefined) return pid;
    await sleep(20);
  }
  throw new VirtError('operation-failed', `dnsmasq did not start (no pid in ${files.pid})`);
}

/** Stops the daemon if it runs (TERM, then KILL after a grace period) and removes its files. */
export async function stopDnsmasq(files: DnsmasqFiles, graceMs = 3000): Promise<void> {
  const pid = await runningPid(files);
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const deadline = Date.now() + graceMs;
    while ((await isOurDnsmasq(pid, files.conf)) && Date.now() < deadline) await sleep(10);
    if (await isOurDnsmasq(pid, files.conf)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      const killDeadline = Date.now() + graceMs;
      while ((await isOurDnsmasq(pid, files.conf)) && Date.now() < killDeadline) await sleep(10);
      if (await isOurDnsmasq(pid, files.conf)) {
        throw new VirtError('operation-failed', `dnsmasq (pid ${pid}) did not exit after SIGKILL`);
      }
    }
  }
  await Promise.all([files.conf, files.pid, files.leases, files.hosts].map((f) => rm(f, { force: true })));
}
