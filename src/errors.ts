/** The message of anything thrown: an Error's message, else its string form. Imports nothing, so any layer can use it. */
export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
