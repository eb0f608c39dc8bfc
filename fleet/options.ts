import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_LEASE_TIMINGS, LeaseTimings, leaseTimingsProblem } from '../contracts/host/liveness.ts';
import type { FleetOptions } from './fleet.ts';

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`must be an integer of at least ${min}`);
  return n;
};
const share = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be a number from 0 to 1');
  return n;
};

export interface RunOptions extends FleetOptions {
  kill: number;
  /** Seconds of steady state (leases renewed, nothing else asked) measured before any host is lost. */
  duration: number;
  json: boolean;
  recoveryTimeoutMs: number;
}

/** The options both `npm run fleet` and `bench/fleet.ts` take. */
export const fleetCommand = (name: string, defaults: { hosts: number; domains: number; kill: number; duration: number }) =>
  new Command(name)
    .option('--hosts <n>', 'simulated hosts, each a real host agent on the test driver', int(1), defaults.hosts)
    .option('--domains <n>', 'domains to define, spread evenly over the hosts', int(0), defaults.domains)
    .option('--ha-share <x>', 'share of each host\'s domains restarted elsewhere when it is lost (all started)', share, 0.1)
    .option('--running-share <x>', 'share of each host\'s other domains started', share, 0.1)
    .option('--kill <n>', 'hosts to lose (connection closed, lease no longer renewed), among those running HA guests', int(0), defaults.kill)
    .option('--duration <s>', 'seconds of steady state measured before losing hosts', int(0), defaults.duration)
    .option('--concurrency <n>', 'commands in flight while populating', int(1), 256)
    .option('--renew-ms <ms>', 'lease renewal interval', int(50), DEFAULT_LEASE_TIMINGS.renewMs)
    .option('--fence-ms <ms>', 'self-fence timeout', int(100), DEFAULT_LEASE_TIMINGS.fenceMs)
    .option('--lease-ttl-ms <ms>', 'lease TTL after which a host is declared lost', int(200), DEFAULT_LEASE_TIMINGS.leaseTtlMs)
    .option('--lease-margin-ms <ms>', 'margin between fencing and loss', int(100), DEFAULT_LEASE_TIMINGS.leaseMarginMs)
    .option('--recovery-timeout <s>', 'how long to wait for lost hosts and their HA guests', int(1), 180)
    .option('--state-root <dir>', 'where agents keep their state dirs (default: /dev/shm when present)')
    .option('--agent-log-level <level>', 'log level of the simulated agents', 'error')
    .option('--json', 'print the result as JSON', false);

export const toRunOptions = (o: Record<string, unknown>, progress: (line: string) => void): RunOptions => {
  const timings = LeaseTimings.parse({ renewMs: o.renewMs, fenceMs: o.fenceMs, leaseTtlMs: o.leaseTtlMs, leaseMarginMs: o.leaseMarginMs });
  const problem = leaseTimingsProblem(timings);
  if (problem) throw new InvalidArgumentError(problem);
  const level = o.agentLogLevel as string;
  if (!['info', 'warn', 'error', 'silent'].includes(level)) throw new InvalidArgumentError(`--agent-log-level: unknown level '${level}'`);
  return {
    hosts: o.hosts as number,
    domains: o.domains as number,
    haShare: o.haShare as number,
    runningShare: o.runningShare as number,
    timings,
    concurrency: o.concurrency as number,
    agentLogLevel: level as RunOptions['agentLogLevel'],
    ...(o.stateRoot ? { stateRoot: o.stateRoot as string } : {}),
    progress,
    kill: o.kill as number,
    duration: o.duration as number,
    json: o.json as boolean,
    recoveryTimeoutMs: (o.recoveryTimeout as number) * 1000,
  };
};
