// The AWS SDK for Bedrock on Node (its native runtime) with its DEFAULT configuration — HTTP/2
// (`NodeHttp2Handler`) — run by tests/vendor_bedrock_test.ts as a child process (Deno's node:http2
// client compatibility is not what AWS users run). Input: env BEDROCK_* ; output: one JSON line.
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";

const env = process.env;
const client = new BedrockRuntimeClient({
  region: env.BEDROCK_REGION,
  endpoint: env.BEDROCK_ENDPOINT,
  credentials: { accessKeyId: env.BEDROCK_AKID, secretAccessKey: env.BEDROCK_SECRET },
  maxAttempts: 1,
  // A Bedrock API key instead of SigV4, when given.
  ...(env.BEDROCK_TOKEN
    ? { token: { token: env.BEDROCK_TOKEN }, authSchemePreference: ["httpBearerAuth"] }
    : {}),
});
const decoder = new TextDecoder();
const out = {};
const messages = (text) => [{ role: "user", content: [{ text }] }];
const invokeBody = (text) =>
  JSON.stringify({
    anthropic_version: "bedrock-2023-05-31",
    max_tokens: 200,
    messages: [{ role: "user", content: text }],
  });
const caught = async (run) => {
  try {
    return await run();
  } catch (e) {
    return { error: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
};
try {
  out.converse = await caught(async () => {
    const r = await client.send(
      new ConverseCommand({
        modelId: env.BEDROCK_CONVERSE_MODEL,
        messages: messages("hello node"),
      }),
    );
    return { text: r.output?.message?.content?.[0]?.text, usage: r.usage };
  });
  out.converseStream = await caught(async () => {
    const r = await client.send(
      new ConverseStreamCommand({
        modelId: env.BEDROCK_CONVERSE_MODEL,
        messages: messages(env.BEDROCK_STREAM_TEXT ?? "hello node"),
      }),
    );
    let text = "", usage;
    for await (const e of r.stream) {
      text += e.contentBlockDelta?.delta?.text ?? "";
      if (e.metadata) usage = e.metadata.usage;
    }
    return { text, usage };
  });
  out.invoke = await caught(async () => {
    const r = await client.send(
      new InvokeModelCommand({
        modelId: env.BEDROCK_INVOKE_MODEL,
        contentType: "application/json",
        accept: "application/json",
        body: invokeBody("hello node"),
      }),
    );
    return JSON.parse(decoder.decode(r.body));
  });
  out.invokeStream = await caught(async () => {
    const r = await client.send(
      new InvokeModelWithResponseStreamCommand({
        modelId: env.BEDROCK_INVOKE_MODEL,
        contentType: "application/json",
        body: invokeBody("hello node"),
      }),
    );
    let text = "", metrics;
    for await (const e of r.body) {
      const chunk = JSON.parse(decoder.decode(e.chunk.bytes));
      if (chunk.type === "content_block_delta") text += chunk.delta.text;
      if (chunk["amazon-bedrock-invocationMetrics"]) {
        metrics = chunk["amazon-bedrock-invocationMetrics"];
      }
    }
    return { text, metrics };
  });
} finally {
  client.destroy();
}
console.log(JSON.stringify(out));
