import { readFile } from 'node:fs/promises';
import { arch, cpus } from 'node:os';

/**
 * What virsh nodeinfo shows of a host, read where libvirt reads it (/proc/cpuinfo, sysfs): the CPU
 * architecture, frequency, sockets, cores per socket, threads per core and NUMA cells. Values the
 * machine does not expose are left out rather than guessed.
 */
export const nodeFacts = async (): Promise<Record<string, string>> => {
  const facts: Record<string, string> = { cpuModel: arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'aarch64' : arch() };
  const speed = cpus()[0]?.speed;
  if (speed) facts.cpuMHz = String(speed);
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const sockets = new Set<string>();
  const cores = new Set<string>();
  let threads = 0;
  for (const block of cpuinfo.split(/\n\n+/)) {
    const field = (k: string) => block.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm'))?.[1];
    const socket = field('physical id');
    const core = field('core id');
    if (socket === undefined || core === undefined) continue;
    sockets.add(socket);
    cores.add(`${socket}/${core}`);
    threads++;
  }
  if (sockets.size > 0) {
    facts.cpuSockets = String(sockets.size);
    facts.coresPerSocket = String(cores.size / sockets.size);
    facts.threadsPerCore = String(threads / cores.size);
  }
  const nodes = await readFile('/sys/devices/system/node/online', 'utf8').catch(() => '');
  const cells = nodes
    .trim()
    .split(',')
    .filter(Boolean)
    .reduce((n, r) => {
      const [a, b] = r.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a! + 1);
    }, 0);
  if (cells > 0) facts.numaCells = String(cells);
  return facts;
};
