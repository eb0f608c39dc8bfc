import { chmod, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { NetworkDefinition } from '../../contracts/network/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import { checkAddr, runningPid, type DnsmasqFiles } from './dnsmasq.ts';
import { writeFileAtomic } from './persist.ts';

/**
 * A network's fixed DHCP hosts live in a file of their own (`dhcp-hostsfile=`), not in dnsmasq's
 * configuration, as libvirt keeps them: dnsmasq re-reads the file on SIGHUP, so net-update --live
 * changes them without a restart, keeping the daemon, its sockets and its leases. dnsmasq reads the
 * file after it has dropped to its own user, so the file is world-readable (as libvirt's is); the
 * directory it is in must be searchable by that user (NetworkHost.open sees to its own part).
 */

const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?$/;

const MAC_RE = /^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/;

/**
 * The file's lines, one per host, in dnsmasq's `dhcp-host` syntax without the option name. Every
 * value is checked here whatever checked it before, so nothing from a definition can start a new
 * line or add an option.
 */
export function dhcpHostsText(def: NetworkDefinition): string {
  const lines: string[] = [];
  for (const ip of def.ips) {
    for (const h of ip.dhcp?.hosts ?? []) {
      const parts: string[] = [];
      if (h.mac) {
        if (!MAC_RE.test(h.mac)) throw new VirtError('invalid-arg', `invalid DHCP host MAC address '${h.mac}'`);
        parts.push(h.mac);
      }
      if (h.ip) parts.push(ip.family === 'ipv6' ? `[${checkAddr(ip.family, h.ip, 'host address')}]` : checkAddr(ip.family, h.ip, 'host address'));
      if (h.name) {
        if (!HOSTNAME_RE.test(h.name)) throw new VirtError('invalid-arg', `invalid DHCP host name '${h.name}'`);
        parts.push(h.name);
      }
      if (parts.length > 0) lines.push(parts.join(','));
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/**
 * Replaces the file whole: written beside it, synced and renamed over, so dnsmasq reading it at any
 * moment (a SIGHUP from an earlier update) sees the old list or the new one, never half of either.
 * Returns whether the content changed.
 */
export async function writeDhcpHosts(path: string, text: string): Promise<boolean> {
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === text) return false;
  // dnsmasq reads it as its own user.
  await writeFileAtomic(path, text, 0o644);
  return true;
}

/**
 * Which list each running dnsmasq was last told to read, by pid: a daemon is signalled when the file
 * changes, and also when this process has not yet signalled that daemon itself (after a restart of
 * the host's agent that may have died between the rename and the signal). SIGHUP only makes dnsmasq
 * re-read its hosts files; leases and sockets stay.
 */
export class DhcpHostsSync {
  private readonly told = new Map<string, { pid: number; text: string }>();

  /** Converges `path` to `def`'s hosts and tells the daemon `pid`; → whether it was signalled. */
  async converge(key: string, path: string, def: NetworkDefinition, pid: number | undefined): Promise<boolean> {
    const text = dhcpHostsText(def);
    await writeDhcpHosts(path, text);
    if (pid === undefined) return false;
    const last = this.told.get(key);
    if (last && last.pid === pid && last.text === text) return false;
    process.kill(pid, 'SIGHUP');
    this.told.set(key, { pid, text });
    return true;
  }

  /** The running network's daemon serves `def`'s fixed hosts from now on; → whether it was signalled. */
  async update(key: string, files: DnsmasqFiles, def: NetworkDefinition): Promise<boolean> {
    const conf = await readFile(files.conf, 'utf8').catch(() => '');
    if (!conf.includes(`\ndhcp-hostsfile=${files.hosts}\n`)) {
      // Started by a release that kept fixed hosts in the configuration: SIGHUP cannot change them.
      throw new VirtError('operation-unsupported', `the DHCP server of network '${def.name}' on this host predates live updates: its fixed hosts change when the network is next started`);
    }
    return this.converge(key, files.hosts, def, await runningPid(files));
  }

  /** The daemon just started and read the file itself. */
  started(key: string, pid: number, def: NetworkDefinition): void {
    this.told.set(key, { pid, text: dhcpHostsText(def) });
  }

  forget(key: string): void {
    this.told.delete(key);
  }
}

/**
 * Lets dnsmasq's user reach the hosts file: the state dir and its dnsmasq dir get search permission
 * for others (not read: their names stay unlisted, and every other file there is 0600). Directories
 * above the state dir are the operator's; one that others cannot search is reported, since dnsmasq
 * would then serve the ranges but none of the fixed hosts.
 */
export async function makeHostsReachable(stateDir: string, dnsmasqDir: string): Promise<string | undefined> {
  for (const dir of [stateDir, dnsmasqDir]) {
    const st = await stat(dir);
    if ((st.mode & 0o001) === 0) await chmod(dir, (st.mode & 0o7777) | 0o001);
  }
  for (let dir = dirname(stateDir); ; dir = dirname(dir)) {
    const st = await stat(dir).catch(() => undefined);
    if (st && (st.mode & 0o001) === 0) return `directory ${dir} is not searchable by others: dnsmasq, once it has dropped its privileges, cannot read the fixed DHCP hosts under ${dnsmasqDir}`;
    if (dir === dirname(dir)) return undefined;
  }
}
