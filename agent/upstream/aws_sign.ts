/**
 * The agent signs each request to an AWS vendor (Bedrock) with the channel's real credentials,
 * with `aws4fetch`'s SigV4 signer — an implementation independent of the hub's verifier
 * (`protocol/aws/`), so the fake Bedrock's check of the agent's signature is a real cross-check.
 * It signs `host` (the official regional host, also when AGENT_DEV_UPSTREAMS sends the bytes to a
 * local fake), `x-amz-date`, `x-amz-content-sha256` (set here, as the AWS SDKs do) and every
 * other forwarded header aws4fetch considers signable; the canonical path is the wire path
 * encoded once more. The secret never leaves this function and never appears in an error.
 */
import { AwsV4Signer } from "aws4fetch";
import { sha256Hex } from "../../protocol/aws/payload.ts";
import { parseBedrockChannelKey } from "../../protocol/vendors/bedrock.ts";
import type { UpstreamChannel, VendorSurface } from "../../protocol/vendors/types.ts";
import { upstreamOrigin } from "./whitelist.ts";

/** `yyyymmddThhmmssZ` */
export function amzDate(nowMs: number): string {
  return new Date(nowMs).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

export async function signAwsUpstream(input: {
  vendor: VendorSurface;
  channel: UpstreamChannel;
  key: string;
  method: string;
  /** Where the request goes (its path and query are what gets signed). */
  target: URL;
  headers: Headers;
  body: Uint8Array | ReadableStream<Uint8Array> | null;
  nowMs: number;
}): Promise<void> {
  const { vendor, headers } = input;
  const service = vendor.sigV4?.service;
  if (!service) throw new TypeError(`${vendor.name} does not sign with SigV4`);
  if (input.body instanceof ReadableStream) {
    throw new RangeError("request body too large to sign (bodies above 8 MiB are not supported)");
  }
  const region = input.channel.endpoint;
  if (!region) throw new TypeError(`a ${vendor.name} channel needs --endpoint <AWS region>`);
  const { accessKeyId, secret } = parseBedrockChannelKey(input.key);
  const official = new URL(
    input.target.pathname + input.target.search,
    upstreamOrigin(vendor, input.channel),
  );
  headers.delete("authorization");
  headers.set("x-amz-content-sha256", await sha256Hex(input.body ?? new Uint8Array(0)));
  const signed = await new AwsV4Signer({
    method: input.method,
    url: official.href,
    headers,
    accessKeyId,
    secretAccessKey: secret,
    service,
    region,
    datetime: amzDate(input.nowMs),
  }).sign();
  headers.set("x-amz-date", signed.headers.get("x-amz-date")!);
  headers.set("authorization", signed.headers.get("authorization")!);
}
