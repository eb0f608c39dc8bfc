import { describe, expect, it } from 'vitest';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import { decide, evolve, initialPoolState } from './decider.ts';
import { StoragePoolDefinition } from './definition.ts';
import type { StorageEventBody } from './events.ts';
import { toPoolView } from './views.ts';

const UUID = '0b6f5a0c-1e77-4d0e-9c1e-2b8f3c4d5e60';
const spec = deciderSpec({ decide, evolve, initialState: () => initialPoolState(UUID) }, { aggregateType: 'pool', aggregateId: UUID });
const pool = StoragePoolDefinition.parse({ type: 'dir', name: 'images', uuid: UUID, target: { path: '/srv/images' } });
const T = 30_000;
const NOW = new Date('2025-01-01T00:10:00.000Z');

type Ev = GivenEvent<StorageEventBody>;
const defined: Ev = { type: 'PoolDefined', data: { definition: pool, hostId: 'h1', added: true } };
const created: Ev = { type: 'PoolCreated', data: { definition: pool, hostId: 'h1' } };
const on: Ev = { type: 'PoolAutostartSet', data: { autostart: true } };
const startRequested = (taskId: string): Ev => ({ type: 'PoolStartRequested', id: taskId, data: { hostId: 'h1', deadline: '2025-01-01T01:00:00.000Z', target: { path: '/srv/images' }, build: false } });
const started = (taskId: string): Ev => ({ type: 'PoolStarted', data: { taskId, volumes: [] } });

describe('pool autostart', () => {
  it('marks and unmarks a persistent pool, recording nothing when the flag is already so', () => {
    const { after } = spec.given([defined]).when({ type: 'set-autostart', autostart: true }).then([on]);
    expect(toPoolView(after, '').autostart).toBe(true);
    spec.given([defined, on]).when({ type: 'set-autostart', autostart: true }).thenNothing();
    spec.given([defined]).when({ type: 'set-autostart', autostart: false }).thenNothing();
    const off = spec.given([defined, on]).when({ type: 'set-autostart', autostart: false }).then([{ type: 'PoolAutostartSet', data: { autostart: false } }]);
    expect(off.after.autostart).toBeUndefined();
  });

  it("refuses a transient pool in libvirt's words, and an unknown one", () => {
    spec.given([created]).when({ type: 'set-autostart', autostart: true }).thenThrows('invalid-arg', 'invalid argument: pool has no config file');
    spec.given().when({ type: 'set-autostart', autostart: true }).thenThrows('no-storage-pool');
  });

  it('is forgotten with the definition: a pool defined again starts without it', () => {
    const { after } = spec.given([defined, on, { type: 'PoolUndefined', data: {} }, defined]).when({ type: 'set-autostart', autostart: false }).thenNothing();
    expect(after.autostart).toBeUndefined();
  });

  it("a host's start-up ask starts its inactive autostart pool once, and nothing for anyone else", () => {
    const asked = spec.given([defined, on]).when({ type: 'autostart-boot', hostId: 'h1', timeoutMs: T }, NOW).decided();
    expect(asked).toEqual([{ type: 'PoolStartRequested', data: { hostId: 'h1', deadline: new Date(NOW.getTime() + T).toISOString(), target: { path: '/srv/images' }, build: false } }]);
    // Already starting (a second ask), already running, another host's, not marked, transient: nothing.
    spec.given([defined, on, startRequested('t1')]).when({ type: 'autostart-boot', hostId: 'h1', timeoutMs: T }).thenNothing();
    spec.given([defined, on, startRequested('t1'), started('t1')]).when({ type: 'autostart-boot', hostId: 'h1', timeoutMs: T }).thenNothing();
    spec.given([defined, on]).when({ type: 'autostart-boot', hostId: 'h2', timeoutMs: T }).thenNothing();
    spec.given([defined]).when({ type: 'autostart-boot', hostId: 'h1', timeoutMs: T }).thenNothing();
    spec.given().when({ type: 'autostart-boot', hostId: 'h1', timeoutMs: T }).thenNothing();
  });
});
