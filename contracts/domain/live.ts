import type { DomainDefinition } from './definition.ts';
import { isActive, type ObservedState, type RuntimeInterface } from './state.ts';

/**
 * The definition as libvirt shows a running guest's XML: each interface with the host device the
 * agent reported for its MAC address (`<target dev='vnet3'/>`). A guest that is not running, or an
 * interface the agent has not reported, is shown as defined.
 */
export const liveDefinition = (def: DomainDefinition, observed: ObservedState, runtime: RuntimeInterface[]): DomainDefinition => {
  if (!isActive(observed.state) || runtime.length === 0) return def;
  const byMac = new Map(runtime.map((r) => [r.mac.toLowerCase(), r]));
  let changed = false;
  const interfaces = def.devices.interfaces.map((i) => {
    const r = i.mac ? byMac.get(i.mac.toLowerCase()) : undefined;
    if (!r || i.targetDev === r.ifname) return i;
    changed = true;
    return { ...i, targetDev: r.ifname };
  });
  return changed ? { ...def, devices: { ...def.devices, interfaces } } : def;
};
