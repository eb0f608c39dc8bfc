/**
 * How large and deep a document may be. Apart from the parser, so that the JSON contracts bounded
 * alike (contracts/domain/commands.ts) do not load it.
 */
export interface DocumentLimits {
  /** Largest accepted document, in UTF-8 bytes. */
  maxBytes: number;
  /** Deepest accepted element nesting (the root is depth 1). */
  maxDepth: number;
}

export const DEFAULT_LIMITS: DocumentLimits = { maxBytes: 1024 * 1024, maxDepth: 256 };
