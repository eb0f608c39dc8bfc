import { readFile } from 'node:fs/promises';
import type { VcpuInfo } from '../../contracts/host/host-reads.ts';
import { parseBitmap } from '../../contracts/xml/units.ts';
import type { QmpClient } from './qmp.ts';
import { procStat } from './stats.ts';

/** A thread's state, the CPU it last ran on and its time (utime + stime), from its /proc stat line. */
export const threadStat = async (pid: number, tid: number): Promise<{ state: string; cpu: number; timeNs: number }> => {
  const st = await procStat(`/proc/${pid}/task/${tid}/stat`);
  return { state: st.state, cpu: st.cpu, timeNs: st.userNs + st.systemNs };
};

/** The CPUs a thread may run on (sched_getaffinity), from its status file's Cpus_allowed_list. */
export const threadAffinity = async (pid: number, tid: number): Promise<number[]> => {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8'));
  return [...(m ? (parseBitmap(m[1]!) ?? []) : [])].sort((a, b) => a - b);
};

/**
 * virsh vcpuinfo of a qemu guest, as libvirt's qemuDomainHelperGetVcpus gives it: the vCPU threads
 * query-cpus-fast names, each reported running (libvirt does not look at the thread's state), with
 * the CPU it last ran on, its CPU time and its affinity.
 */
export const qemuVcpuInfo = async (qmp: QmpClient, pid: number): Promise<VcpuInfo[]> => {
  const cpus = await qmp.execute<Array<{ 'cpu-index': number; 'thread-id': number }>>('query-cpus-fast');
  const rows = await Promise.all(
    cpus
      .sort((a, b) => a['cpu-index'] - b['cpu-index'])
      .map(async (c): Promise<VcpuInfo | undefined> => {
        const tid = c['thread-id'];
        // A vCPU unplugged between the query and the read has no thread left: it is no longer online.
        const read = await Promise.all([threadStat(pid, tid), threadAffinity(pid, tid)]).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT' || e.code === 'ESRCH') return undefined;
          throw e;
        });
        if (!read) return undefined;
        const [st, affinity] = read;
        return { number: c['cpu-index'], state: 'running', cpu: st.cpu, timeNs: st.timeNs, affinity };
      }),
  );
  return rows.filter((r): r is VcpuInfo => r !== undefined);
};
