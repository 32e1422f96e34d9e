// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// A small C lexer for the static checks: enough to tell code from comments
// and string literals, which is all they need (no preprocessing, no parsing).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

// The C files a check covers: mod_bff.c and src/*.[ch], relative to ROOT.
export function moduleSources() {
    const src = readdirSync(join(ROOT, 'src')).filter((f) => /\.[ch]$/.test(f)).sort();
    return ['mod_bff.c', ...src.map((f) => `src/${f}`)];
}

// { text, code, strings, lineOf }: code is text with every comment and the
// inside of every string and character literal blanked (newlines kept, so
// offsets and line numbers stay true); strings lists each string literal as
// { start, end, value } (value with its escapes left as written).
export function lex(file) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const out = text.split('');
    const strings = [];
    const blank = (from, to) => {
        for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
    };
    let i = 0;
    while (i < text.length) {
        const c = text[i];
        if (c === '/' && text[i + 1] === '*') {
            const end = text.indexOf('*/', i + 2);
            const stop = end < 0 ? text.length : end + 2;
            blank(i, stop);
            i = stop;
        } else if (c === '/' && text[i + 1] === '/') {
            let stop = text.indexOf('\n', i);
            if (stop < 0) stop = text.length;
            blank(i, stop);
            i = stop;
        } else if (c === '"' || c === "'") {
            let j = i + 1;
            while (j < text.length && text[j] !== c && text[j] !== '\n') j += text[j] === '\\' ? 2 : 1;
            if (c === '"') strings.push({ start: i, end: j + 1, value: text.slice(i + 1, j) });
            blank(i + 1, j);
            i = j + 1;
        } else if (c === '#' && /^\s*#\s*include\b/.test(text.slice(text.lastIndexOf('\n', i) + 1, i + 9))) {
            // #include <a/b.h>: the path is not code either.
            let stop = text.indexOf('\n', i);
            if (stop < 0) stop = text.length;
            blank(i, stop);
            i = stop;
        } else {
            i++;
        }
    }
    const starts = [0];
    for (let k = 0; k < text.length; k++) if (text[k] === '\n') starts.push(k + 1);
    const lineOf = (off) => {
        let lo = 0, hi = starts.length - 1;
        while (lo < hi) {
            const mid = (lo + hi + 1) >> 1;
            if (starts[mid] <= off) lo = mid; else hi = mid - 1;
        }
        return lo + 1;
    };
    return { text, code: out.join(''), strings, lineOf };
}

// Print "file:line: message" problems and return the process exit status.
export function report(name, problems, okLine) {
    for (const p of problems) console.error(`${p.file}:${p.line}: ${p.msg}`);
    if (problems.length) {
        console.error(`${name}: ${problems.length} problem(s)`);
        return 1;
    }
    if (okLine) console.log(`${name}: ${okLine}`);
    return 0;
}
