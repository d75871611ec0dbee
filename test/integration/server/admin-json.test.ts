// envoyproxy/ratelimit's POST /json on the admin listener, fed bodies of the wrong shape. The expected statuses are
// what the Go service (protojson into a RateLimitRequest) answers to the same bodies: the JSON endpoint must not take
// what the gRPC API cannot carry, nor read a string as a descriptor.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../../support/app.js';

const LIMIT = 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 1000 }\n';

describe('admin POST /json: bodies of the wrong shape', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ descriptors: { 'd.yaml': LIMIT } });
  });
  after(async () => {
    await t.close();
  });

  const entry = '{"entries":[{"key":"k","value":"v"}]}';
  const cases: [string, string, number][] = [
    ['a well-formed request', `{"domain":"d","descriptors":[${entry}]}`, 200],
    ['hitsAddend as a decimal string', `{"domain":"d","hitsAddend":"2","descriptors":[${entry}]}`, 200],
    ['hitsAddend at the uint32 maximum', `{"domain":"d","hitsAddend":4294967295,"descriptors":[{"entries":[{"key":"k","value":"max"}]}]}`, 429],
    ['hitsAddend above the uint32 maximum', `{"domain":"d","hitsAddend":4294967296,"descriptors":[${entry}]}`, 400],
    ['hitsAddend 1e300', `{"domain":"d","hitsAddend":1e300,"descriptors":[${entry}]}`, 400],
    ['a descriptor hitsAddend above the uint32 maximum', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"hitsAddend":4294967296}]}', 400],
    ['hitsAddend as an empty string', `{"domain":"d","hitsAddend":"","descriptors":[${entry}]}`, 400],
    ['hitsAddend as a padded string', `{"domain":"d","hitsAddend":" 2 ","descriptors":[${entry}]}`, 400],
    ['hitsAddend as a hex string', `{"domain":"d","hitsAddend":"0x10","descriptors":[${entry}]}`, 400],
    ['a descriptor that is a string', '{"domain":"d","descriptors":["x"]}', 400],
    ['a descriptor that is a list', `{"domain":"d","descriptors":[[${entry}]]}`, 400],
    ['an entry that is a string', '{"domain":"d","descriptors":[{"entries":["k"]}]}', 400],
    ['a descriptor that is null', '{"domain":"d","descriptors":[null]}', 400],
    ['an entry that is null', '{"domain":"d","descriptors":[{"entries":[null]}]}', 400],
    ['a limit that is null (unset)', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"limit":null}]}', 200],
    ['a limit that is a string', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"limit":"x"}]}', 400],
    ['an unknown field in the request', `{"domain":"d","descriptor":[${entry}]}`, 400],
    ['an unknown field in a descriptor', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"hits":2}]}', 400],
    ['an unknown field in an entry', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v","x":1}]}]}', 400],
    ['an unknown field in a limit', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"limit":{"requests_per_unit":5,"unit":"MINUTE","name":"x"}}]}', 400],
    ['an empty field name', `{"domain":"d","descriptors":[${entry}],"":1}`, 400],
    ['a field named in the wrong case', `{"Domain":"d","descriptors":[${entry}]}`, 400],
    ['a field given twice', `{"domain":"d","domain":"e","descriptors":[${entry}]}`, 400],
    ['a field given twice, once escaped', `{"domain":"d","d\\u006fmain":"d","descriptors":[${entry}]}`, 400],
    ['a field given twice in an entry', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v","key":"j"}]}]}', 400],
    ['a field under its JSON and its proto name', `{"domain":"d","hitsAddend":1,"hits_addend":1,"descriptors":[${entry}]}`, 400],
    ['a limit unit as its number', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":2}}]}', 200],
    ['a limit unit as an integral float', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":2.0}}]}', 200],
    ['a limit unit as a fraction', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":2.5}}]}', 400],
    // The Go service panics on these (its connection drops); an unknown unit is a bad request.
    ['a limit unit numbered 0 (UNKNOWN)', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":0}}]}', 400],
    ['a limit unit no unit has', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":99}}]}', 400],
  ];
  for (const [name, body, status] of cases) {
    it(`${name}: ${status}`, async () => {
      const response = await fetch(`${t.adminUrl}/json`, { method: 'POST', body, signal: AbortSignal.timeout(5000) });
      assert.equal(response.status, status, await response.text());
    });
  }
});
