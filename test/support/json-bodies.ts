// Bodies for the admin POST /json endpoint, with the status envoyproxy/ratelimit (protojson into a RateLimitRequest)
// answers each: admin-json.test.ts holds Portcullis to them, ratelimit-peer.test.ts checks them against the Go service.

/** The descriptor file the bodies are written for: one key, a limit no body but the uint32 one reaches. */
export const JSON_LIMIT = 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 1000 }\n';

/** [what, body, status, 'panics' when the Go service drops the connection instead of answering]. */
export type JsonBody = readonly [string, string, number, 'panics'?];

const entry = '{"entries":[{"key":"k","value":"v"}]}';
export const JSON_BODIES: readonly JsonBody[] = [
  ['a well-formed request', `{"domain":"d","descriptors":[${entry}]}`, 200],
  ['hitsAddend as a decimal string', `{"domain":"d","hitsAddend":"2","descriptors":[${entry}]}`, 200],
  ['hitsAddend at the uint32 maximum', `{"domain":"d","hitsAddend":4294967295,"descriptors":[{"entries":[{"key":"k","value":"max"}]}]}`, 429],
  ['hitsAddend above the uint32 maximum', `{"domain":"d","hitsAddend":4294967296,"descriptors":[${entry}]}`, 400],
  ['hitsAddend 1e300', `{"domain":"d","hitsAddend":1e300,"descriptors":[${entry}]}`, 400],
  // A descriptor's hitsAddend is a UInt64Value: past every limit, but no error.
  ['a descriptor hitsAddend above the uint32 maximum', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"big"}],"hitsAddend":4294967296}]}', 429],
  ['a descriptor hitsAddend at the uint64 maximum, as a string', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"big"}],"hitsAddend":"18446744073709551615"}]}', 429],
  ['a descriptor hitsAddend above the uint64 maximum, as a string', `{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"hitsAddend":"18446744073709551616"}]}`, 400],
  ['a descriptor hitsAddend in exponent form', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"exp"}],"hitsAddend":1e2}]}', 200],
  ['a descriptor hitsAddend with a fraction', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"hitsAddend":1.5}]}', 400],
  ['a descriptor hitsAddend below zero', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}],"hitsAddend":-1}]}', 400],
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
  ['a lone surrogate in a value', `{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"\\ud800"}]}]}`, 400],
  ['a pair of surrogates in a value', `{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"\\ud83d\\ude00"}]}]}`, 200],
  ['a field under its JSON and its proto name', `{"domain":"d","hitsAddend":1,"hits_addend":1,"descriptors":[${entry}]}`, 400],
  ['a limit unit as its number', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":2}}]}', 200],
  ['a limit unit as an integral float', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":2.0}}]}', 200],
  ['a limit unit as a fraction', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":2.5}}]}', 400],
  // The Go service's handler panics on these (the connection drops); an unknown unit is a bad request.
  ['a limit unit numbered 0 (UNKNOWN)', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":0}}]}', 400, 'panics'],
  ['a limit unit no unit has', '{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"u"}],"limit":{"requests_per_unit":500,"unit":99}}]}', 400, 'panics'],
];
