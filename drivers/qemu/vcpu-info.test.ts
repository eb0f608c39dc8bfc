import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { bitmapFormat } from '../../contracts/host/host-reads.ts';
import type { QmpClient } from './qmp.ts';
import { qemuVcpuInfo, threadAffinity, threadStat } from './vcpu-info.ts';

describe('vCPU threads read in /proc', () => {
  it("a thread's last CPU, time and affinity as /proc has them; a thread gone since the query is left out", async () => {
    const pid = process.pid;
    // Burn a little CPU so the thread has a time to show.
    const end = Date.now() + 50;
    while (Date.now() < end);
    const st = await threadStat(pid, pid);
    expect(st.timeNs).toBeGreaterThan(0);
    expect(st.timeNs % 1e7).toBe(0); // whole clock ticks
    const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]!;
    expect(bitmapFormat(await threadAffinity(pid, pid))).toBe(allowed);
    // What query-cpus-fast answers: this thread as vCPU 1, and vCPU 0 on a thread that no longer exists.
    const qmp = { execute: async () => [{ 'cpu-index': 1, 'thread-id': pid }, { 'cpu-index': 0, 'thread-id': 0x3fffffff }] } as unknown as QmpClient;
    const rows = await qemuVcpuInfo(qmp, pid);
    expect(rows.map((r) => [r.number, r.state])).toEqual([[1, 'running']]);
    expect(rows[0]!.cpu).toBeGreaterThanOrEqual(0);
  });
});
