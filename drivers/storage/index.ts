export { DirPoolVolumes, QemuImgError } from './qemu-img.ts';
export type { CreateVolumeOptions, VolumeFormat, VolumeInfo } from './qemu-img.ts';
export { VolumeFile } from './volume-file.ts';
