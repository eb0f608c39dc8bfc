import type { DiskModel, InterfaceModel } from '../domain/definition.ts';
import { guard, limitsOf, parseTree, type ParseOptions } from './common.ts';
import { parseDocument } from './document.ts';
import { domainSpec } from './domain.ts';
import { quote, xmlError } from './errors.ts';
import { element } from './tree.ts';

export type DeviceDefinition = { kind: 'disk'; disk: DiskModel } | { kind: 'interface'; iface: InterfaceModel };

/**
 * One device element, as virsh attach-device, detach-device and update-device send it
 * (virDomainDeviceDefParse). The document goes through the same guarded parser as a definition
 * (size, depth, no DTD or entities), then is read as the only device of a domain, so a disk or an
 * interface is checked exactly as it would be inside a definition. Other device kinds are refused.
 */
export function parseDeviceXml(text: string, opts: ParseOptions = {}): DeviceDefinition {
  return guard('cannot parse device XML', () => {
    const root = parseDocument(text, limitsOf(opts));
    if (root.name !== 'disk' && root.name !== 'interface') {
      throw xmlError(`unsupported configuration: device <${root.name}> cannot be attached, detached or updated here: only <disk> and <interface>`, {
        root: quote(root.name),
      });
    }
    const holder = element('domain', { type: 'kvm' }, [
      element('name', {}, ['device']),
      element('memory', {}, ['1024']),
      element('os', {}, [element('type', {}, ['hvm'])]),
      element('devices', {}, [root]),
    ]);
    const def = parseTree(domainSpec, holder, opts);
    if (root.name === 'disk') {
      const disk = def.devices.disks[0];
      if (!disk) throw xmlError('the <disk> element holds no disk');
      return { kind: 'disk', disk };
    }
    const iface = def.devices.interfaces[0];
    if (!iface) throw xmlError('the <interface> element holds no interface');
    return { kind: 'interface', iface };
  });
}
