import { describe, expect, it } from 'vitest';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import { parseNetworkXml } from '../xml/network.ts';
import { decideNetwork, evolveNetwork, initialNetworkState } from './decider.ts';
import type { NetworkEventBody } from './events.ts';
import { parseNetworkUpdate, type NetworkUpdate } from './update.ts';

const UUID = '0c7a3f52-9d1e-4b6a-8f2c-5e4d3c2b1a10';
const spec = deciderSpec({ decide: decideNetwork, evolve: evolveNetwork, initialState: () => initialNetworkState(UUID) }, { aggregateType: 'network', aggregateId: UUID });
const def = parseNetworkXml(`<network><name>n1</name><uuid>${UUID}</uuid><ip address='10.1.0.1' prefix='24'><dhcp><range start='10.1.0.10' end='10.1.0.20'/><host mac='52:54:00:aa:00:01' ip='10.1.0.11'/></dhcp></ip><ip family='ipv6' address='fd00:1::1' prefix='64'/></network>`);
type Ev = GivenEvent<NetworkEventBody>;
const defined: Ev = { type: 'NetworkDefined', data: { definition: def } };
const upd = (command: string, section: 'ip-dhcp-host' | 'dns-host', xml: string, parentIndex?: number): NetworkUpdate =>
  parseNetworkUpdate({ command: command as never, section, xml, ...(parentIndex !== undefined ? { parentIndex } : {}) }, 'n1');
const update = (u: NetworkUpdate, flags: { config?: boolean; live?: boolean } = { config: true }) => ({ type: 'update' as const, update: u, config: flags.config ?? false, live: flags.live ?? false });

describe('net-update in the decider', () => {
  it('add-first puts the entry first, and the stored document follows the model', () => {
    const [e] = spec.given([defined]).when(update(upd('add-first', 'ip-dhcp-host', "<host mac='52:54:00:AA:00:02' name='b' ip='10.1.0.12'/>"))).decided();
    const d = (e as Extract<NetworkEventBody, { type: 'NetworkUpdated' }>).data.definition;
    expect(d.ips[0]?.dhcp?.hosts.map((h) => h.mac)).toEqual(['52:54:00:aa:00:02', '52:54:00:aa:00:01']);
    expect(d.xml).toMatch(/<host mac='52:54:00:aa:00:02' name='b' ip='10.1.0.12'\/>\s*<host mac='52:54:00:aa:00:01' ip='10.1.0.11'\/>/);
    expect(parseNetworkXml(d.xml!).ips[0]?.dhcp?.hosts).toHaveLength(2);
  });

  it('on an inactive network --current changes the definition; --live needs it running', () => {
    const dns = upd('add', 'dns-host', "<host ip='10.1.0.5'><hostname>h</hostname></host>");
    const body = { type: 'NetworkUpdated' as const, data: { definition: { ...def, dns: { hosts: [{ ip: '10.1.0.5', hostnames: ['h'] }] } } } };
    const decided = spec.given([defined]).when(update(dns, {})).decided();
    expect(decided).toHaveLength(1);
    const { after } = spec.given([defined]).when(update(dns, {})).then([{ ...body, data: { definition: { ...body.data.definition, xml: (decided[0] as typeof body).data.definition.xml } } }]);
    expect(after.definition?.dns?.hosts).toEqual([{ ip: '10.1.0.5', hostnames: ['h'] }]);
    spec.given([defined]).when(update(upd('add', 'dns-host', "<host ip='10.1.0.5'><hostname>h</hostname></host>"), { live: true })).thenThrows('operation-invalid', 'network is not running');
  });

  const started: Ev = { type: 'NetworkStarted', data: {} };
  /** Decides, then folds what was decided: the events and the state after them. */
  const run = (given: Ev[], cmd: ReturnType<typeof update>) => {
    const decided = spec.given(given).when(cmd).decided();
    return { decided, after: spec.given(given).when(cmd).then(decided).after };
  };
  const macs = (d: { ips: Array<{ dhcp?: { hosts: Array<{ mac?: string }> } }> } | null | undefined) => d?.ips[0]?.dhcp?.hosts.map((h) => h.mac);
  const a2 = "<host mac='52:54:00:aa:00:02' ip='10.1.0.12'/>";

  it('--live (and --current on a running network) changes the running definition only; the config is in force again after a stop', () => {
    for (const flags of [{ live: true }, {}]) {
      const { decided, after } = run([defined, started], update(upd('add', 'ip-dhcp-host', a2), flags));
      expect(decided.map((e) => e.type)).toEqual(['NetworkLiveUpdated']);
      expect(macs(after.definition)).toEqual(['52:54:00:aa:00:01', '52:54:00:aa:00:02']);
      expect(after.definition?.xml).toContain("<host mac='52:54:00:aa:00:02' ip='10.1.0.12'/>");
      // net-dumpxml --inactive: the persistent definition, unchanged.
      expect(macs(after.nextDefinition)).toEqual(['52:54:00:aa:00:01']);
      const stopped = spec.given([defined, started, ...(decided as Ev[]), { type: 'NetworkDestroyed', data: {} }]).when({ type: 'autostart', enable: false }).thenNothing().before;
      expect(macs(stopped.definition)).toEqual(['52:54:00:aa:00:01']);
    }
  });

  it('--live --config changes both, each from its own definition; --config alone leaves the running one', () => {
    // The config already differs from the running network (an earlier --config delete).
    const del = run([defined, started], update(upd('delete', 'ip-dhcp-host', "<host mac='52:54:00:aa:00:01'/>"), { config: true }));
    expect(del.decided.map((e) => e.type)).toEqual(['NetworkUpdated']);
    expect(macs(del.after.definition)).toEqual(['52:54:00:aa:00:01']);
    expect(macs(del.after.nextDefinition)).toEqual([]);
    const given = [defined, started, ...(del.decided as Ev[])];
    const both = run(given, update(upd('add', 'ip-dhcp-host', a2), { live: true, config: true }));
    expect(both.decided.map((e) => e.type)).toEqual(['NetworkLiveUpdated', 'NetworkUpdated']);
    expect(macs(both.after.definition)).toEqual(['52:54:00:aa:00:01', '52:54:00:aa:00:02']);
    expect(macs(both.after.nextDefinition)).toEqual(['52:54:00:aa:00:02']);
    // A refusal of either half records nothing: the running network still has the entry this deletes.
    spec.given(given).when(update(upd('delete', 'ip-dhcp-host', "<host mac='52:54:00:aa:00:01'/>"), { live: true, config: true })).thenThrows('operation-invalid', "couldn't locate a matching dhcp host entry in network 'n1'");
  });

  it('--live on a transient running network; --config and --live --config on it are refused; --live --config on a stopped one is not running', () => {
    const created: Ev = { type: 'NetworkCreated', data: { definition: def } };
    const { after } = run([created], update(upd('add', 'ip-dhcp-host', a2), { live: true }));
    expect(macs(after.definition)).toEqual(['52:54:00:aa:00:01', '52:54:00:aa:00:02']);
    expect(after.nextDefinition).toBeNull();
    spec.given([created]).when(update(upd('add', 'ip-dhcp-host', a2), { live: true, config: true })).thenThrows('operation-invalid', 'cannot change persistent config of a transient network');
    spec.given([defined]).when(update(upd('add', 'ip-dhcp-host', a2), { live: true, config: true })).thenThrows('operation-invalid', 'network is not running');
    // libvirt's matching rules apply to the live definition too.
    spec.given([defined, started]).when(update(upd('add', 'ip-dhcp-host', "<host mac='52:54:00:AA:00:01' ip='10.1.0.13'/>"), { live: true })).thenThrows('operation-invalid', /there is an existing dhcp host entry in network 'n1'/);
  });

  it("refuses a transient network's config, a missing <ip>, and an unknown network", () => {
    const created: Ev = { type: 'NetworkCreated', data: { definition: def } };
    spec.given([created]).when(update(upd('add', 'dns-host', "<host ip='10.1.0.5'><hostname>h</hostname></host>"))).thenThrows('operation-invalid', 'cannot change persistent config of a transient network');
    spec.given([defined]).when(update(upd('add', 'ip-dhcp-host', "<host mac='52:54:00:aa:00:03' ip='10.1.0.13'/>", 5))).thenThrows('operation-invalid', "couldn't update dhcp host entry - no <ip> element found at index 5 in network 'n1'");
    spec.given().when(update(upd('add', 'dns-host', "<host ip='10.1.0.5'><hostname>h</hostname></host>"))).thenThrows('no-network');
  });
});
