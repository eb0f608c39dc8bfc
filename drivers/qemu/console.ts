import { constants, open } from 'node:fs';
import { ReadStream } from 'node:tty';
import type { Duplex } from 'node:stream';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { RuntimeChardev, RuntimeDevices, RuntimeGraphics } from '../../contracts/domain/state.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { QmpClient } from './qmp.ts';

/** One entry of QMP `query-chardev`. */
export interface QmpChardev {
  label: string;
  filename: string;
}

/** One answer of QMP `query-vnc`. */
export interface QmpVnc {
  enabled: boolean;
  host?: string;
  service?: string;
}

/**
 * The character device `virsh console` attaches to, as libvirt's QEMU driver picks it: by alias
 * when one is named (consoles first, then serial ports), otherwise the first console or else the
 * first serial port. The first console of target type serial is the first serial port itself.
 */
export const pickConsole = (def: DomainDefinition, devName?: string): { alias: string; type: string } => {
  const consoleAlias = (i: number) => (i === 0 && (def.devices.consoles[0]?.targetType ?? 'serial') === 'serial' ? 'serial0' : `console${i}`);
  const consoles = def.devices.consoles.map((c, i) => ({ alias: consoleAlias(i), type: c.type }));
  const serials = def.devices.serials.map((s, i) => ({ alias: `serial${i}`, type: s.type }));
  const chr = devName ? [...consoles, ...serials].find((c) => c.alias === devName) : (consoles[0] ?? serials[0]);
  if (!chr) throw new VirtError('internal-error', `internal error: cannot find character device ${devName ?? '<null>'}`);
  if (chr.type !== 'pty') throw new VirtError('internal-error', `internal error: character device ${chr.alias} is not using a PTY`);
  return chr;
};

/** The host ptys of a running guest's character devices, by libvirt alias (charserial0 → serial0). */
export const chardevPtys = (devs: QmpChardev[]): RuntimeChardev[] =>
  devs.flatMap((d) => {
    const alias = /^char((?:serial|console|channel)\d+)$/.exec(d.label)?.[1];
    return alias && d.filename.startsWith('pty:') ? [{ alias, type: 'pty' as const, path: d.filename.slice(4) }] : [];
  });

/** Where the guest's VNC display really listens: the driver runs at most one, the first VNC `<graphics>`. */
export const vncDisplays = (def: DomainDefinition, vnc: QmpVnc): RuntimeGraphics[] => {
  const index = def.devices.graphics.findIndex((g) => g.type === 'vnc');
  const port = Number(vnc.service);
  if (index < 0 || !vnc.enabled || !Number.isInteger(port)) return [];
  return [{ index, type: 'vnc', port, ...(vnc.host ? { listen: vnc.host } : {}) }];
};

/**
 * Opens the host side of a guest's pty for reading and writing, in raw mode as libvirt opens it: what
 * the guest writes arrives byte for byte, and what is written reaches the guest unchanged.
 */
export const openPty = async (path: string): Promise<Duplex> => {
  if (!/^\/dev\/pts\/\d+$/.test(path)) throw new VirtError('internal-error', `internal error: '${path}' is not a pty`);
  const fd = await new Promise<number>((resolve, reject) =>
    open(path, constants.O_RDWR | constants.O_NOCTTY, (e, fd) => (e ? reject(new VirtError('operation-failed', `operation failed: cannot open console pty ${path}: ${e.message}`)) : resolve(fd))),
  );
  const stream = new ReadStream(fd);
  stream.setRawMode(true);
  return stream;
};

/** What libvirt's live XML adds for a running guest: its VNC display's port and its ptys (QMP). */
export const runtimeDevices = async (qmp: QmpClient, def: DomainDefinition): Promise<RuntimeDevices> => {
  const chardevs = chardevPtys(await qmp.execute<QmpChardev[]>('query-chardev'));
  const graphics = def.devices.graphics.some((g) => g.type === 'vnc') ? vncDisplays(def, await qmp.execute<QmpVnc>('query-vnc')) : [];
  return { graphics, chardevs };
};
