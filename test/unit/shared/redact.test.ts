import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactUrlCredentials } from '../../../src/shared/redact.js';

describe('redactUrlCredentials', () => {
  const cases: [name: string, text: string, shown: string][] = [
    ['no URL', 'connect ECONNREFUSED 127.0.0.1:6379', 'connect ECONNREFUSED 127.0.0.1:6379'],
    ['a URL without credentials', "got 'https://idp/jwks?kid=1'", "got 'https://idp/jwks?kid=1'"],
    ['http user info', "got 'https://u:s3cret@idp/jwks'", "got 'https://***@idp/jwks'"],
    ['a password with a / (the URL does not parse)', "got 'redis://:s3/cret@h:1/0' (line 2)", "got 'redis://***@h:1/0' (line 2)"],
    ['a password with a #', "got 'redis://:x#s3cret@h:1/0'", "got 'redis://***@h:1/0'"],
    ['a password with a ?', "got 'http://u:a?s3cret@h:1'", "got 'http://***@h:1'"],
    ['a password with a space', 'redis://: s3 cret@h:1', 'redis://***@h:1'],
    ['an access token in the query', 'https://idp/i?access_token=s3cret&x=1', 'https://idp/i?access_token=***&x=1'],
    ['an API key in the query', 'https://api/x?api_key=s3cret', 'https://api/x?api_key=***'],
    ['two URLs, each on its own', "'http://a:s1@h1' and 'http://b:s2@h2/p@q'", "'http://***@h1' and 'http://***@q'"],
  ];
  for (const [name, text, shown] of cases) {
    it(name, () => assert.equal(redactUrlCredentials(text), shown));
  }

  it('is idempotent', () => {
    for (const [, text] of cases) assert.equal(redactUrlCredentials(redactUrlCredentials(text)), redactUrlCredentials(text));
  });
});

describe('redactUrlCredentials: Redis URLs in log lines', () => {
  const cases: { name: string; text: string; shown: string }[] = [
    { name: 'no URL', text: 'connect ECONNREFUSED 127.0.0.1:6379', shown: 'connect ECONNREFUSED 127.0.0.1:6379' },
    { name: 'a host:port seed', text: 'cache:6379', shown: 'cache:6379' },
    {
      name: 'a password with whitespace',
      text: 'failed: redis://:hunter2 hunter3@127.0.0.1:16393/0',
      shown: 'failed: redis://***@127.0.0.1:16393/0',
    },
    {
      name: 'a secret parameter with whitespace runs to the end of the text',
      text: 'redis://h:1/0?sentinelPassword=abc def',
      shown: 'redis://h:1/0?sentinelPassword=***',
    },
    {
      name: 'several URLs in one message, each redacted on its own',
      text: 'seeds redis://:a b@h1:7000?password=c d redis://u:e@f g@h2:7001/0?db=2&token=x y, rediss://h3:7002 down',
      shown: 'seeds redis://***@h1:7000?password=*** redis://***@h2:7001/0?db=2&token=*** rediss://h3:7002 down',
    },
    {
      name: 'an upper-case scheme (ioredis matches it case-insensitively)',
      text: 'REDIS://:s 3@h:1',
      shown: 'REDIS://***@h:1',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(redactUrlCredentials(c.text), c.shown));
  }
});
