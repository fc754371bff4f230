/** The hub's one HTTP error type and the helpers every route shares. */

/** Thrown by handlers; rendered as `{error: {message, type}}` with `status` in one place. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(readonly status: number, readonly type: string, message: string) {
    super(message);
  }
}

/** Largest JSON body the admin API accepts. */
const ADMIN_BODY_BYTES_MAX = 64 * 1024;

/** Reads a JSON object body of at most `maxBytes` (default: the admin API's bound); else 400/413. */
export async function readJsonObject(
  req: Request,
  maxBytes = ADMIN_BODY_BYTES_MAX,
): Promise<Record<string, unknown>> {
  const tooLarge = () => new HttpError(413, "payload_too_large", `Body above ${maxBytes} bytes`);
  if (Number(req.headers.get("content-length") ?? "0") > maxBytes) throw tooLarge();
  const text = await req.text();
  if (text.length > maxBytes) throw tooLarge();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, "invalid_json", "Body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "invalid_json", "Body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

export function errorBody(type: string, message: string) {
  return { error: { message, type } };
}
