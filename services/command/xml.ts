import type { XmlParser } from './domain-commands.ts';

/** libvirt XML for `define`; wired to the contracts' XML layer once it lands. */
export const xmlParser: XmlParser | undefined = undefined;
