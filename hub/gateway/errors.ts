/**
 * Errors the gateway answers in the vendor's own envelope (the vendor module renders them), so a
 * client SDK raises its own typed exception. One type, rendered in one place.
 */
import type { VendorError } from "../../protocol/vendors/types.ts";

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

  /** A vendor module's own refusal (`VendorSurface.rejectRequest`), answered as is. */
  static fromVendor(e: VendorError): GatewayError {
    return new GatewayError(e.status, e.type, e.message, e.param ?? null, e.code);
  }
}
