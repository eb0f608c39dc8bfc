import type { HostCapabilities } from './events.ts';

/** What the command service keeps about each host's liveness, in the `host-liveness` bucket. */
export interface HostLiveness {
  hostId: string;
  instanceId: string;
  at: string;
  activeDomains: number;
  capabilities: HostCapabilities;
}

export const HEARTBEAT_INTERVAL_MS = 5_000;
/** A host missing three heartbeats is not given new domains. */
export const LIVENESS_WINDOW_MS = 3 * HEARTBEAT_INTERVAL_MS;
