import { LeaseTimingFields, leaseTimingsProblem } from '../../contracts/host/liveness.ts';
import { BaseConfig, ConfigError, loadConfig, resolveNatsUrl } from '../../platform/config.ts';
import { serveHealth } from '../../platform/health.ts';
import { createLogger } from '../../platform/log.ts';
import { initTelemetry } from '../../platform/tracing.ts';
import { connectNats } from '../../platform/nats.ts';
import { provision } from '../../platform/provision.ts';
import { onShutdown } from '../../platform/shutdown.ts';
import { announceReady, exitOnFailure } from '../../platform/ready.ts';
import { CommandService } from './service.ts';


initTelemetry();
const log = createLogger('command');
exitOnFailure(log, 'command service');
const cfg = loadConfig(BaseConfig.extend(LeaseTimingFields));
const problem = leaseTimingsProblem(cfg);
if (problem) throw new ConfigError(`invalid configuration: ${problem}`);
const health = await serveHealth('command', cfg.healthListen, log);
const n = await connectNats(resolveNatsUrl(cfg), 'virtplane-command');
health.watch(n.nc);
await provision(n, cfg.replicas);
const service = new CommandService(n, log, { timings: cfg });
await service.start();
await announceReady(log, 'command service ready');
health.ready();
onShutdown(log, () => n.close(), () => service.stop(), () => health.close());
