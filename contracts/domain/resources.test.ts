import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import { currentVcpus, type ResourceChange } from './resources.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

const UUID = '0b7f6c1e-5d2a-4e3b-9c8d-7a6b5c4d3e2f';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const NOW = new Date('2025-01-01T00:10:00.000Z');
type Ev = GivenEvent<DomainEventBody>;

// The domain of the side-by-side runs with virsh: <memory>1000000, <currentMemory>600000, <vcpu current='2'>3.
const def = (type = 'test') => DomainDefinition.parse({ name: 'r1', uuid: UUID, type, memoryKiB: 1_000_000, currentMemoryKiB: 600_000, vcpus: 3, vcpu: { current: 2 } });
const defined = (type = 'test'): Ev => ({ type: 'DomainDefined', data: { definition: def(type), hostId: 'h1', placementEpoch: 1, added: true } });
const running = (type = 'test'): Ev[] => [
  defined(type),
  { type: 'DomainStartRequested', id: 't1', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z' } },
  { type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't1', observed: { state: 'running', reason: 'booted' } } },
];
/** The state after whatever the decider recorded. */
const after = (w: { decided(): DomainEventBody[]; then(e: DomainEventBody[]): { after: ReturnType<typeof initialDomainState> } }) => w.then(w.decided()).after;
const set = (change: ResourceChange, live = false, config = false): DomainCommand => ({ type: 'set-resources', change, live, config });

describe('setmem, setmaxmem, setvcpus on the persistent definition', () => {
  it('setmem --config below the maximum; above it is refused in libvirt words', () => {
    const { after } = spec.given([defined()]).when(set({ kind: 'memory', kib: 700_000 }, false, true), NOW).then([{ type: 'DomainResourcesSet', data: { change: { kind: 'memory', kib: 700_000 }, live: false, config: true } }]);
    expect(after.definition?.currentMemoryKiB).toBe(700_000);
    spec.given([defined()]).when(set({ kind: 'memory', kib: 2_000_000 }, false, true), NOW).thenThrows('invalid-arg', 'cannot set memory higher than max memory');
  });

  it('setmaxmem below the current memory takes the current memory down with it', () => {
    const { after } = spec.given([defined()]).when(set({ kind: 'max-memory', kib: 500_000 }), NOW).then([{ type: 'DomainResourcesSet', data: { change: { kind: 'max-memory', kib: 500_000 }, live: false, config: true } }]);
    expect([after.definition?.memoryKiB, after.definition?.currentMemoryKiB]).toEqual([500_000, 500_000]);
  });

  it('setvcpus --config within the maximum; --maximum moves the maximum and keeps current within it', () => {
    // All three online: libvirt leaves `current` out once it equals the maximum.
    const all = after(spec.given([defined()]).when(set({ kind: 'vcpus', count: 3 }, false, true), NOW)).definition!;
    expect([currentVcpus(all), all.vcpu?.current]).toEqual([3, undefined]);
    spec.given([defined()]).when(set({ kind: 'vcpus', count: 5 }, false, true), NOW).thenThrows('invalid-arg', 'requested cpu amount exceeds maximum (5 > 3)');
    const down = after(spec.given([defined()]).when(set({ kind: 'vcpus', count: 2, maximum: true }, false, true), NOW)).definition!;
    // <vcpu placement='static'>2</vcpu>: current equals the maximum and is left out.
    expect([down.vcpus, down.vcpu?.current]).toEqual([2, undefined]);
    const up = after(spec.given([defined()]).when(set({ kind: 'vcpus', count: 4, maximum: true }, false, true), NOW)).definition!;
    expect([up.vcpus, up.vcpu?.current]).toEqual([4, 2]);
  });

  it('a definition from XML is shown from the model afterwards, not from the stale document', () => {
    const withXml: Ev = { type: 'DomainDefined', data: { definition: { ...def(), xml: '<domain/>' }, hostId: 'h1', placementEpoch: 1, added: true } };
    expect(after(spec.given([withXml]).when(set({ kind: 'memory', kib: 1000 }), NOW)).definition?.xml).toBeUndefined();
  });
});

describe('live changes and scope', () => {
  it('on a running test domain neither flag means live: the next boot keeps its values', () => {
    const live = spec.given(running()).when(set({ kind: 'memory', kib: 500_000 }), NOW).then([{ type: 'DomainResourcesSet', data: { change: { kind: 'memory', kib: 500_000 }, live: true, config: false } }]).after;
    expect(live.definition?.currentMemoryKiB).toBe(500_000);
    expect(live.nextDefinition?.currentMemoryKiB).toBe(600_000);
    const cfg = after(spec.given(running()).when(set({ kind: 'vcpus', count: 3 }, false, true), NOW));
    expect([currentVcpus(cfg.definition!), currentVcpus(cfg.nextDefinition!)]).toEqual([2, 3]);
  });

  it("refuses what libvirt refuses, with its words", () => {
    spec.given([defined()]).when(set({ kind: 'memory', kib: 100 }, true), NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given(running()).when(set({ kind: 'max-memory', kib: 2_000_000 }), NOW).thenThrows('operation-invalid', 'cannot resize the maximum memory on an active domain');
    spec.given(running()).when(set({ kind: 'memory', kib: 2_000_000 }), NOW).thenThrows('invalid-arg', 'cannot set memory higher than max memory');
    spec.given([...running(), { type: 'DomainUndefined', data: { removed: false } }]).when(set({ kind: 'memory', kib: 1000 }, false, true), NOW).thenThrows('operation-invalid', 'cannot change persistent config of a transient domain');
    spec.given([]).when(set({ kind: 'memory', kib: 1000 }), NOW).thenThrows('no-domain', /^Domain not found/);
  });

  it("a running qemu guest's memory changes through its host's balloon: the definitions once it has", () => {
    const [intent] = spec.given(running('kvm')).when(set({ kind: 'memory', kib: 500_000 }, true, true), NOW).decided();
    expect(intent).toMatchObject({ type: 'DomainMemorySetRequested', data: { memoryKiB: 500_000, persistent: true, hostId: 'h1' } });
    const pending = after(spec.given(running('kvm')).when(set({ kind: 'memory', kib: 500_000 }, true, true), NOW));
    expect(pending.pending).toMatchObject({ op: 'set-memory', memoryKiB: 500_000 });
    expect(pending.definition?.currentMemoryKiB).toBe(600_000);
    const done = spec.given([...running('kvm'), { type: 'DomainMemorySetRequested', id: 't2', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z', memoryKiB: 500_000 } }]);
    const completed = after(done.when({ type: 'complete', taskId: 't2', observed: { state: 'running', reason: 'booted' } }, NOW));
    expect([completed.definition?.currentMemoryKiB, completed.nextDefinition?.currentMemoryKiB, completed.pending]).toEqual([500_000, 600_000, null]);
    spec.given(running('kvm')).when(set({ kind: 'memory', kib: 2_000_000 }, true), NOW).thenThrows('invalid-arg', 'cannot set memory higher than max memory');
    expect(after(spec.given(running('kvm')).when(set({ kind: 'memory', kib: 500_000 }, false, true), NOW)).nextDefinition?.currentMemoryKiB).toBe(500_000);
  });

  it("a running qemu guest's vCPUs change through its host's hot-plug: the definitions once it has, the maximum never live", () => {
    const base = running('kvm');
    const [intent] = spec.given(base).when(set({ kind: 'vcpus', count: 1 }, true), NOW).decided();
    expect(intent).toMatchObject({ type: 'DomainVcpusSetRequested', data: { vcpus: 1, persistent: false, hostId: 'h1' } });
    const pending = after(spec.given(base).when(set({ kind: 'vcpus', count: 1 }, true, true), NOW));
    expect(pending.pending).toMatchObject({ op: 'set-vcpus', vcpus: 1, persistent: true });
    // Nothing changes before the host has done it.
    expect(currentVcpus(pending.definition!)).toBe(2);
    const asked = { type: 'DomainVcpusSetRequested', id: 't3', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z', vcpus: 1 } } as const;
    const done = after(spec.given([...base, asked]).when({ type: 'complete', taskId: 't3', observed: { state: 'running', reason: 'booted' } }, NOW));
    expect([currentVcpus(done.definition!), currentVcpus(done.nextDefinition!), done.pending]).toEqual([1, 2, null]);
    const failed = after(spec.given([...base, asked]).when({ type: 'fail', taskId: 't3', error: { code: 'operation-unsupported', message: 'x' } }, NOW));
    expect(currentVcpus(failed.definition!)).toBe(2);
    // The count it already has is recorded at once, as libvirt returns at once.
    spec.given(base).when(set({ kind: 'vcpus', count: 2 }, true), NOW).then([{ type: 'DomainResourcesSet', data: { change: { kind: 'vcpus', count: 2 }, live: true, config: false } }]);
    spec.given(base).when(set({ kind: 'vcpus', count: 4 }, true), NOW).thenThrows('invalid-arg', 'requested cpu amount exceeds maximum (4 > 3)');
    spec.given(base).when(set({ kind: 'vcpus', count: 1, maximum: true }, true), NOW).thenThrows('invalid-arg', /maximum vCPU count of a running domain/);
    spec.given([defined('kvm')]).when(set({ kind: 'vcpus', count: 1 }, true), NOW).thenThrows('operation-invalid', 'domain is not running');
  });
});
