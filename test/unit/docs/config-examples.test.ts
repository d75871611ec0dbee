// Every YAML example in README.md and docs/*.md says what it is, and the ones that are whole files load: a
// portcullis.yaml passes `portcullis validate --config`, a descriptor file `portcullis validate --descriptors`. So an
// example cannot drift from the schema unnoticed. The kind is the second word of the fence's info string:
//
//   ```yaml portcullis    a whole portcullis.yaml (the files it names are stubbed: STUBS below)
//   ```yaml descriptors   a whole descriptor file
//   ```yaml envoy         Envoy config (a part of a bootstrap; the shipped bootstraps are checked by the e2e tier)
//   ```yaml fragment      a part of a portcullis.yaml shown alone, too partial to load
//   ```yaml broken        a portcullis.yaml shown for its errors: the next block is exactly what validate prints
//
// A YAML block without one of these fails the first test.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { validate } from '../../../src/cli/validate.js';
import { repoRoot } from '../../support/envoy.js';
import { makeTestCertificates, type TestCertificates } from '../../support/grpc-tls.js';
import { fencedBlocks, type FencedBlock } from './fences.js';

const KINDS = ['portcullis', 'descriptors', 'envoy', 'fragment', 'broken'] as const;
type Kind = (typeof KINDS)[number];

interface Example extends FencedBlock {
  readonly file: string;
  /** The block after this one in the same file. */
  readonly next: FencedBlock | undefined;
}

function docFiles(): string[] {
  const docs = readdirSync(path.join(repoRoot(), 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  return ['README.md', ...docs.sort()];
}

function yamlExamples(): Example[] {
  return docFiles().flatMap((file) => {
    const blocks = fencedBlocks(readFileSync(path.join(repoRoot(), file), 'utf8'));
    return blocks.flatMap((b, i) => (b.lang === 'yaml' || b.lang === 'yml' ? [{ ...b, file, next: blocks[i + 1] }] : []));
  });
}

const kindOf = (example: Example): Kind | undefined => (example.tags.length === 1 ? KINDS.find((k) => k === example.tags[0]) : undefined);
const where = (example: Example): string => `${example.file}:${example.line}`;

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Certificates for the server.grpc.tls examples: `validate` reads and checks them (made once, on first use). */
let certificates: TestCertificates | undefined;
function tlsStubs(dir: string): void {
  if (certificates === undefined) {
    const made = mkdtempSync(path.join(tmpdir(), 'portcullis-docs-certs-'));
    dirs.push(made);
    certificates = makeTestCertificates(made);
  }
  mkdirSync(path.join(dir, 'certs'), { recursive: true });
  copyFileSync(certificates.server, path.join(dir, 'certs', 'portcullis.pem'));
  copyFileSync(certificates.serverKey, path.join(dir, 'certs', 'portcullis-key.pem'));
  copyFileSync(certificates.ca, path.join(dir, 'certs', 'envoy-ca.pem'));
}

/** The files the examples name, relative to the example's portcullis.yaml. An example naming another adds it here. */
function stubDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-docs-'));
  dirs.push(dir);
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const STUBS: Record<string, string | undefined> = {
    'ratelimit/': undefined, // ratelimit.descriptors' default
    'keys.yaml': '[]\n',
    'jwks.json': JSON.stringify({ keys: [{ ...jwk, kid: 'docs', alg: 'ES256', use: 'sig' }] }),
    'introspection-secret': 'docs-secret\n',
    'schemas/user.json': '{"type":"object"}\n',
  };
  for (const [name, text] of Object.entries(STUBS)) {
    const file = path.join(dir, name);
    mkdirSync(text === undefined ? file : path.dirname(file), { recursive: true });
    if (text !== undefined) writeFileSync(file, text);
  }
  tlsStubs(dir);
  return dir;
}

/** `portcullis validate` on the example in a stub directory: exit code, and stdout and stderr with the directory cut. */
async function validateExample(example: Example, kind: 'portcullis' | 'descriptors' | 'broken'): Promise<{ code: number; out: string; err: string }> {
  const dir = stubDir();
  let out = '';
  let err = '';
  const cut = (s: string): string => s.replaceAll(`${dir}${path.sep}`, '');
  let code: number;
  if (kind === 'descriptors') {
    writeFileSync(path.join(dir, 'ratelimit', 'example.yaml'), example.text);
    code = await validate({ descriptors: path.join(dir, 'ratelimit') }, (s) => (out += cut(s)), (s) => (err += cut(s)));
  } else {
    writeFileSync(path.join(dir, 'portcullis.yaml'), example.text);
    code = await validate({ config: path.join(dir, 'portcullis.yaml') }, (s) => (out += cut(s)), (s) => (err += cut(s)));
  }
  return { code, out, err };
}

describe('the YAML examples in the docs', () => {
  it('each says what it is (yaml portcullis | descriptors | envoy | fragment | broken)', () => {
    const examples = yamlExamples();
    assert.ok(examples.length > 0, 'no YAML examples found: is the extraction broken?');
    const unmarked = examples.filter((e) => kindOf(e) === undefined).map((e) => `${where(e)}: \`\`\`${[e.lang, ...e.tags].join(' ')}`);
    assert.deepEqual(unmarked, [], `YAML blocks need a kind after the language, one of ${KINDS.join(', ')}`);
  });

  it('every portcullis.yaml example passes portcullis validate, with no warning', async () => {
    const examples = yamlExamples().filter((e) => kindOf(e) === 'portcullis');
    // README's configuration and composer examples, and one per docs page with a section of its own.
    assert.ok(examples.length >= 6, `only ${examples.length} portcullis examples found`);
    for (const example of examples) {
      const { code, out, err } = await validateExample(example, 'portcullis');
      assert.equal(code, 0, `${where(example)} does not validate:\n${out}${err}`);
      assert.equal(err, '', `${where(example)}: ${err}`);
    }
  });

  it('every descriptor file example passes portcullis validate --descriptors', async () => {
    const examples = yamlExamples().filter((e) => kindOf(e) === 'descriptors');
    assert.ok(examples.length >= 1, 'no descriptor file examples found');
    for (const example of examples) {
      const { code, out, err } = await validateExample(example, 'descriptors');
      assert.equal(code, 0, `${where(example)} does not validate:\n${out}${err}`);
    }
  });

  it('every broken portcullis.yaml example gets exactly the errors the block after it shows', async () => {
    const examples = yamlExamples().filter((e) => kindOf(e) === 'broken');
    assert.ok(examples.length >= 1, 'no broken examples found');
    for (const example of examples) {
      const { code, err } = await validateExample(example, 'broken');
      assert.equal(code, 1, `${where(example)} validates, yet is shown for its errors`);
      assert.ok(example.next !== undefined && example.next.lang === '', `${where(example)}: no plain block with the output after it`);
      assert.equal(err, example.next.text, `${where(example)}: the output shown at line ${example.next.line} is not what validate prints`);
    }
  });
});
