import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LeaseTimings } from '../contracts/host/liveness.ts';
import { freePort, startNatsServer, type RunningNatsServer } from '../platform/nats-server.ts';
import { connectNats, type Nats } from '../platform/nats.ts';
import { provision } from '../platform/provision.ts';
import { spawnService, type ServiceName, type ServiceProcess } from '../platform/service-process.ts';

/**
 * The real control plane for a simulated fleet: a nats-server of its own (free port, temporary store,
 * a monitoring port for /varz and /connz) without authentication, as the benches run it, and the
 * command service and the projector as separate processes.
 */
export interface ControlPlane {
  server: RunningNatsServer;
  monitorUrl: string;
  admin: Nats;
  services: Map<ServiceName, ServiceProcess>;
  stop(): Promise<void>;
}

export const timingEnv = (t: LeaseTimings): Record<string, string> => ({
  VIRTPLANE_RENEW_MS: String(t.renewMs),
  VIRTPLANE_FENCE_MS: String(t.fenceMs),
  VIRTPLANE_LEASE_TTL_MS: String(t.leaseTtlMs),
  VIRTPLANE_LEASE_MARGIN_MS: String(t.leaseMarginMs),
});

export const startControlPlane = async (opts: { timings: LeaseTimings; onLine?: (service: string, line: string) => void }): Promise<ControlPlane> => {
  const storeDir = await mkdtemp(join(tmpdir(), 'virtplane-fleet-nats-'));
  const dataDir = await mkdtemp(join(tmpdir(), 'virtplane-fleet-data-'));
  const monitorPort = await freePort();
  const server = await startNatsServer({ storeDir, args: ['-m', String(monitorPort)] });
  const services = new Map<ServiceName, ServiceProcess>();
  let admin: Nats | undefined;
  const stop = async () => {
    for (const p of [...services.values()].reverse()) {
      const killer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
      await p.stop('SIGTERM');
      clearTimeout(killer);
    }
    services.clear();
    await admin?.close();
    await server.stop();
    await rm(storeDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    admin = await connectNats(server.url, 'fleet-admin');
    await provision(admin);
    const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_DATA_DIR: dataDir, ...timingEnv(opts.timings) };
    for (const name of ['command', 'projector'] as const) {
      // At info: the ready line is what spawnService waits for.
      const p = spawnService(name, { ...env, VIRTPLANE_LOG_LEVEL: 'info' }, { label: name, onLine: (l) => opts.onLine?.(name, l) });
      services.set(name, p);
      await p.ready;
    }
    return { server, monitorUrl: `http://127.0.0.1:${monitorPort}`, admin, services, stop };
  } catch (e) {
    await stop();
    throw e;
  }
};
