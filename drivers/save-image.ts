import { constants } from 'node:fs';
import { mkdir, open, realpath, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { savePathProblem } from '../contracts/domain/save-restore.ts';
import { virtError, VirtError } from '../contracts/errors.ts';

/**
 * Saved-guest images (virsh save, restore, save-image-dumpxml) in libvirt's own layouts, and the
 * rule for where a host writes and reads them.
 *
 * The path comes from whoever sent the command, so a host writes or reads only a file inside one of
 * the directories it allows for images (`VIRTPLANE_SAVE_DIRS`), checked against the real path of the
 * file's directory so that a symbolic link cannot lead out of them. A new image is written to a
 * private partial file and renamed over the target, so a link planted at the target is replaced,
 * never followed; an image is opened without following a link, and must be a regular file.
 */

/** testDomainSaveImageWrite: "TestGuestMagic" with its NUL, the XML's length as a native int, the XML. */
export const TEST_SAVE_MAGIC = Buffer.from('TestGuestMagic\0', 'latin1');
/** virQEMUSaveHeader: 16 bytes of magic, then version, data_len, was_running, compressed, cookieOffset and 15 unused words. */
export const QEMU_SAVE_MAGIC = Buffer.from('LibvirtQemudSave', 'latin1');
const QEMU_SAVE_VERSION = 2;
const QEMU_HEADER_BYTES = 16 + 20 * 4;
/** The test driver's bound on the XML in an image ("length of metadata out of range"). */
const TEST_XML_MAX = 8192;
/** Bound on a qemu image's XML: what the XML parser takes anyway. */
const QEMU_XML_MAX = 1024 * 1024;

export interface SaveImageHeader {
  format: 'test' | 'qemu';
  /** The definition the guest ran with, as libvirt domain XML. */
  xml: string;
  /** Whether the guest ran (rather than being paused) when it was saved. */
  running: boolean;
  /** Where the guest's state starts in the file (qemu images). */
  dataOffset: number;
}

const denied = (file: string, dirs: readonly string[], why: string) =>
  virtError('invalid-arg', `'${file}' ${why}: this host keeps saved images only under ${dirs.join(', ') || 'no directory'}`, { file, saveDirs: dirs });

/**
 * The real path of an image inside the allowed directories, or an `invalid-arg` error. Its
 * directory must exist (libvirt does not make it either); an allowed directory itself is made.
 */
export const resolveImagePath = async (dirs: readonly string[], named: string): Promise<string> => {
  const problem = savePathProblem(named);
  if (problem) throw virtError('invalid-arg', problem, { file: named });
  if (!named.includes('/') && dirs.length === 0) throw denied(named, dirs, 'names no directory');
  const file = named.includes('/') ? named : join(dirs[0]!, named);
  const root = dirs.find((d) => file.startsWith(`${d}/`));
  if (!root) throw denied(file, dirs, 'is outside the directories for saved images');
  await mkdir(root, { recursive: true, mode: 0o700 });
  const realRoot = await realpath(root);
  let realDir: string;
  try {
    realDir = await realpath(dirname(file));
  } catch (e) {
    throw virtError('operation-failed', `cannot reach the directory of '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { file });
  }
  if (realDir !== realRoot && !realDir.startsWith(`${realRoot}/`)) throw denied(file, dirs, 'leads out of the directories for saved images through a link');
  return join(realDir, basename(file));
};

/** libvirt's message for an image it cannot open, with the errno's text. */
const cannotRead = (file: string, e: unknown): VirtError => {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'No such file or directory' : code === 'ELOOP' ? 'Too many levels of symbolic links' : code === 'EACCES' ? 'Permission denied' : String((e as Error).message ?? e);
  return virtError('operation-failed', `cannot read domain image '${file}': ${why}`, { file, raw: true });
};

/** Opens an image for reading: never through a link, only a regular file. */
export const openImage = async (file: string): Promise<FileHandle> => {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw cannotRead(file, e);
  }
  if (!(await fh.stat()).isFile()) {
    await fh.close();
    throw virtError('operation-failed', `cannot read domain image '${file}': not a regular file`, { file, raw: true });
  }
  return fh;
};

const readExactly = async (fh: FileHandle, length: number, position: number): Promise<Buffer> => {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
};

/** Reads an image's header in either layout, with the test driver's checks and words. */
export const readImageHeader = async (file: string): Promise<SaveImageHeader> => {
  const fh = await openImage(file);
  try {
    const head = await readExactly(fh, QEMU_HEADER_BYTES, 0);
    if (head.length >= TEST_SAVE_MAGIC.length + 4 && head.subarray(0, TEST_SAVE_MAGIC.length).equals(TEST_SAVE_MAGIC)) {
      const len = head.readInt32LE(TEST_SAVE_MAGIC.length);
      if (len < 1 || len > TEST_XML_MAX) throw virtError('internal-error', 'length of metadata out of range');
      const xml = await readExactly(fh, len, TEST_SAVE_MAGIC.length + 4);
      if (xml.length < len) throw virtError('internal-error', `incomplete metadata in '${file}'`);
      return { format: 'test', xml: xml.toString('utf8'), running: true, dataOffset: TEST_SAVE_MAGIC.length + 4 + len };
    }
    if (head.length === QEMU_HEADER_BYTES && head.subarray(0, 16).equals(QEMU_SAVE_MAGIC)) {
      const version = head.readUInt32LE(16);
      const len = head.readUInt32LE(20);
      if (version > QEMU_SAVE_VERSION) throw virtError('operation-failed', `image version is not supported (${version} > ${QEMU_SAVE_VERSION})`);
      if (len < 1 || len > QEMU_XML_MAX) throw virtError('operation-failed', 'invalid XML length in saved image');
      const data = await readExactly(fh, len, QEMU_HEADER_BYTES);
      if (data.length < len) throw virtError('operation-failed', `failed to read domain XML from '${file}'`);
      const nul = data.indexOf(0);
      return { format: 'qemu', xml: data.subarray(0, nul < 0 ? len : nul).toString('utf8'), running: head.readUInt32LE(24) !== 0, dataOffset: QEMU_HEADER_BYTES + len };
    }
    throw virtError('internal-error', 'mismatched header magic');
  } finally {
    await fh.close();
  }
};

export const testImageHeader = (xml: string): Buffer => {
  const body = Buffer.from(xml, 'utf8');
  const len = Buffer.alloc(4);
  len.writeInt32LE(body.length);
  return Buffer.concat([TEST_SAVE_MAGIC, len, body]);
};

export const qemuImageHeader = (xml: string, running: boolean): Buffer => {
  const body = Buffer.concat([Buffer.from(xml, 'utf8'), Buffer.alloc(1)]);
  const head = Buffer.alloc(QEMU_HEADER_BYTES);
  QEMU_SAVE_MAGIC.copy(head, 0);
  head.writeUInt32LE(QEMU_SAVE_VERSION, 16);
  head.writeUInt32LE(body.length, 20);
  head.writeUInt32LE(running ? 1 : 0, 24);
  return Buffer.concat([head, body]);
};

/**
 * Writes an image whole or not at all: `fill` writes into a partial file beside the target (made
 * afresh, never through a link), which is renamed over the target once complete. A partial file
 * left by a writer that died is replaced by the next attempt.
 */
export const writeImage = async (file: string, header: Buffer, fill?: (part: string, fh: FileHandle) => Promise<void>): Promise<void> => {
  const part = join(dirname(file), `.${basename(file)}.part`);
  await unlink(part).catch(() => undefined);
  const fh = await open(part, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.write(header, 0, header.length, 0);
    if (fill) await fill(part, fh);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(part).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await rename(part, file);
};
