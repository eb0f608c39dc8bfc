import { describe, expect, it } from 'vitest';
import { formatSnapshotXml, parseSnapshotXml } from './snapshot.ts';
import { DomainDefinition } from '../domain/definition.ts';
import { parseDiskspec } from '../../cli/snapshot-commands.ts';

/** <domainsnapshot> <disks>: what snapshot-create reads of an external snapshot, and what snapshot-dumpxml shows of one. */
describe('snapshot documents: external disks', () => {
  it('reads each disk by its target: snapshot type and overlay file; a <source> alone means external', () => {
    const doc = parseSnapshotXml(
      `<domainsnapshot><name>e1</name><disks><disk name='vda' snapshot='external'><source file='/o/a.e1'/></disk><disk name='vdb' snapshot='no'/><disk name='vdc'><source file='/o/c'/></disk></disks></domainsnapshot>`,
    );
    expect(doc).toEqual({
      name: 'e1',
      disks: [
        { name: 'vda', snapshot: 'external', file: '/o/a.e1' },
        { name: 'vdb', snapshot: 'no' },
        { name: 'vdc', snapshot: 'external', file: '/o/c' },
      ],
    });
  });

  it('refuses a disk without a name, an unknown snapshot type, an empty file and too many disks as xml-errors', () => {
    const bad = [
      `<domainsnapshot><disks><disk snapshot='external'/></disks></domainsnapshot>`,
      `<domainsnapshot><disks><disk name='vda' snapshot='sideways'/></disks></domainsnapshot>`,
      `<domainsnapshot><disks><disk name='vda'><source file=''/></disk></disks></domainsnapshot>`,
      `<domainsnapshot><disks>${"<disk name='vda'/>".repeat(65)}</disks></domainsnapshot>`,
    ];
    for (const x of bad) expect(() => parseSnapshotXml(x), x.slice(0, 70)).toThrow(expect.objectContaining({ code: 'xml-error' }));
  });

  it('shows an external snapshot as libvirt does: disk-snapshot, no memory, each disk external with its overlay or no', () => {
    const definition = DomainDefinition.parse({ name: 'web1', uuid: '0a7d4c1e-5b2f-4e8a-9c3d-1f2e3d4c5b6a', type: 'kvm', memoryKiB: 65536, vcpus: 1 });
    const xml = formatSnapshotXml({
      name: 'e1',
      state: 'disk-snapshot',
      creationTime: 1735690000,
      definition,
      disks: [
        { name: 'vda', snapshot: 'external', file: '/o/a.e1', driverType: 'qcow2' },
        { name: 'hdc', snapshot: 'no' },
      ],
    });
    expect(xml).toContain(
      [
        '  <state>disk-snapshot</state>',
        '  <creationTime>1735690000</creationTime>',
        "  <memory snapshot='no'/>",
        '  <disks>',
        "    <disk name='vda' snapshot='external' type='file'>",
        "      <driver type='qcow2'/>",
        "      <source file='/o/a.e1'/>",
        '    </disk>',
        "    <disk name='hdc' snapshot='no'/>",
        '  </disks>',
      ].join('\n'),
    );
  });

  it("reads virsh's --diskspec", () => {
    expect(parseDiskspec('vda,snapshot=external,file=/o/x,,y')).toEqual({ name: 'vda', snapshot: 'external', file: '/o/x,y' });
    expect(parseDiskspec('vdb,snapshot=no')).toEqual({ name: 'vdb', snapshot: 'no' });
    expect(parseDiskspec('vdc,file=/o/c')).toEqual({ name: 'vdc', snapshot: 'external', file: '/o/c' });
    expect(() => parseDiskspec('vdd,colour=blue')).toThrow(/unable to parse diskspec/);
  });
});
