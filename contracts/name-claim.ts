import { z } from 'zod';
import { virtError } from './errors.ts';

/**
 * Names are unique per scope through a claim on the name's own subject (services/command/name-claims.ts
 * holds the protocol and the argument why it is safe). The part the deciders own: a define carries the
 * stream sequence of the claim it relies on, and a claim can be revoked on its holder's own subject
 * before anyone takes the name over. A define whose claim was revoked is refused, so the holder's
 * define and the takeover can never both land.
 */

/** Recorded on the holder's aggregate subject, conditioned on the version the taker saw. */
export const NameClaimRevoked = z.object({
  type: z.literal('NameClaimRevoked'),
  data: z.object({ name: z.string(), claimSeq: z.number().int().positive() }),
});
export type NameClaimRevoked = z.infer<typeof NameClaimRevoked>;

/**
 * Claims of one uuid only grow (each is a later stream sequence), so remembering the newest revoked
 * one is enough: a define relying on that claim or an older one is refused, and a refusal is always
 * safe (the holder claims again and gets a newer sequence).
 */
export interface ClaimFence {
  /** The newest claim sequence revoked on this aggregate; 0 when none was. */
  revokedClaimsUpTo?: number;
}

export const revokedUpTo = (s: ClaimFence): number => s.revokedClaimsUpTo ?? 0;

export const isRevoked = (s: ClaimFence, claimSeq: number): boolean => claimSeq <= revokedUpTo(s);

/** Refuses a define whose name claim was revoked since it was made. */
export const requireLiveClaim = (s: ClaimFence, claimSeq: number, scope: string, name: string): void => {
  if (isRevoked(s, claimSeq)) {
    throw virtError('conflict', `${scope} name '${name}' was taken over by another define while this one was in flight`, { claimSeq });
  }
};

export const applyRevocation = <S extends ClaimFence>(s: S, e: NameClaimRevoked): S => ({
  ...s,
  revokedClaimsUpTo: Math.max(revokedUpTo(s), e.data.claimSeq),
});
