import { readdir, readFile } from 'node:fs/promises';
import { arch, cpus } from 'node:os';
import { virtError } from '../contracts/errors.ts';
import type { SmbiosFacts } from '../contracts/host/host-reads.ts';
import { parseBitmap } from '../contracts/xml/units.ts';

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

/** Clock ticks per second of /proc/stat (USER_HZ, 100 on Linux). */
const TICK_NS = 1e9 / 100;

/**
 * virsh nodecpustats as libvirt's virHostCPUGetStatsLinux reads /proc/stat: one CPU's line (`cpuN `)
 * or the total (`cpu `); kernel time counts irq and softirq, user time counts nice.
 */
export const nodeCpuStats = async (cpu: number): Promise<{ userNs: number; systemNs: number; idleNs: number; iowaitNs: number }> => {
  const header = cpu < 0 ? 'cpu ' : `cpu${cpu} `;
  for (const line of (await readFile('/proc/stat', 'utf8')).split('\n')) {
    if (!line.startsWith(header)) continue;
    const [usr, ni, sys, idle, iowait, irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
    if (idle === undefined) continue;
    return {
      userNs: (usr! + ni!) * TICK_NS,
      systemNs: (sys! + (irq ?? 0) + (softirq ?? 0)) * TICK_NS,
      idleNs: idle * TICK_NS,
      iowaitNs: (iowait ?? 0) * TICK_NS,
    };
  }
  throw virtError('invalid-arg', 'Invalid cpuNum in virHostCPUGetStatsLinux', { raw: true });
};

/** A sysfs CPU list (`0-3,5`) as its members; an unreadable or malformed file as none. */
const cpuList = async (path: string): Promise<number[]> => [...(parseBitmap((await readFile(path, 'utf8').catch(() => '')).trim()) ?? [])].sort((a, b) => a - b);

/**
 * virsh nodecpumap as virHostCPUGetMap reads sysfs: the CPUs present counted up to the highest one
 * (so a gap counts), and the online ones.
 */
export const nodeCpuMap = async (): Promise<{ present: number; online: number[] }> => {
  const present = await cpuList('/sys/devices/system/cpu/present');
  const online = await cpuList('/sys/devices/system/cpu/online');
  // A machine without the sysfs files: what the kernel reports it runs on.
  if (present.length === 0) return { present: cpus().length, online: cpus().map((_, i) => i) };
  return { present: present[present.length - 1]! + 1, online };
};

const DMI = '/sys/class/dmi/id';

/**
 * The host's SMBIOS as libvirt's sysinfo shows it, read from the kernel's copy in /sys/class/dmi/id
 * (files only root may read, such as serial numbers, are left out when unreadable). libvirt's own
 * dmidecode also lists processors and memory devices, which sysfs does not expose.
 */
export const hostSmbios = async (): Promise<SmbiosFacts> => {
  const dmi = async (name: string): Promise<string | undefined> => {
    const v = (await readFile(`${DMI}/${name}`, 'utf8').catch(() => '')).trim();
    return v === '' ? undefined : v;
  };
  const read = (pairs: Array<[string, string]>) => Promise.all(pairs.map(async ([k, f]): Promise<[string, string | undefined]> => [k, await dmi(f)]));
  return {
    bios: await read([
      ['vendor', 'bios_vendor'],
      ['version', 'bios_version'],
      ['date', 'bios_date'],
      ['release', 'bios_release'],
    ]),
    system: await read([
      ['manufacturer', 'sys_vendor'],
      ['product', 'product_name'],
      ['version', 'product_version'],
      ['serial', 'product_serial'],
      ['uuid', 'product_uuid'],
      ['sku', 'product_sku'],
      ['family', 'product_family'],
    ]),
    baseBoard: await read([
      ['manufacturer', 'board_vendor'],
      ['product', 'board_name'],
      ['version', 'board_version'],
      ['serial', 'board_serial'],
      ['asset', 'board_asset_tag'],
    ]),
    chassis: await read([
      ['manufacturer', 'chassis_vendor'],
      ['version', 'chassis_version'],
      ['serial', 'chassis_serial'],
      ['asset', 'chassis_asset_tag'],
    ]),
  };
};
