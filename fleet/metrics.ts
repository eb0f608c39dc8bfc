import { readFileSync } from 'node:fs';

/** CPU seconds a process has used so far (user + system), from /proc. */
export const cpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself hold spaces and parentheses.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

/** Resident memory of a process in MiB, from /proc. */
export const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
};

export interface Varz {
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  connections: number;
  subscriptions: number;
  mem: number;
  cpu: number;
}

export const varz = async (monitorUrl: string): Promise<Varz> => (await (await fetch(`${monitorUrl}/varz`)).json()) as Varz;

/** What a process and the server did over a window: CPU share, messages and their rates. */
export interface Window {
  seconds: number;
  serverCpuPct: number;
  /** CPU share of other processes watched over the window, by name. */
  cpuPct: Record<string, number>;
  inMsgsPerSec: number;
  outMsgsPerSec: number;
}

export const startWindow = async (serverPid: number, monitorUrl: string, others: Record<string, number> = {}) => {
  const t0 = performance.now();
  const cpu0 = cpuSeconds(serverPid);
  const others0 = Object.fromEntries(Object.entries(others).map(([k, pid]) => [k, pid === process.pid ? process.cpuUsage() : cpuSeconds(pid)]));
  const v0 = await varz(monitorUrl);
  return async (): Promise<Window> => {
    const seconds = (performance.now() - t0) / 1000;
    const v1 = await varz(monitorUrl);
    return {
      seconds,
      serverCpuPct: ((cpuSeconds(serverPid) - cpu0) / seconds) * 100,
      cpuPct: Object.fromEntries(
        Object.entries(others).map(([k, pid]) => {
          const before = others0[k]!;
          // This process is read through Node: /proc would count the same, but cpuUsage needs no parsing.
          const used = typeof before === 'number' ? cpuSeconds(pid) - before : ((u) => (u.user + u.system) / 1e6)(process.cpuUsage(before));
          return [k, (used / seconds) * 100];
        }),
      ),
      inMsgsPerSec: (v1.in_msgs - v0.in_msgs) / seconds,
      outMsgsPerSec: (v1.out_msgs - v0.out_msgs) / seconds,
    };
  };
};

export const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
