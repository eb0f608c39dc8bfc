import { existsSync } from 'node:fs';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { ObservedState } from '../../contracts/domain/state.ts';
import { formatDomainXml } from '../../contracts/xml/domain.ts';
import type { OperationOptions } from '../hypervisor.ts';
import { domainDir, withLock, type QemuContext } from './context.ts';
import { SHUTOFF_SAVED, notRunning } from './guest.ts';
import { terminate } from './guest-events.ts';
import { managedSavePath, saveGuestImage, saveGuestState } from './managed-save.ts';
import { during, monitor, queryStatus, save } from './monitor.ts';
import { find } from './reattach.ts';

/**
 * qemuDomainManagedSave: the guest is paused, its state migrated into the domain's save file, and
 * qemu quits, leaving it shut off (saved). A guest already saved (a redelivered task) reports so.
 */
export async function managedSave(ctx: QemuContext, def: DomainDefinition, opts: OperationOptions = {}): Promise<ObservedState> {
  return withLock(ctx, def.uuid, async () => {
    const d = await find(ctx, def.uuid);
    if (!d) {
      if (existsSync(managedSavePath(domainDir(ctx, def.uuid)))) return SHUTOFF_SAVED;
      throw notRunning();
    }
    return during(d, 'managedsave', async () => {
      const qmp = await monitor(ctx, d);
      const status = await queryStatus(ctx, d);
      if (status === 'shutdown') throw notRunning();
      if (status === 'running') await qmp.execute('stop');
      opts.progress?.('saving the guest state');
      try {
        await saveGuestState(qmp, d.dir, opts.signal);
      } catch (e) {
        // Not saved: the guest goes on as it was.
        if (status === 'running') await qmp.execute('cont').catch(() => undefined);
        throw e;
      }
      return terminate(ctx, d, SHUTOFF_SAVED, opts);
    });
  });
}

/**
 * qemuDomainSaveFlags: as managedsave, into the caller's file behind libvirt's header, which
 * records the definition and whether the guest ran. A guest gone with its image in place was saved
 * by an earlier delivery of the same task.
 */
export async function saveTo(ctx: QemuContext, def: DomainDefinition, file: string, opts: OperationOptions = {}): Promise<ObservedState> {
  return withLock(ctx, def.uuid, async () => {
    const d = await find(ctx, def.uuid);
    if (!d) {
      if (existsSync(file)) return SHUTOFF_SAVED;
      throw notRunning();
    }
    return during(d, 'save', async () => {
      const qmp = await monitor(ctx, d);
      const status = await queryStatus(ctx, d);
      if (status === 'shutdown') throw notRunning();
      if (status === 'running') {
        d.rec.savingRunning = true;
        await save(ctx, d);
        await qmp.execute('stop');
      }
      const running = d.rec.savingRunning === true;
      opts.progress?.('saving the guest state');
      try {
        await saveGuestImage(qmp, file, formatDomainXml(def), running, opts.signal);
      } catch (e) {
        if (running) await qmp.execute('cont').catch(() => undefined);
        delete d.rec.savingRunning;
        await save(ctx, d).catch(() => undefined);
        throw e;
      }
      return terminate(ctx, d, SHUTOFF_SAVED, opts);
    });
  });
}
