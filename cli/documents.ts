import { readFile } from 'node:fs/promises';

/** A document from a file, as the define verbs take one: libvirt XML, or the JSON model. */
export const readDocument = async (file: string, usageError: (message: string) => Error): Promise<{ xml: string } | { definition: Record<string, unknown> }> => {
  const text = await readFile(file, 'utf8');
  if (text.trimStart().startsWith('<')) return { xml: text };
  try {
    return { definition: JSON.parse(text) as Record<string, unknown> };
  } catch (e) {
    throw usageError(`${file}: malformed JSON: ${(e as Error).message}`);
  }
};
