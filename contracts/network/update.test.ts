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

  it("refuses a transient network's config, a missing <ip>, and an unknown network", () => {
    const created: Ev = { type: 'NetworkCreated', data: { definition: def } };
    spec.given([created]).when(update(upd('add', 'dns-host', "<host ip='10.1.0.5'><hostname>h</hostname></host>"))).thenThrows('operation-invalid', 'cannot change persistent config of a transient network');
    spec.given([defined]).when(update(upd('add', 'ip-dhcp-host', "<host mac='52:54:00:aa:00:03' ip='10.1.0.13'/>", 5))).thenThrows('operation-invalid', "couldn't update dhcp host entry - no <ip> element found at index 5 in network 'n1'");
    spec.given().when(update(upd('add', 'dns-host', "<host ip='10.1.0.5'><hostname>h</hostname></host>"))).thenThrows('no-network');
  });
});
