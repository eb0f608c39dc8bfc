import { describe, expect, it } from 'vitest';
import { DomainDefinition } from '../../contracts/domain/definition.ts';
import { chardevPtys, pickConsole, vncDisplays } from './console.ts';

const def = (devices: Record<string, unknown>) =>
  DomainDefinition.parse({ name: 'g', uuid: '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a13', type: 'kvm', memoryKiB: 65536, vcpus: 1, devices });

describe("the console libvirt's QEMU driver would open", () => {
  it('is the first console (the first serial port when it is of target type serial), or the first serial port', () => {
    expect(pickConsole(def({ serials: [{ type: 'pty' }], consoles: [{ type: 'pty', targetType: 'serial' }] }))).toEqual({ alias: 'serial0', type: 'pty' });
    expect(pickConsole(def({ serials: [{ type: 'pty' }, { type: 'pty' }] }))).toEqual({ alias: 'serial0', type: 'pty' });
    expect(pickConsole(def({ consoles: [{ type: 'pty', targetType: 'virtio' }] }))).toEqual({ alias: 'console0', type: 'pty' });
  });

  it('is found by alias with --devname, consoles first', () => {
    const d = def({ serials: [{ type: 'pty' }, { type: 'pty' }], consoles: [{ type: 'pty', targetType: 'serial' }, { type: 'pty', targetType: 'virtio' }] });
    expect(pickConsole(d, 'serial1')).toEqual({ alias: 'serial1', type: 'pty' });
    expect(pickConsole(d, 'console1')).toEqual({ alias: 'console1', type: 'pty' });
  });

  it("refuses with libvirt's words a device that is missing or not a pty", () => {
    expect(() => pickConsole(def({}))).toThrow('internal error: cannot find character device <null>');
    expect(() => pickConsole(def({ serials: [{ type: 'pty' }] }), 'serial3')).toThrow('internal error: cannot find character device serial3');
    expect(() => pickConsole(def({ serials: [{ type: 'file', source: { path: '/tmp/x' } }] }))).toThrow('internal error: character device serial0 is not using a PTY');
  });
});

describe('what a running qemu says about its devices', () => {
  it('maps query-chardev ptys to libvirt aliases and leaves out sockets, files and the monitor', () => {
    expect(
      chardevPtys([
        { label: 'charmonitor', filename: 'unix:/x/qmp.sock,server=on' },
        { label: 'charserial0', filename: 'pty:/dev/pts/7' },
        { label: 'charchannel0', filename: 'disconnected:unix:/x/ch.sock,server=on' },
        { label: 'charconsole1', filename: 'pty:/dev/pts/8' },
      ]),
    ).toEqual([
      { alias: 'serial0', type: 'pty', path: '/dev/pts/7' },
      { alias: 'console1', type: 'pty', path: '/dev/pts/8' },
    ]);
  });

  it('maps query-vnc to the first VNC display, and nothing when VNC is off', () => {
    const d = def({ graphics: [{ type: 'vnc', autoport: true }] });
    expect(vncDisplays(d, { enabled: true, host: '127.0.0.1', service: '5901' })).toEqual([{ index: 0, type: 'vnc', port: 5901, listen: '127.0.0.1' }]);
    expect(vncDisplays(d, { enabled: false })).toEqual([]);
    expect(vncDisplays(def({}), { enabled: true, host: '127.0.0.1', service: '5901' })).toEqual([]);
  });
});
