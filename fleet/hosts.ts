import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { LeaseTimings } from '../contracts/host/liveness.ts';
import type { DriverDomain } from '../drivers/hypervisor.ts';
import { TestDriver } from '../drivers/test/test-driver.ts';
import type { Logger } from '../platform/log.ts';
import { connectNats, type Nats } from '../platform/nats.ts';
import { HostAgent } from '../services/host-agent/agent.ts';

/**
 * One simulated hypervisor host: the real HostAgent with its own connection, lease, state dir and
 * test driver (guests in memory, so a thousand hosts fit in one process).
 */
export class SimulatedHost {
  /** Lost: its connection was cut and its agent halted, as a host that lost power. */
  lost = false;

  private constructor(
    readonly hostId: string,
    readonly nats: Nats,
    readonly driver: TestDriver,
    readonly agent: HostAgent,
    private readonly stateDir: string,
  ) {}

  static async start(url: string, hostId: string, stateRoot: string, timings: LeaseTimings, log: Logger): Promise<SimulatedHost> {
    const stateDir = join(stateRoot, hostId);
    await mkdir(stateDir, { recursive: true });
    const nats = await connectNats(url, `virtplane-host-agent-${hostId}`);
    const driver = new TestDriver();
    const agent = new HostAgent(nats, { hostId, stateDir, drivers: [driver], timings, ackWaitMs: 15_000 }, log.child(hostId));
    try {
      await agent.start();
    } catch (e) {
      await nats.nc.close();
      throw e;
    }
    return new SimulatedHost(hostId, nats, driver, agent, stateDir);
  }

  guests(): Promise<DriverDomain[]> {
    return this.driver.list();
  }

  /**
   * The host is gone: its connection closes at once (no drain, so the server sees it vanish) and its
   * agent stops renewing. The agent's watchdog still fences the guests when the lease runs out, as a
   * host cut off from the network does, so what the driver runs afterwards shows the fence held.
   */
  async lose(): Promise<void> {
    this.lost = true;
    await this.nats.nc.close();
  }

  async stop(): Promise<void> {
    await this.agent.stop(1000).catch(() => undefined);
    if (!this.nats.nc.isClosed()) await this.nats.nc.close();
    await rm(this.stateDir, { recursive: true, force: true });
  }
}

/** Starts `count` hosts, `concurrency` at a time; `onStarted` sees the running total. */
export const startHosts = async (
  url: string,
  ids: string[],
  stateRoot: string,
  timings: LeaseTimings,
  log: Logger,
  concurrency: number,
  onStarted: (n: number) => void = () => {},
): Promise<SimulatedHost[]> => {
  const hosts: SimulatedHost[] = new Array(ids.length);
  let next = 0;
  let started = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      hosts[i] = await SimulatedHost.start(url, ids[i]!, stateRoot, timings, log);
      onStarted(++started);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return hosts;
};
