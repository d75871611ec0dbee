// Mutations of config files for the fuzz tests: seeded edits (YAML syntax inserted, lines duplicated and swapped,
// bytes that break UTF-8, alias bombs), and the hostile files a reload must survive whole.

const SNIPPETS = [
  ':', ': ', '- ', '-', '[', ']', '{', '}', ',', '&a ', '*a', '&b [*a, *a, *a, *a]', 'k: &c [1, *c]\n', 'k: &d { x: *d }\n', '!!str ', '!!binary ', '|', '>', '"', "'", '#', '%YAML 1.1\n',
  '---\n', '...\n', '<<: *a\n', '? ', '\t', '\n', '  ', '99999999999999999999999', '3000000000', '-1', '1.5', '.inf', '.nan', '0x1F',
  'yes', '~', 'null', 'domain: x\n', 'ratelimit:\n', 'descriptors:\n', 'key: k\n', 'rate_limit: { unit: second, requests_per_unit: 1 }\n',
  '\u00e9', '\uFFFD', '\u0000', '\u2028',
];

/** One mutation of `bytes`, chosen by `random`. */
export function mutate(bytes: Buffer, random: () => number): Buffer {
  const at = Math.floor(random() * (bytes.length + 1));
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  switch (Math.floor(random() * 7)) {
    case 0: // delete a range
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + 1 + Math.floor(random() * 12)))]);
    case 1: // insert YAML syntax
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(pick(SNIPPETS)), bytes.subarray(at)]);
    case 2: { // duplicate a line (duplicate keys)
      const lines = bytes.toString('latin1').split('\n');
      const i = Math.floor(random() * lines.length);
      lines.splice(i, 0, lines[i] ?? '');
      return Buffer.from(lines.join('\n'), 'latin1');
    }
    case 3: { // swap two lines (indentation changes)
      const lines = bytes.toString('latin1').split('\n');
      const i = Math.floor(random() * lines.length);
      const j = Math.floor(random() * lines.length);
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
      return Buffer.from(lines.join('\n'), 'latin1');
    }
    case 4: // a byte that breaks UTF-8
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([pick([0x80, 0xc0, 0xe9, 0xff, 0xed])]), bytes.subarray(at)]);
    case 5: { // flip one character
      const copy = Buffer.from(bytes);
      if (copy.length > 0) copy[Math.min(at, copy.length - 1)] = 32 + Math.floor(random() * 95);
      return copy;
    }
    default: { // an alias bomb prefix: 8^7 leaves from a few hundred bytes
      const levels = ['b0: &b0 [x, x, x, x, x, x, x, x]'];
      for (let l = 1; l < 7; l++) levels.push(`b${l}: &b${l} [${Array.from({ length: 8 }, () => `*b${l - 1}`).join(', ')}]`);
      return Buffer.concat([Buffer.from(`${levels.join('\n')}\n`), bytes]);
    }
  }
}

/**
 * Whole hostile versions of a YAML config file, by name: what a bad edit, a bad copy or a hostile author leaves. Each
 * must be refused (or loaded, if it is still a valid file) without stopping or stalling the process.
 */
export function hostileVersions(original: Buffer): [string, Buffer][] {
  const text = original.toString('utf8');
  const laughs = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let l = 1; l < 9; l++) laughs.push(`l${l}: &l${l} [${Array.from({ length: 9 }, () => `*l${l - 1}`).join(', ')}]`);
  const firstLine = text.split('\n').find((l) => /^[a-z_]+:/.test(l)) ?? 'k: 1';
  return [
    // First, while the process is fresh: 10,000 `[` in the first reload after start killed `serve` (V8 ran out of
    // stack compiling a regular expression for the yaml library's recursion: fatal, no RangeError).
    ['10,000 [ deep', Buffer.from(`${'['.repeat(10_000)}\n`)],
    ['empty', Buffer.alloc(0)],
    ['truncated mid-line', original.subarray(0, Math.floor(original.length / 2))],
    ['truncated to its first line', Buffer.from(`${text.split('\n')[0]}\n`)],
    ['binary', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256))],
    ['NUL bytes', Buffer.concat([original, Buffer.alloc(64)])],
    ['UTF-16 without its byte order mark', Buffer.from(text, 'utf16le')],
    ['huge: 20 MB of comment', Buffer.concat([original, Buffer.from(`# ${'x'.repeat(20 << 20)}\n`)])],
    ['huge: one 2 MB scalar', Buffer.from(`${firstLine.split(':')[0]}: ${'v'.repeat(2 << 20)}\n`)],
    ['100,000 { deep, closed', Buffer.from(`${'{a: '.repeat(100_000)}1${'}'.repeat(100_000)}\n`)],
    ['2,000 block levels', Buffer.from(Array.from({ length: 2000 }, (_, d) => `${' '.repeat(d)}k:\n`).join(''))],
    ['billion laughs', Buffer.from(`${laughs.join('\n')}\n${text}`)],
    ['an alias cycle', Buffer.from(`a: &a [*a]\n${text}`)],
    ['duplicate keys', Buffer.from(`${text}\n${text}`)],
    ['100,000 duplicate keys', Buffer.from(`${text}\n${`${firstLine}\n`.repeat(100_000)}`)],
    ['a second document', Buffer.from(`${text}\n---\n${text}`)],
    ['just under 1 MiB of unknown keys', Buffer.from(Array.from({ length: 80_000 }, (_, i) => `k${i}: 1\n`).join(''))],
    ['just under 1 MiB of list items', Buffer.from(`${firstLine.split(':')[0]}:\n${'  - {a: 1}\n'.repeat(90_000)}`)],
    ['tabs for indentation', Buffer.from(text.replace(/^ {2}/gm, '\t'))],
  ];
}
