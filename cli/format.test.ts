import { describe, expect, it } from 'vitest';
import { DomainDefinition } from '../contracts/domain/definition.ts';
import type { DomainView } from '../contracts/views.ts';
import { domainList, dominfo, hostList, stateLabel } from './format.ts';

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const view = (over: Partial<DomainView> = {}): DomainView => ({
  id: UUID,
  name: 'web1',
  hostId: 'host-a',
  persistent: true,
  definition: DomainDefinition.parse({ name: 'web1', uuid: UUID, memoryKiB: 65536, vcpus: 1 }),
  nextDefinition: null,
  desired: 'running',
  observed: { state: 'running', reason: 'booted' },
  interfaces: [],
  pending: null,
  lastError: null,
  version: 7,
  updatedAt: '2025-01-01T00:00:00.000Z',
  ...over,
});

describe('a domain whose host is lost, as operators read it', () => {
  const lost = view({ hostLost: true, observed: { state: 'nostate', reason: 'unknown' }, lastObserved: { state: 'running', reason: 'booted' } });

  it('list and domstate say unknown (host lost), never running', () => {
    expect(stateLabel(lost)).toBe('unknown (host lost)');
    expect(domainList([lost])).toContain('unknown (host lost)');
    expect(domainList([lost])).not.toContain('running');
  });

  it('dominfo says so and what was known before', () => {
    const text = dominfo(lost, true);
    expect(text).toMatch(/^State:\s+unknown \(host lost\)$/m);
    expect(text).toMatch(/^State reason:\s+host 'host-a' lost; last known running \(booted\)$/m);
  });

  it('a domain of a live host reads as before', () => {
    expect(stateLabel(view())).toBe('running');
  });

  it('host-list shows a lost host as lost', () => {
    const base = { hostname: 'n', instanceId: 'i', agentVersion: '0', capabilities: null, registeredAt: null, version: 1 };
    const out = hostList([{ ...base, hostId: 'host-a', lost: true, alive: false }, { ...base, hostId: 'host-b', alive: true }]);
    expect(out).toMatch(/host-a\s+lost/);
    expect(out).toMatch(/host-b\s+up/);
  });
});

describe("virsh's layouts", () => {
  it('list: Id, Name, State, with - for an inactive domain and dashes as wide as virsh draws them', () => {
    const out = domainList([view({ domid: 12 }), view({ name: 'd1', observed: { state: 'shutoff', reason: 'destroyed' } })]);
    expect(out.split('\n')).toEqual([' Id   Name   State', '-'.repeat(23), ' 12   web1   running', ' -    d1     shut off']);
  });

  it("list --host adds virtplane's columns after virsh's", () => {
    expect(domainList([view({ domid: 3 })], 'host').split('\n')[0]).toMatch(/^ Id\s+Name\s+State\s+Host\s+UUID$/);
  });

  it('dominfo: virsh\'s lines in order, values from column 17, extras only when asked', () => {
    const lines = dominfo(view({ domid: 5 })).split('\n');
    expect(lines.map((l) => l.slice(0, 16).trim().replace(/:$/, ''))).toEqual([
      'Id', 'Name', 'UUID', 'OS Type', 'State', 'CPU(s)', 'Max memory', 'Used memory', 'Persistent', 'Autostart', 'Managed save', 'Security model', 'Security DOI',
    ]);
    expect(lines[0]).toBe('Id:             5');
    expect(lines[3]).toBe('OS Type:        linux');
    expect(lines.every((l) => l.length === 16 || l[16] !== ' ')).toBe(true);
    expect(dominfo(view())).not.toMatch(/^Host:/m);
    expect(dominfo(view(), true)).toMatch(/^Host:\s+host-a$/m);
  });
});

describe('autostart and a managed save image, as virsh prints them', () => {
  const saved = view({ autostart: true, managedSave: true, observed: { state: 'shutoff', reason: 'saved' }, desired: 'shutoff' });

  it('dominfo says enable and yes; a domain with neither says disable and no', () => {
    expect(dominfo(saved)).toMatch(/^Autostart: {6}enable\nManaged save: {3}yes$/m);
    expect(dominfo(view())).toMatch(/^Autostart: {6}disable\nManaged save: {3}no$/m);
  });

  it("list shows a saved domain shut off, and 'saved' only with --managed-save", () => {
    expect(domainList([saved])).toMatch(/ -\s+web1\s+shut off$/m);
    expect(domainList([saved], 'virsh', true)).toMatch(/ -\s+web1\s+saved$/m);
    expect(domainList([view()], 'virsh', true)).toMatch(/web1\s+running$/m);
  });
});
