import type { SnapshotCreateRequest, SnapshotCurrentRequest, SnapshotDeleteRequest, SnapshotRevertRequest } from '../../contracts/domain/snapshots.ts';
import { DEFAULT_TIMEOUT_MS } from '../../contracts/domain/commands.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { parseSnapshotXml } from '../../contracts/xml/snapshot.ts';
import type { Accepted, DomainCommands } from './domain-commands.ts';

/** virsh snapshot-create(-as), snapshot-revert and snapshot-delete: decided against the domain's log. */
export class SnapshotCommands {
  constructor(private readonly domains: DomainCommands) {}

  create(req: SnapshotCreateRequest, meta: CommandMeta): Promise<Accepted> {
    // A document is read before anything is decided: a hostile or malformed one changes nothing.
    const doc = req.xml !== undefined ? parseSnapshotXml(req.xml) : { name: req.name, description: req.description, disks: req.disks };
    return this.domains.run(req.domain, meta, {
      type: 'snapshot-create',
      ...(doc.name !== undefined ? { name: doc.name } : {}),
      ...(doc.description ? { description: doc.description } : {}),
      ...(req.diskOnly ? { diskOnly: true } : {}),
      ...(doc.disks?.length ? { disks: doc.disks } : {}),
      timeoutMs: timeout(req.timeoutSeconds, 'snapshot-create'),
    });
  }

  revert(req: SnapshotRevertRequest, meta: CommandMeta): Promise<Accepted> {
    return this.domains.run(req.domain, meta, {
      type: 'snapshot-revert',
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...(req.running ? { running: true } : {}),
      ...(req.paused ? { paused: true } : {}),
      timeoutMs: timeout(req.timeoutSeconds, 'snapshot-revert'),
    });
  }

  setCurrent(req: SnapshotCurrentRequest, meta: CommandMeta): Promise<Accepted> {
    return this.domains.run(req.domain, meta, { type: 'snapshot-set-current', name: req.name });
  }

  delete(req: SnapshotDeleteRequest, meta: CommandMeta): Promise<Accepted> {
    return this.domains.run(req.domain, meta, {
      type: 'snapshot-delete',
      ...(req.name !== undefined ? { name: req.name } : {}),
      ...(req.children ? { children: true } : {}),
      ...(req.childrenOnly ? { childrenOnly: true } : {}),
      ...(req.metadata ? { metadata: true } : {}),
      timeoutMs: timeout(req.timeoutSeconds, 'snapshot-delete'),
    });
  }
}

const timeout = (seconds: number | undefined, op: 'snapshot-create' | 'snapshot-revert' | 'snapshot-delete'): number =>
  seconds !== undefined ? seconds * 1000 : DEFAULT_TIMEOUT_MS[op];
