// Fenced code blocks of a Markdown file, for the tests that hold the docs to what the code does.

export interface FencedBlock {
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The info string's first word (`yaml`, `sh`), '' when there is none. */
  readonly lang: string;
  /** The info string's other words: `yaml portcullis` says what kind of YAML the block holds. */
  readonly tags: readonly string[];
  readonly text: string;
}

/** Blocks fenced by ``` or ~~~ at the start of a line (the docs indent none); an unclosed fence runs to the end. */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  const lines = markdown.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const [lang = '', ...tags] = open[2]!.trim().split(/\s+/).filter((w) => w !== '');
    const body: string[] = [];
    let j = i + 1;
    // A closing fence is at least as long as the opening one, of the same character, with nothing after it.
    while (j < lines.length && !(lines[j]!.startsWith(fence) && /^(`+|~+)\s*$/.test(lines[j]!) && lines[j]![0] === fence[0])) body.push(lines[j++]!);
    blocks.push({ line: i + 1, lang, tags, text: body.length === 0 ? '' : `${body.join('\n')}\n` });
    i = j;
  }
  return blocks;
}

/**
 * The words of one shell command line as the shell would pass them: single and double quotes group (no escapes or
 * expansions inside: the docs' commands need none), and an unquoted `#` at the start of a word begins a comment.
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end === -1) throw new Error(`unclosed ${c} in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}
