/**
 * Errors the gateway answers in the vendor's own envelope (the vendor module renders them), so a
 * client SDK raises its own typed exception. One type, rendered in one place.
 */
export class GatewayError extends Error {
  override name = "GatewayError";
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}
