// Test-only: conformance cases for hub-issued AWS credentials (run by store_conformance_test.ts).
import assert from "node:assert/strict";
import { type Case, withStore } from "./_test_backends.ts";

export const AWS_CREDENTIAL_CASES: Case[] = [
  {
    name: "aws credentials: a key is found by its access key id, with its user and sealed secret",
    run: (target) =>
      withStore(target, async (s) => {
        const user = await s.createUser({ name: "aws" }, 1000);
        const { record } = await s.createKey({ userId: user.id }, 1000);
        const other = await s.createKey({ userId: user.id }, 1000);
        await s.addAwsCredential(
          { accessKeyId: "AQIAAAAAAAAAAAAAAAA1", keyId: record.id, secretSealed: "v1:c2VhbGVk" },
          2000,
        );
        await s.addAwsCredential(
          {
            accessKeyId: "AQIAAAAAAAAAAAAAAAA2",
            keyId: other.record.id,
            secretSealed: "v1:b3RoZXI=",
          },
          2000,
        );
        const found = await s.findKeyByAwsAccessKeyId("AQIAAAAAAAAAAAAAAAA1");
        assert.equal(found?.key.id, record.id);
        assert.equal(found?.key.user.id, user.id);
        assert.equal(found?.secretSealed, "v1:c2VhbGVk");
        assert.equal(
          (await s.findKeyByAwsAccessKeyId("AQIAAAAAAAAAAAAAAAA2"))?.key.id,
          other.record.id,
        );
        // Ids are case-sensitive on both engines (utf8mb4_bin).
        assert.equal(await s.findKeyByAwsAccessKeyId("aqiaaaaaaaaaaaaaaaa1"), null);
        assert.equal(await s.findKeyByAwsAccessKeyId("AQIAUNKNOWN000000000"), null);
        // A disabled key is still found: the gateway decides.
        await s.setKeyDisabled(record.id, true);
        assert.equal((await s.findKeyByAwsAccessKeyId("AQIAAAAAAAAAAAAAAAA1"))?.key.disabled, true);
      }),
  },
  {
    name: "aws credentials: unknown keys and duplicate access key ids are refused",
    run: (target) =>
      withStore(target, async (s) => {
        const user = await s.createUser({ name: "aws" }, 1000);
        const { record } = await s.createKey({ userId: user.id }, 1000);
        await assert.rejects(
          s.addAwsCredential(
            { accessKeyId: "AQIAAAAAAAAAAAAAAAA3", keyId: "key_unknown", secretSealed: "v1:eA==" },
            2000,
          ),
        );
        assert.equal(await s.findKeyByAwsAccessKeyId("AQIAAAAAAAAAAAAAAAA3"), null);
        const cred = {
          accessKeyId: "AQIAAAAAAAAAAAAAAAA4",
          keyId: record.id,
          secretSealed: "v1:eQ==",
        };
        await s.addAwsCredential(cred, 2000);
        await assert.rejects(s.addAwsCredential({ ...cred, secretSealed: "v1:eg==" }, 3000));
        assert.equal((await s.findKeyByAwsAccessKeyId(cred.accessKeyId))?.secretSealed, "v1:eQ==");
      }),
  },
];
