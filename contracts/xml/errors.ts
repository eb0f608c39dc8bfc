import { VirtError } from '../errors.ts';

/** Every failure of the XML layer is an xml-error so callers have one code to map to a reply. */
export const xmlError = (message: string, details?: Record<string, unknown>): VirtError =>
  new VirtError('xml-error', message, details);

/** Keeps quoted user values short in messages: a hostile document must not make its own error huge. */
export const quote = (value: string, max = 80): string => {
  const shown = value.length > max ? `${value.slice(0, max)}...` : value;
  return `'${shown.replace(/[\n\r\t]/g, ' ')}'`;
};
