import { z } from 'zod';
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
  /**
   * Written by the control plane over an expired lease (conditioned on its revision), so the agent
   * can never renew it again: it must register, and learns that it was declared lost.
   */
  revoked?: { expiredRevision: number; expiredAt: string };
}

export const HEARTBEAT_INTERVAL_MS = 2_000;
/** A host missing renewals this long is not given new domains. */
export const LIVENESS_WINDOW_MS = 8_000;

/**
 * Lease timings, shared by agents and the control plane. An agent fences itself `fenceMs` after the
 * start of its last confirmed renewal; the control plane declares the host lost only once its lease
 * entry is older than `leaseTtlMs` by the server's clock. The margin between the two covers the time
 * fencing takes and the clocks' disagreement, so a lost host's guests are down before anything is
 * restarted elsewhere.
 */
export const LeaseTimingFields = {
  renewMs: z.coerce.number().int().min(50).max(60_000).default(HEARTBEAT_INTERVAL_MS),
  fenceMs: z.coerce.number().int().min(100).max(600_000).default(5_000),
  leaseTtlMs: z.coerce.number().int().min(200).max(900_000).default(LIVENESS_WINDOW_MS),
  leaseMarginMs: z.coerce.number().int().min(100).max(600_000).default(2_000),
};
export const LeaseTimings = z.object(LeaseTimingFields);
export type LeaseTimings = z.infer<typeof LeaseTimings>;

/** What is wrong with a set of timings, or null: checked at start-up by every service that uses them. */
export const leaseTimingsProblem = (t: LeaseTimings): string | null => {
  if (t.leaseTtlMs <= t.fenceMs + t.leaseMarginMs) {
    return `leaseTtlMs (${t.leaseTtlMs}) must be longer than fenceMs + leaseMarginMs (${t.fenceMs} + ${t.leaseMarginMs}), or a host could be declared lost before it has fenced itself`;
  }
  if (t.fenceMs < 2 * t.renewMs) return `fenceMs (${t.fenceMs}) must allow two renewals (at least 2 * renewMs = ${2 * t.renewMs}), or a healthy host fences itself`;
  return null;
};
export const DEFAULT_LEASE_TIMINGS: LeaseTimings = LeaseTimings.parse({});

/** A lease entry written at `writtenAt` (server time) has expired at `now`: the host may be declared lost. */
export const leaseExpired = (writtenAt: number, now: number, t: Pick<LeaseTimings, 'leaseTtlMs'>): boolean => now - writtenAt > t.leaseTtlMs;

/** The subject a lease is written on: a host's agent needs to publish on its own key only. */
export const leaseSubject = (hostId: string): string => `$KV.${BUCKETS.hostLiveness}.${hostId}`;

/** What a registration answers: the lease revision the agent's first renewal is conditioned on. */
export type RegisterReply = {
  hostId: string;
  version: number;
  leaseRevision: number;
  /** The host had been declared lost since its previous lease: its guests may have moved. */
  returned?: boolean;
};

export const renewedLease = (lease: HostLiveness, now: Date, activeDomains: number): HostLiveness => ({
  ...lease,
  at: now.toISOString(),
  activeDomains,
});
