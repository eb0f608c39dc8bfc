import { describe, expect, it } from 'vitest';
import { decideNetwork, evolveNetwork, initialNetworkState, networkCommandVersion } from './decider.ts';
import { NetworkDefinition } from './definition.ts';
import type { NetworkCommand } from './commands.ts';
import type { NetworkEventBody } from './events.ts';
import { networkLifecycleFor } from './lifecycle.ts';
import { bridgeNameOf } from './views.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

const UUID = '0c7a3f52-9d1e-4b6a-8f2c-5e4d3c2b1a09';
const spec = deciderSpec(
  { decide: decideNetwork, evolve: evolveNetwork, initialState: () => initialNetworkState(UUID) },
  { aggregateType: 'network', aggregateId: UUID },
);

const def = NetworkDefinition.parse({ name: 'default', uuid: UUID, forward: { mode: 'nat' }, ips: [{ address: '192.168.122.1', prefix: 24 }] });
const def2 = NetworkDefinition.parse({ name: 'default', uuid: UUID, forward: { mode: 'route' }, ips: [{ address: '10.0.0.1', prefix: 8 }] });

type Ev = GivenEvent<NetworkEventBody>;
const defined = (d = def): Ev => ({ type: 'NetworkDefined', data: { definition: d } });
const started: Ev = { type: 'NetworkStarted', data: {} };
const destroyed: Ev = { type: 'NetworkDestroyed', data: {} };
const undefinedEv: Ev = { type: 'NetworkUndefined', data: {} };
const autostart = (on: boolean): Ev => ({ type: 'NetworkAutostartSet', data: { autostart: on } });

const active: Ev[] = [defined(), started];
const cmd = (type: 'undefine' | 'start' | 'destroy'): NetworkCommand => ({ type });
const NO_NETWORK = `Network not found: no network with matching uuid '${UUID}'`;

describe('define', () => {
  it('a new network is persistent, inactive and not autostarted', () => {
    const { after } = spec.given().when({ type: 'define', claimSeq: 1, definition: def }).then([defined()]);
    expect(after).toMatchObject({
      exists: true,
      removed: false,
      name: 'default',
      definition: def,
      nextDefinition: null,
      persistent: true,
      active: false,
      autostart: false,
      version: 1,
    });
  });

  it('redefining an inactive network replaces the definition and keeps the autostart flag', () => {
    const { after } = spec.given([defined(), autostart(true)]).when({ type: 'define', claimSeq: 1, definition: def2 }).then([defined(def2)]);
    expect(after).toMatchObject({ definition: def2, nextDefinition: null, active: false, autostart: true });
  });

  it('redefining an active network keeps the live definition until the network stops', () => {
    const { after } = spec.given(active).when({ type: 'define', claimSeq: 1, definition: def2 }).then([defined(def2)]);
    expect(after).toMatchObject({ definition: def, nextDefinition: def2, active: true, persistent: true });
    const stopped = spec.given([...active, defined(def2), destroyed]).state;
    expect(stopped).toMatchObject({ definition: def2, nextDefinition: null, active: false, exists: true });
  });

  it('the same uuid under another name is refused as libvirt does', () => {
    spec
      .given([defined()])
      .when({ type: 'define', claimSeq: 1, definition: { ...def, name: 'other' } })
      .thenThrows('operation-failed', `network 'default' is already defined with uuid ${UUID}`);
    spec.given(active).when({ type: 'define', claimSeq: 1, definition: { ...def, name: 'other' } }).thenThrows('operation-failed', /already defined with uuid/);
  });

  it('defining again after removal makes a fresh network', () => {
    const { after } = spec.given([defined(), autostart(true), undefinedEv]).when({ type: 'define', claimSeq: 1, definition: def2 }).then([defined(def2)]);
    expect(after).toMatchObject({ exists: true, removed: false, active: false, autostart: false, definition: def2 });
  });
});

describe('start', () => {
  it('an inactive network becomes active', () => {
    const { after } = spec.given([defined()]).when(cmd('start')).then([started]);
    expect(after.active).toBe(true);
  });

  it('an active network is already running', () => {
    spec.given(active).when(cmd('start')).thenThrows('operation-invalid', "Network 'default' is already running");
  });

  it('a stopped network starts again', () => {
    spec.given([...active, destroyed]).when(cmd('start')).then([started]);
  });
});

describe('destroy', () => {
  it('an active network becomes inactive and stays defined', () => {
    const { after } = spec.given(active).when(cmd('destroy')).then([destroyed]);
    expect(after).toMatchObject({ active: false, exists: true, persistent: true, definition: def });
  });

  it('an inactive network is destroyed again, as the test driver does (no active check, STOPPED)', () => {
    const { after } = spec.given([defined()]).when(cmd('destroy')).then([destroyed]);
    expect(after).toMatchObject({ active: false, exists: true });
    spec.given([...active, destroyed]).when(cmd('destroy')).then([destroyed]);
  });
});

describe('undefine', () => {
  it('an inactive network is removed', () => {
    const { after } = spec.given([defined(), autostart(true)]).when(cmd('undefine')).then([undefinedEv]);
    expect(after).toMatchObject({ exists: false, removed: true, persistent: false, active: false, autostart: false });
  });

  it('an active network is still running', () => {
    spec.given(active).when(cmd('undefine')).thenThrows('operation-invalid', "Network 'default' is still running");
  });

  it('a destroyed network can be undefined', () => {
    spec.given([...active, destroyed]).when(cmd('undefine')).then([undefinedEv]);
  });
});

describe('autostart', () => {
  it('sets and clears the flag, whether or not the network is active', () => {
    expect(spec.given([defined()]).when({ type: 'autostart', enable: true }).then([autostart(true)]).after.autostart).toBe(true);
    expect(spec.given([...active, autostart(true)]).when({ type: 'autostart', enable: false }).then([autostart(false)]).after.autostart).toBe(false);
  });

  it('setting the flag to what it is records nothing', () => {
    spec.given([defined()]).when({ type: 'autostart', enable: false }).thenNothing();
    spec.given([defined(), autostart(true)]).when({ type: 'autostart', enable: true }).thenNothing();
  });

  it('does not change whether the network is active', () => {
    expect(spec.given([defined(), autostart(true)]).state.active).toBe(false);
    expect(spec.given([...active, autostart(false)]).state.active).toBe(true);
  });
});

describe('a missing network', () => {
  const commands: NetworkCommand[] = [cmd('undefine'), cmd('start'), cmd('destroy'), { type: 'autostart', enable: true }];
  for (const c of commands) {
    it(`${c.type} of a never-defined network is no-network`, () => {
      spec.given().when(c).thenThrows('no-network', NO_NETWORK);
    });
    it(`${c.type} of an undefined network is no-network`, () => {
      spec.given([defined(), undefinedEv]).when(c).thenThrows('no-network', NO_NETWORK);
    });
  }
});

describe('command memory', () => {
  it('remembers the version each command produced, for retries after the dedupe window', () => {
    const g = spec.given([{ ...defined(), commandId: 'c-define' }, { ...started, commandId: 'c-start' }]);
    expect(networkCommandVersion(g.state, 'c-define')).toBe(1);
    expect(networkCommandVersion(g.state, 'c-start')).toBe(2);
    expect(networkCommandVersion(g.state, 'unknown')).toBeUndefined();
  });

  it('keeps only the most recent 64 commands', () => {
    const events: Ev[] = [defined()];
    for (let i = 0; i < 70; i++) events.push({ ...autostart(i % 2 === 0), commandId: `c-${i}` });
    const s = spec.given(events).state;
    expect(s.recentCommands).toHaveLength(64);
    expect(s.recentCommands.at(-1)).toEqual(['c-69', 71]);
  });
});

describe('lifecycle events', () => {
  it('DEFINED, UNDEFINED, STARTED, STOPPED, and none for autostart', () => {
    expect([defined(), undefinedEv, started, destroyed, autostart(true)].map((e) => networkLifecycleFor(e))).toEqual([
      'DEFINED',
      'UNDEFINED',
      'STARTED',
      'STOPPED',
      null,
    ]);
  });
});

describe('bridge name', () => {
  it('is the fixed name when given, or one derived from the uuid for networks virtplane runs', () => {
    expect(bridgeNameOf({ ...def, bridge: { name: 'virbr0' } })).toBe('virbr0');
    expect(bridgeNameOf(def)).toBe('vpbr0c7a3f529d1');
    expect(bridgeNameOf({ ...def, bridge: { name: 'virbr%d' } })).toBe('vpbr0c7a3f529d1');
    expect(bridgeNameOf({ ...def, forward: undefined })).toBe('vpbr0c7a3f529d1');
    expect(bridgeNameOf({ ...def, forward: { mode: 'bridge' }, bridge: { name: 'br0' }, ips: [] })).toBe('br0');
    expect(bridgeNameOf({ ...def, forward: { mode: 'passthrough', dev: 'eth0' }, ips: [] })).toBeNull();
  });
});

describe('name claims', () => {
  const revoked = (claimSeq: number): Ev => ({ type: 'NameClaimRevoked', data: { name: 'default', claimSeq } });
  it('a define whose claim was revoked is refused; one on a newer claim goes through', () => {
    const g = spec.given([revoked(5)]);
    g.when({ type: 'define', claimSeq: 5, definition: def }).thenThrows('conflict', /taken over/);
    g.when({ type: 'define', claimSeq: 6, definition: def }).then([defined()]);
    expect(networkLifecycleFor(revoked(5))).toBeNull();
  });
});

describe('create (virsh net-create)', () => {
  const created = (d = def): Ev => ({ type: 'NetworkCreated', data: { definition: d } });

  it('a new network is transient and active, and is gone once destroyed; STARTED alone is sent', () => {
    const { after } = spec.given().when({ type: 'create', claimSeq: 1, definition: def }).then([created()]);
    expect(after).toMatchObject({ exists: true, persistent: false, active: true, autostart: false, definition: def, nextDefinition: null });
    expect(networkLifecycleFor({ type: 'NetworkCreated', data: { definition: def } })).toBe('STARTED');
    const gone = spec.given([created()]).when(cmd('destroy')).then([destroyed]);
    expect(gone.after).toMatchObject({ exists: false, removed: true, active: false });
  });

  it('starts an inactive persistent network with the new definition until it stops', () => {
    const { after } = spec.given([defined(), autostart(true)]).when({ type: 'create', claimSeq: 1, definition: def2 }).then([created(def2)]);
    expect(after).toMatchObject({ persistent: true, active: true, autostart: true, definition: def2, nextDefinition: def });
    const stopped = spec.given([defined(), autostart(true), created(def2)]).when(cmd('destroy')).then([destroyed]);
    expect(stopped.after).toMatchObject({ exists: true, persistent: true, active: false, definition: def, nextDefinition: null });
  });

  it('refuses an active network and a uuid held under another name', () => {
    spec.given(active).when({ type: 'create', claimSeq: 1, definition: def }).thenThrows('operation-invalid', "network 'default' is already active");
    spec.given([defined()]).when({ type: 'create', claimSeq: 1, definition: { ...def, name: 'other' } }).thenThrows('operation-failed', `network 'default' is already defined with uuid ${UUID}`);
  });
});
