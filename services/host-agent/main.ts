import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { virtError } from '../../contracts/errors.ts';
import { HostId } from '../../contracts/ids.ts';
import { savePathProblem } from '../../contracts/domain/save-restore.ts';
import type { NetworkView } from '../../contracts/network/views.ts';
import { subjects } from '../../contracts/subjects.ts';
import { selectDrivers } from '../../drivers/select.ts';
import { LeaseTimingFields, leaseTimingsProblem } from '../../contracts/host/liveness.ts';
import { BaseConfig, ConfigError, loadConfig, resolveNatsUrl } from '../../platform/config.ts';
import { serveHealth } from '../../platform/health.ts';
import { createLogger } from '../../platform/log.ts';
import { connectNats } from '../../platform/nats.ts';
import { HOST_AGENT_NEEDS, provision } from '../../platform/provision.ts';
import { call } from '../../platform/rpc.ts';
import { onShutdown } from '../../platform/shutdown.ts';
import { announceReady, exitOnFailure } from '../../platform/ready.ts';
import { initTelemetry } from '../../platform/tracing.ts';
import { HostAgent } from './agent.ts';
import { ConsoleBridge } from './console.ts';
import { NetworkSync } from './network-sync.ts';
import { StorageWorker } from './storage-worker.ts';
import { serveLeaseReads } from './lease-reads.ts';
import { VolumeStreams } from './volume-streams.ts';

initTelemetry();
exitOnFailure(createLogger('host-agent'), 'host agent');
const defaultHostId = hostname().replace(/[^A-Za-z0-9_-]/g, '-') || 'host';
const cfg = loadConfig(
  BaseConfig.extend({
    hostId: HostId.default(defaultHostId),
    stateDir: z.string().optional(),
    /**
     * Where virsh save may write and restore may read images: comma-separated absolute directories
     * (`<stateDir>/save` when unset). Paths elsewhere are refused (SECURITY.md).
     */
    saveDirs: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return undefined;
        const dirs = v.split(',').map((d) => d.trim().replace(/\/+$/, '')).filter((d) => d !== '');
        for (const d of dirs) {
          const problem = d.startsWith('/') ? savePathProblem(d) : `'${d}' is not an absolute directory`;
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }
        return dirs;
      }),
    /** auto: qemu when qemu-system is installed, plus the test driver for `test` domains. */
    driver: z.enum(['auto', 'test', 'qemu']).default('auto'),
    ackWaitMs: z.coerce.number().int().min(500).default(15_000),
    /** Latency of every test-driver operation (fault tests); 0 in normal use. */
    testLatencyMs: z.coerce.number().int().min(0).max(600_000).default(0),
    /** What self-fencing does to running guests when the lease cannot be renewed in time. */
    fencePolicy: z.enum(['pause', 'destroy']).default('pause'),
    /** How often the agent compares what its hypervisor runs with what the log wants, and repairs drift. */
    resyncMs: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
    /** How often a shutdown presses the ACPI power button again while the guest has not powered off. */
    acpiResendMs: z.coerce.number().int().min(100).max(600_000).default(10_000),
    /** A vol-upload or vol-download whose client is silent this long is released (a client killed mid-transfer). */
    volStreamIdleMs: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
    /** How often a console session's two sides say they are there, and how long a silent client keeps the console. */
    consoleHeartbeatMs: z.coerce.number().int().min(50).max(60_000).default(2_000),
    consoleIdleMs: z.coerce.number().int().min(200).max(600_000).default(10_000),
    /** How far a console's output may run ahead of what the client has written out. */
    consoleWindowBytes: z.coerce.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
    ...LeaseTimingFields,
  }),
);
const problem = leaseTimingsProblem(cfg);
if (problem) throw new ConfigError(`invalid configuration: ${problem}`);
const log = createLogger(`host-agent.${cfg.hostId}`);
const stateDir = cfg.stateDir ?? join(cfg.dataDir, 'hosts', cfg.hostId);
const health = await serveHealth('host-agent', cfg.healthListen, log);
const n = await connectNats(resolveNatsUrl(cfg), `virtplane-host-agent-${cfg.hostId}`);
health.watch(n.nc);
await provision(n, cfg.replicas, HOST_AGENT_NEEDS);

/** A guest may join only an active network, as libvirt refuses "network 'x' is not active". */
const lookupNetwork = async (name: string) => {
  const { network } = await call<{ network: NetworkView }>(n.nc, subjects.query('network', 'get'), { network: name });
  if (!network.active) throw virtError('operation-invalid', `network '${name}' is not active`);
  return network.definition;
};
const { drivers, network, description } = await selectDrivers(cfg.driver, stateDir, lookupNetwork, cfg.testLatencyMs, { acpiResendMs: cfg.acpiResendMs }, (message) => log.warn(message));
log.info(`hypervisor drivers: ${description}`);
const runtimeInterfaces = network
  ? async (uuid: string) => {
      const leases = await network.leases();
      // The prefix comes from the network's own address, as libvirt shows it (192.168.122.50/24).
      const prefixes = new Map<string, Map<string, number>>();
      for (const name of new Set(leases.map((l) => l.network))) {
        const def = await lookupNetwork(name).catch(() => undefined);
        prefixes.set(name, new Map(def?.ips.map((ip) => [ip.family, ip.prefix]) ?? []));
      }
      return network
        .listInterfaces()
        .filter((i) => i.domainUuid === uuid)
        .map((i) => {
          const addresses = leases
            .filter((l) => l.mac === i.mac && (!i.network || l.network === i.network))
            .map((l) => {
              const prefix = prefixes.get(l.network)?.get(l.family);
              return { family: l.family, address: l.address, ...(prefix !== undefined ? { prefix } : {}), source: 'lease' as const };
            });
          return {
            mac: i.mac,
            ifname: i.ifname,
            ...(i.bridge ? { bridge: i.bridge } : {}),
            ...(i.network ? { network: i.network } : {}),
            ...(addresses.length ? { addresses } : {}),
          };
        });
    }
  : undefined;
const agent = new HostAgent(
  n,
  { hostId: cfg.hostId, stateDir, drivers, ackWaitMs: cfg.ackWaitMs, timings: cfg, fencePolicy: cfg.fencePolicy, resyncMs: cfg.resyncMs, fenceGuard: drivers.some((d) => d.name === 'qemu'), ...(cfg.saveDirs ? { saveDirs: cfg.saveDirs } : {}), ...(runtimeInterfaces ? { runtimeInterfaces } : {}) },
  log,
);
await agent.start();
// virsh net-dhcp-leases: read from this host's lease files when an operator asks.
const leaseReads = serveLeaseReads(n, cfg.hostId, network, async (name) => (await call<{ network: NetworkView }>(n.nc, subjects.query('network', 'get'), { network: name })).network.definition, log.child('leases'));
// Streams and storage tasks keep out of each other's files.
let streams: VolumeStreams | undefined;
const storage = new StorageWorker(n, { hostId: cfg.hostId, stateDir, ackWaitMs: cfg.ackWaitMs, streamBusy: (p) => streams?.busy(p) ?? false }, log.child('storage'));
streams = new VolumeStreams(
  n,
  { hostId: cfg.hostId, idleMs: cfg.volStreamIdleMs, taskBusy: (p) => storage.busy(p) },
  log.child('volume-streams'),
);
streams.start();
const consoles = new ConsoleBridge(n, { hostId: cfg.hostId, drivers, heartbeatMs: cfg.consoleHeartbeatMs, idleMs: cfg.consoleIdleMs, windowBytes: cfg.consoleWindowBytes }, log.child('console'));
consoles.start();
await storage.start();
// Off the start path: the lease is already held, and reading the views must not hold up readiness.
void storage.autostartPools(agent.instanceId).catch((e: unknown) => log.warn('pool autostart failed; the next agent start asks again', { error: String(e) }));
const networkSync = network ? new NetworkSync(n, network, log.child('network'), { resyncMs: cfg.resyncMs }) : null;
await networkSync?.start();
await announceReady(log, 'host agent ready', { hostId: cfg.hostId, stateDir });
health.ready();
onShutdown(
  log,
  () => n.close(),
  async () => {
    leaseReads.unsubscribe();
    await consoles.stop();
    await networkSync?.stop();
    await streams?.stop();
    await storage.stop();
    await agent.stop();
    await network?.close();
  },
  () => health.close(),
);
