import assert from "node:assert/strict";
import { MultipartFieldSniffer, parseHeaderParams } from "./multipart_field.ts";
import {
  everySplit,
  feed,
  randomChunks,
  referenceMultipart,
  sniffMultipart,
  testRandom,
  utf8,
} from "./testing.ts";

const FIELDS = ["model", "language", "file", "modèl"];
const B = "XyZ", CT = `multipart/form-data; boundary=${B}`, END = `--${B}--`;
const part = (headers: string, value: string) => `--${B}\r\n${headers}\r\n\r\n${value}\r\n`;
const cd = (params: string) => `Content-Disposition: form-data; ${params}`;

Deno.test("multipart: every split of hand-written bodies matches formData()", async () => {
  const bodies: [string, string][] = [
    [CT, `${part("", "no headers")}${part(cd('name="model"'), "m")}${END}`],
    [CT, `--${B}\r\n\r\n\r\n${part(cd("name=model"), "")}${END}`],
    [
      CT,
      `preamble\r\n--${B} \t\r\n${cd('name="model"')}\r\n\r\nm\r\n${END}\r\nepilogue --${B}\r\n`,
    ],
    [CT, `${part("X-Other: 1\r\ncontent-DISPOSITION:form-data;name=model", "a\rb\nc\r\n")}${END}`],
    [CT, `${part(cd('name="model"; filename=""'), "RIFF")}${part(cd('name="model"'), "m")}${END}`],
    [
      CT,
      `${part(cd("name=model; filename*=utf-8''a"), "m")}${part(cd('name="modèl"'), "é")}${END}`,
    ],
    [
      CT,
      `${part(cd('name="model"'), "a")}${part(cd("name=model"), "a")}${
        part(cd("name=language"), "")
      }${END}`,
    ],
    [CT, `${part(cd('name="model"'), "a")}${part(cd('name="model"'), "b")}${END}`],
    [CT, `${part(cd('filename="a"'), "x")}${part("Content-Type: text/plain", "y")}${END}`],
    [
      CT,
      `${part(cd('name="model"'), `\r\n--${B.slice(0, 2)}\r\r\n-\r\n--${B.slice(0, 2)}`)}${END}`,
    ],
    [
      `multipart/form-data; boundary="a b:c"`,
      `--a b:c\r\n${cd("name=model")}\r\n\r\nm\r\n--a b:c--`,
    ],
    [`Multipart/Form-Data;charset=utf-8; Boundary=${B}`, `${part(cd("name=model"), "m")}${END}`],
    [CT, END],
  ];
  for (const [type, text] of bodies) {
    const want = await referenceMultipart(type, FIELDS, utf8(text));
    assert.equal(want.error, false, text);
    for (const chunks of everySplit(utf8(text))) {
      assert.deepEqual(sniffMultipart(type, FIELDS, chunks), want, text);
    }
  }
});

Deno.test("multipart: the body of Response(FormData), as the OpenAI SDK sends it", async () => {
  const fd = new FormData();
  fd.append("model", "whisper-1");
  fd.append("file", new File([new Uint8Array(3000).fill(13)], "a.wav", { type: "audio/wav" }));
  fd.append("language", "de");
  const res = new Response(fd), ct = res.headers.get("content-type")!;
  const body = new Uint8Array(await res.arrayBuffer());
  const want = await referenceMultipart(ct, FIELDS, body);
  assert.deepEqual(want.error ? {} : want.fields.model, {
    has: true,
    value: "whisper-1",
    conflict: false,
  });
  const r = testRandom("multipart sdk body");
  for (let k = 0; k < 200; k++) {
    assert.deepEqual(sniffMultipart(ct, FIELDS, randomChunks(body, r, 700)), want);
  }
  const s = new MultipartFieldSniffer(ct, ["model", "language"]);
  s.push(body.subarray(0, 200)); // the model part, before the file
  assert.deepEqual([s.ready, s.done, s.getEarly("model"), s.has("language")], [
    false,
    false,
    "whisper-1",
    false,
  ]);
  feed(s, [body.subarray(200)]);
  assert.deepEqual([s.ready, s.done, s.get("model"), s.get("language"), s.error], [
    true,
    true,
    "whisper-1",
    "de",
    undefined,
  ]);
});

Deno.test("multipart: malformed bodies and content types set error, never throw", async () => {
  const ok = cd('name="model"');
  const bodies: [string, string, RegExp][] = [
    [CT, `--${B}\n${ok}\n\nm\n--${B}--`, /bad delimiter line/],
    [CT, part(ok, "m"), /truncated/],
    [CT, part(ok, "m").slice(0, -4), /truncated/],
    [CT, "", /truncated/],
    [CT, `${part(ok, "m\r\n--XyZx")}${END}`, /bad delimiter line/],
    [CT, `${part(ok, "m\r\n--XyZ-")}${END}`, /bad close delimiter/],
    [CT, `${part(`${ok}; name="file"`, "m")}${END}`, /two name parameters/],
    [CT, `${part(ok, `--${B}--`)}${END}`, /part content starts with the boundary/],
    [CT, `${part(`${ok}\r\n${ok}`, "m")}${END}`, /two Content-Disposition/],
    [CT, `${part(cd('name="mo\\del"'), "m")}${END}`, /backslash/],
    [CT, `${part(cd('name="model'), "m")}${END}`, /bad Content-Disposition/],
    [CT, `${part(`X: ${"y".repeat(20000)}`, "m")}${END}`, /part headers too long/],
    [CT, `${part(ok, "v".repeat(4097))}${END}`, /value of "model" exceeds 4096 bytes/],
    ["application/json", "{}", /not multipart\/form-data/],
    ["multipart/form-data", `${part(ok, "m")}${END}`, /bad boundary/],
    [`multipart/form-data; boundary=${"b".repeat(71)}`, "", /bad boundary/],
    [`multipart/form-data; boundary=a; boundary=b`, "", /bad boundary/],
    [`multipart/form-data; boundary="a\\"b"`, "", /unparsable content type/],
  ];
  for (const [type, text, why] of bodies) {
    for (const chunks of everySplit(utf8(text))) {
      const s = feed(new MultipartFieldSniffer(type, ["model"]), chunks);
      assert.match(s.error ?? "no error", why, text);
    }
  }
  const fine = utf8(`${part(ok, "v".repeat(4096))}${END}`);
  assert.deepEqual(
    sniffMultipart(CT, ["model"], [fine]),
    await referenceMultipart(CT, ["model"], fine),
  );
  const small = feed(new MultipartFieldSniffer(CT, ["model"], { valueBytesMax: 8 }), [
    utf8(`${part(ok, "whisper-1")}${END}`),
  ]);
  assert.match(small.error!, /value of "model" exceeds 8 bytes/);
  const late = feed(new MultipartFieldSniffer(CT, ["model"]), [fine]);
  late.push(utf8("x"));
  assert.match(late.error!, /push\(\) after end\(\)/);
});

Deno.test("multipart: parseHeaderParams", () => {
  const p = parseHeaderParams(`Form-Data ; NAME="a b;c" ;filename=x.wav;`);
  assert.deepEqual(p, {
    type: "form-data",
    params: new Map([["name", ["a b;c"]], ["filename", ["x.wav"]]]),
  });
  assert.equal(parseHeaderParams(`form-data; name="x`), undefined);
  assert.equal(parseHeaderParams(`form-data; name`), undefined);
  assert.equal(parseHeaderParams(""), undefined);
});
