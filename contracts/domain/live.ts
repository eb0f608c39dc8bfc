import type { DomainDefinition } from './definition.ts';
import { isActive, type ObservedState, type RuntimeDevices, type RuntimeInterface } from './state.ts';

/**
 * The definition as libvirt shows a running guest's XML: each interface with the host device the
 * agent reported for its MAC address (`<target dev='vnet3'/>`), each VNC display with the port and
 * address it really listens on, and each pty character device with its host pty
 * (`<source path='/dev/pts/3'/>`, and `tty=` on the console). A guest that is not running, or a
 * device the agent has not reported, is shown as defined.
 */
export const liveDefinition = (
  def: DomainDefinition,
  observed: ObservedState,
  runtime: RuntimeInterface[],
  devices?: RuntimeDevices,
): DomainDefinition => {
  if (!isActive(observed.state)) return def;
  let live = def;
  if (runtime.length) {
    const byMac = new Map(runtime.map((r) => [r.mac.toLowerCase(), r]));
    let changed = false;
    const interfaces = def.devices.interfaces.map((i) => {
      const r = i.mac ? byMac.get(i.mac.toLowerCase()) : undefined;
      if (!r || i.targetDev === r.ifname) return i;
      changed = true;
      return { ...i, targetDev: r.ifname };
    });
    if (changed) live = { ...live, devices: { ...live.devices, interfaces } };
  }
  if (devices && (devices.graphics.length || devices.chardevs.length)) live = { ...live, devices: withDevices(live.devices, devices) };
  return live;
};

const withDevices = (d: DomainDefinition['devices'], rt: RuntimeDevices): DomainDefinition['devices'] => {
  const graphics = d.graphics.map((g, i) => {
    const r = rt.graphics.find((x) => x.index === i);
    if (!r || g.type !== 'vnc') return g;
    const listen = r.listen ?? g.listen;
    // libvirt fills the port it chose and names the address both ways, attribute and <listen>.
    const listens = listen && !g.listens?.length ? [{ type: 'address', address: listen }] : g.listens;
    return { ...g, port: r.port, ...(g.autoport === undefined && g.port === undefined ? { autoport: true } : {}), ...(listen ? { listen } : {}), ...(listens ? { listens } : {}) };
  });
  const pty = new Map(rt.chardevs.map((c) => [c.alias, c.path]));
  const serials = d.serials.map((s, i) => {
    const path = s.type === 'pty' ? pty.get(`serial${i}`) : undefined;
    return path ? { ...s, source: { ...s.source, path } } : s;
  });
  const consoles = d.consoles.map((c, i) => {
    if (c.type !== 'pty') return c;
    // The first console of target type serial is the first serial port itself, as libvirt aliases it.
    const alias = i === 0 && (c.targetType ?? 'serial') === 'serial' ? 'serial0' : `console${i}`;
    const path = pty.get(alias);
    return path ? { ...c, tty: path, source: { ...c.source, path } } : c;
  });
  return { ...d, graphics, serials, consoles };
};
