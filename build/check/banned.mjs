// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Banned C library calls in mod_bff.c and src/ (the tests may use some of
// them). Each entry says why and what to use instead; a call is reported as
// file:line. Run: node build/check/banned.mjs
import { readFileSync } from 'node:fs';
import { lex, moduleSources, report } from './csource.mjs';

const BANNED = {
    // Parsing numbers: no error report, undefined behaviour on overflow.
    atoi: 'no error or overflow check; use apr_strtoi64 / bff_util_parse_* and check the end',
    atol: 'no error or overflow check; use apr_strtoi64 and check the end',
    atoll: 'no error or overflow check; use apr_strtoi64 and check the end',
    atof: 'no error check; parse with strtod and check the end',
    // Unbounded writes into a fixed buffer.
    sprintf: 'unbounded write; use apr_psprintf or apr_snprintf',
    vsprintf: 'unbounded write; use apr_pvsprintf or apr_vsnprintf',
    strcpy: 'unbounded write; use apr_pstrdup or apr_cpystrn',
    strcat: 'unbounded write; use apr_pstrcat',
    gets: 'unbounded read; never usable',
    // Bounded, but wrong in a way that bites: strncpy does not NUL-terminate
    // when the source is long and pads with zeros otherwise; strncat's bound
    // is the space left, not the buffer size.
    strncpy: 'may leave the result without a NUL; use apr_cpystrn (always terminates)',
    strncat: 'bound is easy to get wrong; use apr_pstrcat',
    // Shared hidden state: not safe in a threaded MPM (event, worker).
    strtok: 'keeps hidden state across calls (not thread-safe); use apr_strtok',
    localtime: 'returns shared static storage; use apr_time_exp_lt',
    gmtime: 'returns shared static storage; use apr_time_exp_gmt',
    ctime: 'returns shared static storage; use apr_ctime / apr_rfc822_date',
    asctime: 'returns shared static storage; use apr_ctime',
    strerror: 'may return shared static storage; use apr_strerror',
    setenv: 'changes the environment of every thread of the httpd child',
    putenv: 'changes the environment of every thread of the httpd child',
    // Predictable numbers must never become session ids, states or keys.
    rand: 'not a CSPRNG; use bff_util_random / RAND_bytes',
    srand: 'not a CSPRNG; use bff_util_random / RAND_bytes',
    random: 'not a CSPRNG; use bff_util_random / RAND_bytes',
    srandom: 'not a CSPRNG; use bff_util_random / RAND_bytes',
    drand48: 'not a CSPRNG; use bff_util_random / RAND_bytes',
    lrand48: 'not a CSPRNG; use bff_util_random / RAND_bytes',
    // Unbounded stack use with a size that may come from a request.
    alloca: 'unbounded stack allocation; allocate from a pool',
    // Temporary files and shells: races and injection.
    tmpnam: 'racy name; use apr_file_mktemp',
    tempnam: 'racy name; use apr_file_mktemp',
    mktemp: 'racy name; use apr_file_mktemp',
    system: 'runs a shell in the httpd child; not for a module',
    popen: 'runs a shell in the httpd child; not for a module',
};

// Calls allowed for now, each with its reason: "file:line" -> why. Keep this
// empty; an entry names exactly one line and goes away with its call.
const ALLOWED = {
};

const re = new RegExp(`(?<![\\w.>$])(${Object.keys(BANNED).join('|')})\\s*\\(`, 'g');
const problems = [];
const used = new Set();
let files = 0;
for (const file of moduleSources()) {
    const { code, lineOf } = lex(file);
    files++;
    for (const m of code.matchAll(re)) {
        const line = lineOf(m.index);
        const key = `${file}:${line}:${m[1]}`;
        if (ALLOWED[key]) {
            used.add(key);
            console.log(`banned: ${file}:${line}: ${m[1]}() allowed for now (${ALLOWED[key]})`);
            continue;
        }
        problems.push({ file, line, msg: `banned call ${m[1]}(): ${BANNED[m[1]]}` });
    }
}
for (const key of Object.keys(ALLOWED)) {
    if (used.has(key)) continue;
    const [file, at, fn] = key.split(':');
    const self = readFileSync(new URL(import.meta.url), 'utf8');
    const line = self.slice(0, self.indexOf(`'${key}'`)).split('\n').length;
    problems.push({ file: 'build/check/banned.mjs', line,
                    msg: `stale allow-list entry: no ${fn}() at ${file}:${at} any more; remove the entry` });
}
process.exitCode = report('banned', problems,
    `no banned call in ${files} files (${Object.keys(BANNED).length} functions checked)`);
