// For tests/test_jslexer.py and benchmarks/jslexer_bench.py: lex files
// with es-module-lexer and print, per file, what bustware.jslexer reports
// too, with offsets turned from UTF-16 code units into UTF-8 bytes.
//   node eml.mjs FILE...           -> JSON lines {file, module, imports|error}
//   node eml.mjs --time N FILE...  -> JSON {bytes, seconds: [N timings]}
import { readFileSync } from 'node:fs';
import { init, parse } from 'es-module-lexer';

await init();
const args = process.argv.slice(2);

function byteOffsets(source) {
  // UTF-16 index -> UTF-8 byte offset, for the indices a record names.
  const cache = new Map();
  let lastIndex = 0, lastByte = 0;
  return (index) => {
    if (cache.has(index)) return cache.get(index);
    // Records come in source order: continue from the last one when possible.
    const from = index >= lastIndex ? lastIndex : 0;
    const base = index >= lastIndex ? lastByte : 0;
    const byte = base + Buffer.byteLength(source.slice(from, index), 'utf8');
    lastIndex = index; lastByte = byte;
    cache.set(index, byte);
    return byte;
  };
}

if (args[0] === '--time') {
  const rounds = Number(args[1]);
  const sources = args.slice(2).map((f) => readFileSync(f, 'utf8'));
  const bytes = args.slice(2).reduce((n, f) => n + readFileSync(f).length, 0);
  for (const s of sources) { try { parse(s); } catch {} }  // warm up
  const seconds = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (const s of sources) { try { parse(s); } catch {} }
    seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(JSON.stringify({ bytes, seconds }));
} else {
  for (const file of args) {
    let source = readFileSync(file, 'utf8');
    // A browser decodes a script without its byte order mark (the WHATWG
    // "UTF-8 decode"); es-module-lexer would read it as part of a word
    // ("\uFEFFimport"), so it is given the text a browser lexes.
    const bom = source.charCodeAt(0) === 0xFEFF ? 3 : 0;
    if (bom) source = source.slice(1);
    let result;
    try {
      const [imports, , , hasModuleSyntax] = parse(source);
      const utf8 = byteOffsets(source);
      const at = (index) => utf8(index) + bom;
      result = {
        file, module: hasModuleSyntax,
        imports: imports.filter((i) => i.type !== 'import-meta').map((i) => [
          i.type, at(i.start), at(i.end), i.specifier ?? null, i.glob ?? false,
          i.phase ?? null]),
      };
    } catch (e) {
      result = { file, error: String(e && e.message || e) };
    }
    console.log(JSON.stringify(result));
  }
}
