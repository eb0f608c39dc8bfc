import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { stamp, type CommandMeta } from '../../contracts/envelope.ts';
import { virtError } from '../../contracts/errors.ts';
import { isRevoked, type ClaimFence, type NameClaimRevoked } from '../../contracts/name-claim.ts';
import { subjects } from '../../contracts/subjects.ts';
import { loadConfig } from '../../platform/config.ts';
import { ConcurrencyError, type EventStore } from '../../platform/event-store.ts';

/**
 * Names are unique per scope (domains, networks, pools) across any number of command-service
 * replicas. The protocol, for a define of uuid U under name N:
 *
 *   1. Read the last claim on N's subject `ev.name.<scope>.<N>`: holder H at stream sequence C.
 *      - none: append a claim with expected sequence 0.
 *      - H = U: keep C, unless C was revoked on U's own subject; then claim anew over it (expected C).
 *      - H holds N (exists under N, read fresh from the log): refuse.
 *      - C was revoked on H's subject already: claim over it (expected C).
 *      - otherwise H may have a define in flight relying on C. While the claim is young (and H never
 *        defined N since), refuse. Afterwards fence H: append `NameClaimRevoked{N, C}` on H's own
 *        subject with H's observed version as expected version, then claim (expected C).
 *   2. Define U with `claimSeq` = the sequence of U's claim. The append is conditioned on U's version
 *      and the decider refuses a define whose claim was revoked (contracts/name-claim.ts).
 *
 * Why two aggregates can never hold N at once (safety uses no clock):
 *   - The claims on N form a chain: every claim is appended with the previous one's sequence as
 *     expected sequence, so they are totally ordered and none is skipped.
 *   - The chain moves from H to another uuid only after C was revoked on H's subject, and that revoke
 *     landed at a version of H at which H did not hold N (it is conditioned on the version read).
 *   - H's define relying on C and the revoke of C are both conditional appends on H's subject. If the
 *     define lands first, the revoke's expected version is stale, the taker reads again, sees H hold N
 *     and refuses. If the revoke lands first, the define's append fails, it is decided again against
 *     fresh state, and the decider refuses it because C is revoked. So after the chain has moved past
 *     C, H can only define N again with a newer claim of its own, which needs the chain to come back.
 *   - Hence while H holds N, N's last claim is H's and stays H's: no other uuid's define can rely on a
 *     live claim for N, and two holders at once would each have to be the last claimant.
 *   - The same covers an undefined H re-defining under N while someone takes N over (the fence is on
 *     H's subject, where the re-define also appends), and a crash anywhere: a crash between claim and
 *     define leaves a claim that ages and is then fenced and taken over; a crash between fence and
 *     claim leaves a revoked claim anyone, H included, may claim over at once.
 *
 * Liveness only: "young" is measured against the claim's own timestamp, so a define in flight is not
 * fenced by its racing rivals (they are refused and the first claimant wins), while a claimant that
 * crashed holds the name for at most the grace period.
 *
 * A refused define appends nothing: rivals of a young claim or of a live holder are refused before any
 * append. Only a takeover of an abandoned or spent claim writes the fence before its own claim, and
 * it can lose the claim to a rival taker after the fence; that fence is harmless (it only fences a
 * claim nobody could still use).
 */

/** What the claim protocol needs to know of a holder, read fresh from the log. */
export type ClaimHolderState = ClaimFence & { exists: boolean; name: string; version: number };

const ClaimConfig = z.object({
  /** How long a claim whose define has not landed is taken to be in flight, in milliseconds. */
  nameClaimGraceMs: z.coerce.number().int().min(0).max(3_600_000).default(15_000),
});

const MAX_ATTEMPTS = 20;

export class NameClaims {
  private readonly graceMs: number;

  constructor(
    private readonly store: EventStore,
    private readonly scope: 'domain' | 'network' | 'pool',
    opts: { graceMs?: number } = {},
  ) {
    this.graceMs = opts.graceMs ?? loadConfig(ClaimConfig).nameClaimGraceMs;
  }

  /** Names this replica has looked up or claimed; callers check an answer against the aggregate. */
  private readonly known = new Map<string, string>();

  /**
   * The uuid the name belongs to, from memory when it was seen before. A remembered answer can be
   * stale (the name moved on another replica): the caller checks it, and `forget`s it when wrong.
   */
  async uuidOf(name: string): Promise<{ uuid: string; remembered: boolean } | null> {
    const remembered = this.known.get(name);
    if (remembered) return { uuid: remembered, remembered: true };
    const holder = await this.holder(name);
    if (!holder) return null;
    this.known.set(name, holder.uuid);
    return { uuid: holder.uuid, remembered: false };
  }

  remember(name: string, uuid: string): void {
    this.known.set(name, uuid);
  }

  forget(name: string): void {
    this.known.delete(name);
  }

  async holder(name: string): Promise<{ uuid: string; seq: number; at: number } | null> {
    const last = await this.store.last(subjects.nameClaim(this.scope, name));
    const event = last?.events[0];
    const data = event?.data as { uuid?: string } | undefined;
    return last && event && data?.uuid ? { uuid: data.uuid, seq: last.seq, at: Date.parse(event.time) } : null;
  }

  /**
   * Claims `name` for `uuid` and returns the claim's stream sequence, which the define must carry.
   * `load` reads an aggregate of this scope fresh from the log.
   */
  async claim(
    name: string,
    uuid: string,
    meta: CommandMeta,
    load: (uuid: string) => Promise<ClaimHolderState>,
    /**
     * The claimant is new (not in the log) and this replica knows nothing of the name: the first
     * attempt claims with expected sequence 0 without reading N's subject first. That append only
     * lands when N has no claim at all, as step 1 would have found; otherwise it fails and the name is
     * read as usual.
     */
    opts: { likelyFree?: boolean } = {},
  ): Promise<number> {
    const what = `${this.scope} '${name}'`;
    const skipRead = (opts.likelyFree ?? false) && !this.known.has(name);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = attempt === 0 && skipRead ? null : await this.holder(name);
      try {
        if (!current) return await this.append(name, uuid, meta, 0);
        const held = await load(current.uuid);
        const revoked = isRevoked(held, current.seq);
        if (current.uuid === uuid) return revoked ? await this.append(name, uuid, meta, current.seq) : current.seq;
        if (held.exists && held.name === name) throw virtError('operation-failed', `${what} already exists with uuid ${current.uuid}`);
        if (!revoked) {
          // Its define landed after the claim and it has left the name since: no define is in flight
          // on this claim, though one may start (a re-define); the fence settles that race.
          const spent = held.name === name && held.version > current.seq;
          const age = meta.now.getTime() - current.at;
          if (!spent && age < this.graceMs) {
            throw virtError('conflict', `${what} is being defined by another request (uuid ${current.uuid}); try again`, {
              holder: current.uuid,
            });
          }
          await this.revoke(name, current.uuid, current.seq, held.version, meta);
        }
        return await this.append(name, uuid, meta, current.seq);
      } catch (e) {
        // The name or the holder moved while we looked: look again.
        if (!(e instanceof ConcurrencyError)) throw e;
      }
    }
    throw virtError('conflict', `could not claim ${what}: too much contention`);
  }

  private async append(name: string, uuid: string, meta: CommandMeta, expected: number): Promise<number> {
    const events = stamp('name', `${this.scope}:${name}`, meta, [{ type: 'NameClaimed', data: { uuid } }], randomUUID);
    // The message id names the claim it replaces: a retried command re-claims over a newer one.
    const res = await this.store.append(subjects.nameClaim(this.scope, name), `${meta.commandId}:claim:${expected}`, events, expected);
    return res.version;
  }

  /** The fence: recorded on the holder's own subject, only if the holder is still where it was seen. */
  private async revoke(name: string, holder: string, claimSeq: number, holderVersion: number, meta: CommandMeta): Promise<void> {
    const body: NameClaimRevoked = { type: 'NameClaimRevoked', data: { name, claimSeq } };
    const events = stamp(this.scope, holder, meta, [body], randomUUID);
    await this.store.append(subjects.aggregate(this.scope, holder), `${meta.commandId}:revoke:${claimSeq}`, events, holderVersion);
  }
}
