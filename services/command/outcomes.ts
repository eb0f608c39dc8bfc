import type { DomainAggregate } from '../../contracts/domain/decider.ts';
import type { DomainEventBody } from '../../contracts/domain/events.ts';
import { toDomainView } from '../../contracts/view-of.ts';
import type { CommandOutcome } from '../../contracts/views.ts';
import type { DeadlineKeeper } from './deadlines.ts';
import type { Accepted } from './domain-commands.ts';
import type { Repository } from './repository.ts';

/**
 * A command that asked to wait (`waitMs`) is answered once the host's outcome is recorded, with the
 * domain as it then stands: the caller need not ask the views and wait there, which costs a request
 * and its reply through the server (4 messages) and a round trip. The deadline keeper already folds
 * every domain commit in this process, so it sees the outcome as soon as it is in the log; the
 * domain then comes from the repository's cache when this process recorded the outcome (it usually
 * does: the host reports to the same service), read otherwise. What the views show follows the same
 * log; a caller that reads them afterwards and must see this outcome asks for its version.
 */
export class Outcomes {
  constructor(
    private readonly keeper: DeadlineKeeper,
    private readonly domains: Repository<DomainAggregate, DomainEventBody>,
  ) {}

  /** A command handler whose reply waits for the outcome when its request asks to (`waitMs`). */
  waiting<R extends { waitMs?: number | undefined }, M>(handle: (req: R, meta: M) => Promise<Accepted>) {
    return async (req: R, meta: M) => this.of(await handle(req, meta), req.waitMs);
  }

  async of(accepted: Accepted, waitMs: number | undefined): Promise<Accepted & { outcome?: CommandOutcome }> {
    if (!waitMs || !accepted.taskId) return accepted;
    if (!(await this.keeper.settled(accepted.taskId, accepted.version, waitMs))) return accepted;
    const last = this.keeper.lastCommitOf(accepted.domainId);
    const s = last === undefined ? await this.domains.load(accepted.domainId) : await this.domains.loadAsOf(accepted.domainId, last);
    return { ...accepted, outcome: { domain: s.exists ? toDomainView(s, new Date().toISOString()) : null } };
  }
}
