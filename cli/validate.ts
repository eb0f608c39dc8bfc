import { readFile, stat } from 'node:fs/promises';
import { isVirtError } from '../contracts/errors.ts';
import { DEFAULT_LIMITS, parseAnyXml } from '../contracts/xml/index.ts';
import { formatSecretXml, parseSecretXml } from '../contracts/xml/secret.ts';

/**
 * `virtplane validate FILE...`, in the spirit of virt-xml-validate: the root element says what the
 * document is; one line per file; with `format`, the document as virtplane would store it.
 * Returns the exit code: 0 when every file is valid, 1 when any is not, 2 when no file was given.
 */
export async function validateFiles(files: string[], opts: { format: boolean }, out: (line: string) => void): Promise<number> {
  if (files.length === 0) {
    out('error: no file to validate');
    return 2;
  }
  let failed = 0;
  for (const file of files) {
    try {
      // Checked before reading so a huge file is never loaded just to be refused.
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a regular file');
      // A UTF-8 byte order mark is the only thing not counted against the limit.
      if (info.size > DEFAULT_LIMITS.maxBytes + 3) {
        failed++;
        out(`${file}: error: XML document rejected: larger than ${DEFAULT_LIMITS.maxBytes} bytes`);
        continue;
      }
      const text = await readFile(file, 'utf8');
      // A secret has no name and keeps nothing it does not know: its stored form is libvirt's own.
      if (/^\s*(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<secret[\s/>]/.test(text)) {
        const def = parseSecretXml(text, '00000000-0000-0000-0000-000000000000');
        out(`${file}: ok (secret '${def.uuid}')`);
        if (opts.format) out(formatSecretXml(def).replace(/\n$/, ''));
        continue;
      }
      const { kind, definition } = parseAnyXml(text);
      out(`${file}: ok (${kind} '${definition.name}')`);
      if (opts.format) out(definition.xml!.replace(/\n$/, ''));
    } catch (e) {
      failed++;
      const reason = isVirtError(e) ? e.message : `cannot read file: ${e instanceof Error ? e.message : String(e)}`;
      out(`${file}: error: ${reason}`);
    }
  }
  return failed === 0 ? 0 : 1;
}
