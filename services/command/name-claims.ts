import { randomUUID } from 'node:crypto';
import { stamp, type CommandMeta } from '../../contracts/envelope.ts';
import { virtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import { ConcurrencyError, type EventStore } from '../../platform/event-store.ts';

/**
 * Names are unique across the fleet. A name belongs to whichever uuid last claimed it on the name's
 * own subject, as long as that uuid still exists under that name; any other claim is stale and may be
 * taken over, so an undefine needs no separate release and a crash between claim and define leaks
 * nothing.
 */
export class NameClaims {
  constructor(
    private readonly store: EventStore,
    private readonly scope: 'domain' | 'network' | 'pool',
  ) {}

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

  async holder(name: string): Promise<{ uuid: string; seq: number } | null> {
    const last = await this.store.last(subjects.nameClaim(this.scope, name));
    const data = last?.events[0]?.data as { uuid?: string } | undefined;
    return last && data?.uuid ? { uuid: data.uuid, seq: last.seq } : null;
  }

  /**
   * Claims `name` for `uuid`. The first attempt assumes a name never used (no look-up); only when
   * that loses does it read who holds the name.
   */
  async claim(name: string, uuid: string, meta: CommandMeta, holds: (uuid: string, name: string) => Promise<boolean>): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = attempt === 0 ? null : await this.holder(name);
      if (current?.uuid === uuid) return;
      if (current && (await holds(current.uuid, name))) {
        throw virtError('operation-failed', `${this.scope} '${name}' already exists with uuid ${current.uuid}`);
      }
      const events = stamp('name', `${this.scope}:${name}`, meta, [{ type: 'NameClaimed', data: { uuid } }], randomUUID);
      try {
        await this.store.append(subjects.nameClaim(this.scope, name), `${meta.commandId}:claim`, events, current?.seq ?? 0);
        return;
      } catch (e) {
        if (!(e instanceof ConcurrencyError)) throw e;
      }
    }
    throw virtError('conflict', `could not claim ${this.scope} name '${name}': too much contention`);
  }
}
