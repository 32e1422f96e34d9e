// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// The log-tag registry: every "BFFnnnnn: " tag in mod_bff.c and src/ starts
// exactly one message (one message per tag, so a tag in a log line points to
// one place in the code), every tag a comment names exists, and the table
// "Log messages by tag" in docs/troubleshooting.md lists exactly the tags the
// code has, at the level the code logs it, each row saying what it means and
// what to do. Run: node build/check/log-tags.mjs [--draft]
// --draft prints a table row (tag, level, message) for each tag in the code,
// a start for documenting new tags.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, lex, moduleSources, report } from './csource.mjs';

const DOC = 'docs/troubleshooting.md';
const SECTION = 'Log messages by tag';
const TAG = /BFF\d{5}/g;

const uses = new Map();     // tag -> [{ file, line, level, message }]
const mentions = [];        // { tag, file, line } in comments
const outcomeLevels = outcomeTable();
let helpers = new Map();    // function name -> levels its body logs at (this file)
for (const file of moduleSources()) {
    const { text, code, strings, lineOf } = lex(file);
    helpers = helperLevels(code, text);
    const inString = new Set();
    for (const s of strings) {
        const m = /^BFF\d{5}(?=: )/.exec(s.value);
        for (const t of s.value.matchAll(TAG)) inString.add(s.start + 1 + t.index);
        if (!m) continue;
        const entry = { file, line: lineOf(s.start), ...describe(code, strings, s) };
        if (!uses.has(m[0])) uses.set(m[0], []);
        uses.get(m[0]).push(entry);
    }
    for (const t of text.matchAll(TAG)) {
        if (!inString.has(t.index)) mentions.push({ tag: t[0], file, line: lineOf(t.index) });
    }
}

// The level(s) named in the statement around a tag and the message text (the
// adjacent string literals that start with the tag).
function describe(code, strings, s) {
    let from = s.start, to = s.end;
    while (from > 0 && !';{}'.includes(code[from - 1])) from--;
    while (to < code.length && code[to] !== ';') to++;
    const stmt = code.slice(from, to);
    const levels = levelsIn(stmt);
    // A helper that logs the message it is given (static, same file).
    for (const m of stmt.matchAll(/\b([a-z_][a-z0-9_]*)\s*\(/g)) {
        if (helpers.has(m[1])) levels.push(...helpers.get(m[1]));
    }
    let message = s.value;
    for (let k = strings.indexOf(s) + 1; k < strings.length; k++) {
        // "%" APR_SIZE_T_FMT and the like: a format macro between literals.
        const gap = code.slice(strings[k - 1].end, strings[k].start).trim();
        if (gap !== '' && !/^[A-Z0-9_]+_FMT$/.test(gap)) break;
        message += (gap ? 'd' : '') + strings[k].value;
    }
    return { level: [...new Set(levels)].join('/') || '?', message };
}

// Levels named in a piece of code: APLOG_X (TRACE1..8 too), BFF_LOG_X, and an outcome's
// level from the table in src/mod_bff_respond.c
// (bff_respond_level(BFF_OUTCOME_X); "store" for the rate-limited one).
function levelsIn(code) {
    const out = [];
    const re = /\b(?:APLOG|BFF_LOG)_(?!MARK\b)([A-Z]+[1-8]?)\b|bff_respond_level\s*\(\s*BFF_OUTCOME_([A-Z_]+)\s*\)/g;
    for (const m of code.matchAll(re)) {
        if (m[1]) out.push(levelName(m[1]));
        else out.push(outcomeLevels.get(m[2]) || '?');
    }
    return out;
}

function levelName(x) {
    return x.toLowerCase().replace('warning', 'warn').replace(/^err$/, 'error');
}

// The outcome table: [BFF_OUTCOME_X] = { ..., APLOG_Y, ... } (-1: the
// store's rate-limited level).
function outcomeTable() {
    const map = new Map();
    let code;
    try {
        code = lex('src/mod_bff_respond.c').code;
    } catch {
        return map;
    }
    for (const m of code.matchAll(/\[BFF_OUTCOME_([A-Z_]+)\]\s*=\s*\{([^}]*)\}/g)) {
        const field = m[2].split(',').map((x) => x.trim()).find((x) => /^APLOG_[A-Z]+$/.test(x) || x === '-1');
        const lv = field && /^APLOG_([A-Z]+)$/.exec(field);
        map.set(m[1], lv ? levelName(lv[1]) : field === '-1' ? 'store' : '?');
    }
    return map;
}

// Static functions that log a message passed to them ("%s" format): the
// level their body logs at counts for the tags their callers pass in.
function helperLevels(code, text) {
    const map = new Map();
    for (const m of code.matchAll(/\bstatic\s+[a-z_][a-z0-9_ \t*]*?\b([a-z_][a-z0-9_]*)\s*\([^;{]*\)\s*\{/g)) {
        let depth = 1, k = m.index + m[0].length;
        while (k < code.length && depth > 0) {
            if (code[k] === '{') depth++;
            else if (code[k] === '}') depth--;
            k++;
        }
        const body = code.slice(m.index + m[0].length, k);
        const raw = text.slice(m.index + m[0].length, k);
        if (/ap_log_rerror|ap_log_error|BFF_LOG\s*\(/.test(body) && /"%s"/.test(raw)) {
            const lv = levelsIn(body);
            if (lv.length) map.set(m[1], lv);
        }
    }
    return map;
}

function docTags() {
    let lines;
    try {
        lines = readFileSync(join(ROOT, DOC), 'utf8').split('\n');
    } catch {
        return { found: [], missingSection: true };
    }
    const start = lines.findIndex((l) => l.replace(/^#+\s*/, '') === SECTION && l.startsWith('#'));
    const found = [];
    if (start < 0) return { found, missingSection: true };
    for (let k = start + 1; k < lines.length && !/^#{1,2} /.test(lines[k]); k++) {
        const m = /^\|\s*`?(BFF\d{5})`?\s*\|([^|]*)\|/.exec(lines[k]);
        if (m) found.push({ tag: m[1], level: levelSet(m[2]), line: k + 1, cells: cells(lines[k]) });
    }
    return { found, missingSection: false };
}

// The cells of a table row ("\|" inside a cell is not a separator).
function cells(row) {
    return row.replace(/\\\|/g, '\u0000').split('|').slice(1, -1)
        .map((c) => c.replace(/\u0000/g, '|').trim());
}

// "warn / error" -> "error/warn": levels compared as sets.
function levelSet(text) {
    return text.split('/').map((x) => x.trim()).filter(Boolean).sort().join('/');
}

if (process.argv.includes('--draft')) {
    for (const tag of [...uses.keys()].sort()) {
        for (const u of uses.get(tag)) {
            console.log(`| \`${tag}\` | ${u.level} | ${u.message.replace(/\|/g, '\\|')} | | | ${u.file}:${u.line}`);
        }
    }
    process.exit(0);
}

const problems = [];
for (const [tag, list] of uses) {
    if (list.length > 1) {
        for (const u of list) {
            problems.push({ file: u.file, line: u.line,
                            msg: `${tag} starts ${list.length} messages; give each message its own tag` });
        }
    }
}
for (const m of mentions) {
    if (!uses.has(m.tag)) {
        problems.push({ file: m.file, line: m.line, msg: `${m.tag} is named in a comment but no message has it` });
    }
}
const { found, missingSection } = docTags();
if (missingSection) {
    problems.push({ file: DOC, line: 1, msg: `no section "${SECTION}" (or no such file)` });
}
const inDoc = new Map();
for (const d of found) {
    if (inDoc.has(d.tag)) {
        problems.push({ file: DOC, line: d.line, msg: `${d.tag} is listed twice (also at line ${inDoc.get(d.tag)})` });
    } else {
        inDoc.set(d.tag, d.line);
    }
    // Tag, level, message, what it means, what to do: the last two say something.
    if (d.cells.length !== 5 || !d.cells[3] || !d.cells[4]) {
        problems.push({ file: DOC, line: d.line, msg: `${d.tag}: a row has five cells (tag, level, message, what it means, what to do), none of the last two empty` });
    }
    if (!uses.has(d.tag)) {
        problems.push({ file: DOC, line: d.line, msg: `${d.tag} is documented but no message in the code has it; remove the row` });
    } else {
        const code = uses.get(d.tag)[0];
        if (levelSet(code.level) !== d.level) {
            problems.push({ file: DOC, line: d.line, msg: `${d.tag} is documented at level "${d.level}", the code (${code.file}:${code.line}) logs it at "${code.level}"` });
        }
    }
}
for (const [tag, list] of uses) {
    if (!inDoc.has(tag) && !missingSection) {
        problems.push({ file: list[0].file, line: list[0].line,
                        msg: `${tag} is not in ${DOC} ("${SECTION}"); add a row (node build/check/log-tags.mjs --draft)` });
    }
}
problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
process.exitCode = report('log-tags', problems,
    `${uses.size} tags, each used once and documented in ${DOC}`);
