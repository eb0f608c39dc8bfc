import { readdir, readFile } from 'node:fs/promises';
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

/**
 * The host's memory now, as virsh nodememstats reads it (/proc/meminfo), and each NUMA cell's free
 * memory as freecell does (/sys/devices/system/node/node<N>/meminfo). A machine without NUMA in
 * sysfs is one cell, 0, with all free memory.
 */
export const nodeMemory = async (): Promise<{ memory?: { totalKiB: number; freeKiB: number; buffersKiB: number; cachedKiB: number }; cells: Array<{ id: number; freeKiB: number }> }> => {
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const kib = (text: string, key: string) => {
    const m = new RegExp(`^(?:Node \\d+ )?${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const total = kib(meminfo, 'MemTotal');
  const free = kib(meminfo, 'MemFree');
  const memory =
    total !== undefined && free !== undefined
      ? { totalKiB: total, freeKiB: free, buffersKiB: kib(meminfo, 'Buffers') ?? 0, cachedKiB: kib(meminfo, 'Cached') ?? 0 }
      : undefined;
  const nodes = (await readdir('/sys/devices/system/node').catch(() => [] as string[]))
    .map((n) => /^node(\d+)$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const cells: Array<{ id: number; freeKiB: number }> = [];
  for (const id of nodes) {
    const f = kib(await readFile(`/sys/devices/system/node/node${id}/meminfo`, 'utf8').catch(() => ''), 'MemFree');
    if (f !== undefined) cells.push({ id, freeKiB: f });
  }
  if (cells.length === 0 && free !== undefined) cells.push({ id: 0, freeKiB: free });
  return { ...(memory ? { memory } : {}), cells };
};
