import { BUCKETS } from '../subjects.ts';
import type { HostCapabilities } from './events.ts';

/**
 * A host's lease, the `host-liveness` bucket's entry under its host id. The command service writes
 * it when the host registers; from then on the agent renews it itself, each renewal one write
 * conditioned on the revision it last wrote, so a renewal never overwrites a lease someone else
 * wrote (a newer registration, or a bucket that lost the entry): it fails, and the agent registers anew.
 */
export interface HostLiveness {
  hostId: string;
  instanceId: string;
  /** When the lease was last renewed. */
  at: string;
  activeDomains: number;
  capabilities: HostCapabilities;
}

export const HEARTBEAT_INTERVAL_MS = 5_000;
/** A host missing three renewals is not given new domains. */
export const LIVENESS_WINDOW_MS = 3 * HEARTBEAT_INTERVAL_MS;

/** The subject a lease is written on: a host's agent needs to publish on its own key only. */
export const leaseSubject = (hostId: string): string => `$KV.${BUCKETS.hostLiveness}.${hostId}`;

/** What a registration answers: the lease revision the agent's first renewal is conditioned on. */
export type RegisterReply = {
  hostId: string;
  version: number;
  leaseRevision: number;
};

export const renewedLease = (lease: HostLiveness, now: Date, activeDomains: number): HostLiveness => ({
  ...lease,
  at: now.toISOString(),
  activeDomains,
});
