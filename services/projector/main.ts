import { z } from 'zod';
import { BaseConfig, loadConfig, resolveNatsUrl } from '../../platform/config.ts';
import { serveHealth } from '../../platform/health.ts';
import { createLogger } from '../../platform/log.ts';
import { initTelemetry } from '../../platform/tracing.ts';
import { connectNats } from '../../platform/nats.ts';
import { provision } from '../../platform/provision.ts';
import { onShutdown } from '../../platform/shutdown.ts';
import { announceReady, exitOnFailure } from '../../platform/ready.ts';
import { Projector } from './projector.ts';
import { LeaseReader } from './leases.ts';
import { serveQueries } from './queries.ts';
import { serveNetworkQueries } from './network-queries.ts';
import { serveSecretQueries } from './secret-queries.ts';
import { serveStorageQueries } from './storage-queries.ts';
import { serveHostQueries } from './host-queries.ts';


initTelemetry();
const log = createLogger('projector');
exitOnFailure(log, 'projector');
const cfg = loadConfig(BaseConfig.extend({ rebuild: z.stringbool().default(false) }), { rebuild: process.argv.includes('--rebuild') ? 'true' : undefined });
const health = await serveHealth('projector', cfg.healthListen, log);
const n = await connectNats(resolveNatsUrl(cfg), 'virtplane-projector');
health.watch(n.nc);
await provision(n, cfg.replicas);
const projector = new Projector(n, log, { rebuild: cfg.rebuild });
await projector.start();
// A replica joins the query group once it has read the log as it stood: a fresh one answers no stale list.
if (!(await projector.caughtUp())) log.warn('still catching up with the log; answering meanwhile', { seq: projector.lastSeq });
const subs = serveQueries(n, projector, new LeaseReader(n, log.child('leases')), log);
subs.push(...serveNetworkQueries(n, projector, log));
subs.push(...serveSecretQueries(n, projector, log));
subs.push(...serveStorageQueries(n, projector, log));
subs.push(...serveHostQueries(n, projector, log));
// The subscriptions reach the server before anyone is told the queries are served.
await n.nc.flush();
await announceReady(log, 'projector ready', { seq: projector.lastSeq });
health.ready();
onShutdown(
  log,
  () => n.close(),
  () => projector.stop(),
  async () => {
    for (const s of subs) await s.drain();
  },
  () => health.close(),
);
