import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { HostId } from '../../contracts/ids.ts';
import { selectDrivers } from '../../drivers/select.ts';
import { BaseConfig, loadConfig, resolveNatsUrl } from '../../platform/config.ts';
import { createLogger } from '../../platform/log.ts';
import { initTelemetry } from '../../platform/telemetry.ts';
import { connectNats } from '../../platform/nats.ts';
import { provision } from '../../platform/provision.ts';
import { onShutdown } from '../../platform/shutdown.ts';
import { HostAgent } from './agent.ts';


initTelemetry();
const defaultHostId = hostname().replace(/[^A-Za-z0-9_-]/g, '-') || 'host';
const cfg = loadConfig(
  BaseConfig.extend({
    hostId: HostId.default(defaultHostId),
    stateDir: z.string().optional(),
    /** auto: qemu when qemu-system is installed, plus the test driver for `test` domains. */
    driver: z.enum(['auto', 'test', 'qemu']).default('auto'),
    ackWaitMs: z.coerce.number().int().min(500).default(15_000),
  }),
);
const log = createLogger(`host-agent.${cfg.hostId}`);
const stateDir = cfg.stateDir ?? join(cfg.dataDir, 'hosts', cfg.hostId);
const { drivers, description } = await selectDrivers(cfg.driver, stateDir);
log.info(`hypervisor drivers: ${description}`);
const n = await connectNats(resolveNatsUrl(cfg), `virtplane-host-agent-${cfg.hostId}`);
await provision(n, cfg.replicas);
const agent = new HostAgent(n, { hostId: cfg.hostId, stateDir, drivers, ackWaitMs: cfg.ackWaitMs }, log);
await agent.start();
log.info('host agent ready', { hostId: cfg.hostId, stateDir });
onShutdown(log, () => n.close(), () => agent.stop());
