import { z } from 'zod';

/**
 * virsh domcapabilities: what a host's hypervisor can give a domain of one type, machine and
 * architecture, read from the hypervisor itself when asked (hostread.<host>.domain-caps).
 */
export const DomainCapsRequest = z.object({
  virttype: z.string().regex(/^[a-z]{1,16}$/).optional(),
  emulatorbin: z.string().max(4096).optional(),
  arch: z.string().regex(/^[a-z0-9_]{1,32}$/).optional(),
  machine: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
});
export type DomainCapsRequest = z.infer<typeof DomainCapsRequest>;
export const DomainCapsReply = z.object({ xml: z.string() });

/** What the hypervisor said about itself, as the formatter needs it. */
export interface DomainCapsFacts {
  path: string;
  domain: string;
  /** The machine asked for, by its canonical name (an alias such as `pc` resolved). */
  machine: string;
  arch: string;
  maxVcpus: number;
  /** Named CPU models, and whether this host can run each as it is. */
  cpuModels: Array<{ name: string; usable: boolean }>;
  /** host-passthrough and host-model need hardware virtualization. */
  hostCpu: boolean;
}

const esc = (v: string) => v.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll("'", '&apos;');
const enumOf = (indent: string, name: string, values: readonly string[]) => [
  `${indent}<enum name='${name}'>`,
  ...values.map((v) => `${indent}  <value>${esc(v)}</value>`),
  `${indent}</enum>`,
];

/**
 * libvirt's domain capabilities layout (formatdomaincaps), saying only what this project's drivers
 * carry out: the disks, buses and displays its QEMU command line builds, not all qemu could.
 */
export const domainCapsXml = (f: DomainCapsFacts): string =>
  [
    '<domainCapabilities>',
    `  <path>${esc(f.path)}</path>`,
    `  <domain>${esc(f.domain)}</domain>`,
    `  <machine>${esc(f.machine)}</machine>`,
    `  <arch>${esc(f.arch)}</arch>`,
    `  <vcpu max='${f.maxVcpus}'/>`,
    "  <iothreads supported='no'/>",
    "  <os supported='yes'>",
    ...enumOf('    ', 'firmware', ['bios']),
    "    <loader supported='no'/>",
    '  </os>',
    '  <cpu>',
    `    <mode name='host-passthrough' supported='${f.hostCpu ? 'yes' : 'no'}'/>`,
    "    <mode name='maximum' supported='yes'/>",
    `    <mode name='host-model' supported='no'/>`,
    `    <mode name='custom' supported='${f.cpuModels.length > 0 ? 'yes' : 'no'}'>`,
    ...f.cpuModels.map((m) => `      <model usable='${m.usable ? 'yes' : 'no'}'>${esc(m.name)}</model>`),
    '    </mode>',
    '  </cpu>',
    "  <memoryBacking supported='no'/>",
    '  <devices>',
    "    <disk supported='yes'>",
    ...enumOf('      ', 'diskDevice', ['disk', 'cdrom']),
    ...enumOf('      ', 'bus', ['ide', 'scsi', 'virtio', 'sata']),
    '    </disk>',
    "    <graphics supported='yes'>",
    ...enumOf('      ', 'type', ['vnc']),
    '    </graphics>',
    "    <hostdev supported='no'/>",
    '  </devices>',
    '  <features>',
    "    <vmcoreinfo supported='no'/>",
    '  </features>',
    '</domainCapabilities>',
  ].join('\n');
