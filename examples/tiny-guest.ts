import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTinyGuest } from '../test/fixtures/guest/build.ts';

/**
 * `npm run example:guest`: the kernel and initramfs examples/guest.xml boots, in /var/tmp/virtplane-guest/
 * (or the directory given). Needs the host's kernel image and busybox-static (./setup.sh installs both).
 */
const dir = process.argv[2] ?? '/var/tmp/virtplane-guest';
const guest = await buildTinyGuest();
await mkdir(dir, { recursive: true });
await copyFile(guest.kernel, join(dir, 'vmlinuz'));
await copyFile(guest.initrd, join(dir, 'initrd.cpio.gz'));
process.stdout.write(`wrote ${join(dir, 'vmlinuz')} and ${join(dir, 'initrd.cpio.gz')} (kernel command line: ${guest.cmdline})\n`);
