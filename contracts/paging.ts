/** Page sizes of list queries, apart from their schemas (contracts/views.ts) for callers that need only the numbers. */
export const DEFAULT_PAGE_SIZE = 500;
export const MAX_PAGE_SIZE = 10_000;
