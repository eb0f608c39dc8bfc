import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { DiskModel, DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import type { DeviceImpact } from './devices.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

/** virsh's disk verbs: given events, when command, then events (contracts/domain/devices.ts). */
const UUID = '7c0e3a52-8f0c-4c53-a1d6-4a0f5d6f7e99';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
type Ev = GivenEvent<DomainEventBody>;

const vda = DiskModel.parse({ source: { file: '/img/root.img' }, target: { dev: 'vda', bus: 'virtio' } });
const hdc = DiskModel.parse({ device: 'cdrom', source: { file: '/iso/a.iso' }, target: { dev: 'hdc', bus: 'ide' }, readonly: true });
const vdb = DiskModel.parse({ source: { file: '/img/data.img' }, target: { dev: 'vdb', bus: 'virtio' } });
const def = DomainDefinition.parse({ name: 'web1', uuid: UUID, memoryKiB: 1024, vcpus: 1, devices: { disks: [vda, hdc] } });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const DEADLINE = new Date(NOW.getTime() + 60_000).toISOString();
const running = { state: 'running', reason: 'booted' } as const;

const defined: Ev = { type: 'DomainDefined', data: { definition: def, hostId: 'h1', placementEpoch: 1, added: true } };
const started: Ev[] = [
  defined,
  { type: 'DomainStartRequested', id: 't-start', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z' } },
  { type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't-start', observed: running } },
];
const attach = (disk: DiskModel, impact: DeviceImpact = {}): DomainCommand => ({ type: 'attach-disk', disk, impact, timeoutMs: 60_000 });
const detach = (ref: string, impact: DeviceImpact = {}): DomainCommand => ({ type: 'detach-disk', ref, impact, timeoutMs: 60_000 });
const media = (ref: string, action: 'eject' | 'insert' | 'update', source?: string, impact: DeviceImpact = { current: true }): DomainCommand => ({
  type: 'change-media',
  ref,
  action,
  ...(source ? { source } : {}),
  impact,
  timeoutMs: 60_000,
});
const targets = (d: DomainDefinition | null) => d?.devices.disks.map((x) => x.target.dev);

describe('attach-disk', () => {
  it('with no flag asks the running guest through its host, carrying the disk', () => {
    spec.given(started).when(attach(vdb), NOW).then([
      { type: 'DomainDiskAttachRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: vdb, persistent: false } },
    ]);
  });

  it('with no flag on a shut off domain is the flagless API on a domain not running', () => {
    spec.given([defined]).when(attach(vdb), NOW).thenThrows('operation-invalid', 'domain is not running');
  });

  it('--current on a shut off domain, and --config, change the definition alone', () => {
    for (const impact of [{ current: true }, { config: true }, { persistent: true }]) {
      const { after } = spec.given([defined]).when(attach(vdb, impact), NOW).then([
        { type: 'DomainDefined', data: { definition: { ...def, devices: { ...def.devices, disks: [vda, hdc, vdb] } }, hostId: 'h1', placementEpoch: 1, added: false } },
      ]);
      expect(targets(after.definition)).toEqual(['vda', 'hdc', 'vdb']);
    }
  });

  it('--persistent on a running domain changes both once the host has plugged it', () => {
    const g = spec.given([...started, { type: 'DomainDiskAttachRequested', id: 't-a', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: vdb, persistent: true } }]);
    const { after } = g.when({ type: 'complete', taskId: 't-a', observed: running }, NOW).then([
      { type: 'DomainOperationCompleted', data: { op: 'attach-disk', taskId: 't-a', observed: running } },
    ]);
    expect(targets(after.definition)).toEqual(['vda', 'hdc', 'vdb']);
    expect(targets(after.nextDefinition)).toEqual(['vda', 'hdc', 'vdb']);
  });

  it('a live-only attach leaves the next boot as it was; a failed one changes nothing', () => {
    const asked: Ev = { type: 'DomainDiskAttachRequested', id: 't-a', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: vdb, persistent: false } };
    const { after } = spec.given([...started, asked]).when({ type: 'complete', taskId: 't-a', observed: running }, NOW).then([
      { type: 'DomainOperationCompleted', data: { op: 'attach-disk', taskId: 't-a', observed: running } },
    ]);
    expect(targets(after.definition)).toEqual(['vda', 'hdc', 'vdb']);
    expect(targets(after.nextDefinition)).toEqual(['vda', 'hdc']);
    const failed = spec.given([...started, asked]).when({ type: 'fail', taskId: 't-a', error: { code: 'operation-failed', message: 'no' }, observed: running }, NOW).then([
      { type: 'DomainOperationFailed', data: { op: 'attach-disk', taskId: 't-a', error: { code: 'operation-failed', message: 'no' }, observed: running } },
    ]);
    expect(targets(failed.after.definition)).toEqual(['vda', 'hdc']);
  });

  it('a target the domain has is refused in libvirt words: config operation-invalid, live operation-failed', () => {
    spec.given([defined]).when(attach({ ...vdb, target: { dev: 'vda', bus: 'virtio' } }, { config: true }), NOW).thenThrows('operation-invalid', 'target vda already exists');
    spec.given(started).when(attach({ ...vdb, target: { dev: 'vda', bus: 'virtio' } }), NOW).thenThrows('operation-failed', 'target vda already exists');
  });

  it('a transient domain has no persistent config to change', () => {
    spec.given([{ ...defined, data: { ...defined.data, transient: true } }, ...started.slice(1)]).when(attach(vdb, { config: true }), NOW).thenThrows('operation-invalid', 'transient domains do not have any persistent config');
  });

  it('a second attach while one is in flight waits its turn', () => {
    spec.given([...started, { type: 'DomainDiskAttachRequested', id: 't-a', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: vdb, persistent: false } }])
      .when(attach({ ...vdb, target: { dev: 'vdc', bus: 'virtio' } }), NOW)
      .thenThrows('operation-invalid', /cannot acquire state change lock/);
  });
});

describe('detach-disk', () => {
  it('finds the disk by target or by source path, as virsh does', () => {
    for (const ref of ['vda', '/img/root.img']) {
      spec.given(started).when(detach(ref), NOW).then([
        { type: 'DomainDiskDetachRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, target: 'vda', persistent: false } },
      ]);
    }
  });

  it('an unknown target is virsh\'s own error, before any flag is looked at', () => {
    spec.given([defined]).when(detach('vdz'), NOW).thenThrows('invalid-arg', 'No disk found whose source path or target is vdz');
    spec.given(started).when(detach('vdz', { config: true }), NOW).thenThrows('invalid-arg', 'No disk found whose source path or target is vdz');
  });

  it('--config takes it out of the definition; the running guest keeps it until it stops', () => {
    const { after } = spec.given(started).when(detach('vda', { config: true }), NOW).then([
      { type: 'DomainDefined', data: { definition: { ...def, devices: { ...def.devices, disks: [hdc] } }, hostId: 'h1', placementEpoch: 1, added: false } },
    ]);
    expect(targets(after.definition)).toEqual(['vda', 'hdc']);
    expect(targets(after.nextDefinition)).toEqual(['hdc']);
  });

  it('a disk only the running guest has: --config says no target device', () => {
    const g = [...started, { type: 'DomainDiskAttachRequested', id: 't-a', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: vdb, persistent: false } } as Ev, { type: 'DomainOperationCompleted', data: { op: 'attach-disk', taskId: 't-a', observed: running } } as Ev];
    spec.given(g).when({ type: 'detach-disk', ref: 'vdb', exact: true, impact: { config: true }, timeoutMs: 60_000 }, NOW).thenThrows('operation-failed', 'no target device vdb');
    const { after } = spec.given([...g, { type: 'DomainDiskDetachRequested', id: 't-d', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, target: 'vdb', persistent: false } }])
      .when({ type: 'complete', taskId: 't-d', observed: running }, NOW)
      .then([{ type: 'DomainOperationCompleted', data: { op: 'detach-disk', taskId: 't-d', observed: running } }]);
    expect(targets(after.definition)).toEqual(['vda', 'hdc']);
  });
});

describe('change-media', () => {
  it('finds only a cdrom or floppy', () => {
    spec.given(started).when(media('vda', 'eject'), NOW).thenThrows('invalid-arg', 'No disk found whose source path or target is vda');
  });

  it('ejects a running guest\'s cdrom through its host, by target or media path', () => {
    const { source: _, ...ejected } = hdc;
    for (const ref of ['hdc', '/iso/a.iso']) {
      spec.given(started).when(media(ref, 'eject'), NOW).then([
        { type: 'DomainDiskUpdateRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: ejected, persistent: false } },
      ]);
    }
  });

  it('virsh\'s checks: no media to eject, media already in, nothing to insert', () => {
    const { source: _, ...empty } = hdc;
    const noMedia = { ...def, devices: { ...def.devices, disks: [vda, empty] } };
    const g: Ev[] = [{ type: 'DomainDefined', data: { definition: noMedia, hostId: 'h1', placementEpoch: 1, added: true } }];
    spec.given(g).when(media('hdc', 'eject'), NOW).thenThrows('invalid-arg', "The disk device 'hdc' doesn't have media");
    spec.given([defined]).when(media('hdc', 'insert', '/iso/b.iso'), NOW).thenThrows('invalid-arg', "The disk device 'hdc' already has media");
    spec.given(g).when(media('hdc', 'insert'), NOW).thenThrows('invalid-arg', 'No source is specified for inserting media');
    const { after } = spec.given(g).when(media('hdc', 'insert', '/iso/b.iso'), NOW).then([
      { type: 'DomainDefined', data: { definition: { ...noMedia, devices: { ...noMedia.devices, disks: [vda, { ...empty, source: { file: '/iso/b.iso' } }] } }, hostId: 'h1', placementEpoch: 1, added: false } },
    ]);
    expect(after.definition?.devices.disks[1]?.source?.file).toBe('/iso/b.iso');
  });

  it('update-device may not change a non-removable disk\'s source on a running guest', () => {
    spec.given(started).when({ type: 'update-disk', disk: { ...vda, source: { file: '/x' } }, impact: { live: true }, timeoutMs: 60_000 }, NOW)
      .thenThrows('operation-unsupported', "disk source path cannot be changed for disk of type 'disk'");
    spec.given([defined]).when({ type: 'update-disk', disk: vdb, impact: { config: true }, timeoutMs: 60_000 }, NOW).thenThrows('invalid-arg', "target vdb doesn't exist.");
  });
});

describe('observe-disks (the resync)', () => {
  const observe = (disks: DiskModel[]): DomainCommand => ({ type: 'observe-disks', disks });
  it('the live definition follows the disks the running guest has; the next boot keeps its own', () => {
    const { after } = spec.given(started).when(observe([vda, vdb]), NOW).then([{ type: 'DomainDisksObserved', data: { added: [vdb], removed: ['hdc'] } }]);
    expect(targets(after.definition)).toEqual(['vda', 'vdb']);
    expect(targets(after.nextDefinition)).toEqual(['vda', 'hdc']);
  });

  it('says nothing when they agree, for a guest not running, or while an operation is in flight', () => {
    spec.given(started).when(observe([hdc, vda]), NOW).then([]);
    spec.given([defined]).when(observe([vda]), NOW).then([]);
    spec.given([...started, { type: 'DomainDiskAttachRequested', id: 't-a', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, disk: vdb, persistent: false } }]).when(observe([vda, hdc, vdb]), NOW).then([]);
  });
});
