/**
 * What a moderator sees of a request, shared by the vendor modules (which extract it) and the
 * hub's moderation chain (which judges it).
 */

/** What a moderator sees: the text and image parts of one request, already extracted. */
export interface ModerationInput {
  requestId: string;
  vendor: string;
  model: string;
  texts: string[];
  images: ModerationImage[];
}

/** An image in a request: a remote URL, or inline bytes (from a `data:` URL) as base64. */
export type ModerationImage =
  | { kind: "url"; url: string }
  | { kind: "data"; mediaType: string; base64: string };
