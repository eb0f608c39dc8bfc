import { BaseConfig, loadConfig, resolveNatsUrl } from '../../platform/config.ts';
import { createLogger } from '../../platform/log.ts';
import { initTelemetry } from '../../platform/telemetry.ts';
import { connectNats } from '../../platform/nats.ts';
import { provision } from '../../platform/provision.ts';
import { onShutdown } from '../../platform/shutdown.ts';
import { CommandService } from './service.ts';


initTelemetry();
const log = createLogger('command');
const cfg = loadConfig(BaseConfig);
const n = await connectNats(resolveNatsUrl(cfg), 'virtplane-command');
await provision(n, cfg.replicas);
const service = new CommandService(n, log);
await service.start();
log.info('command service ready');
onShutdown(log, () => n.close(), () => service.stop());
