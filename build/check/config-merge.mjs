// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Every field of the configuration structs that holds a directive value is
// assigned in its merge function, and every field the merge tests against an
// "unset" marker (-1, *_UNSET) is set to that marker in its create function:
// a field left out of merge silently stops inheriting from the main server,
// one left out of create reads as "set to 0" and overrides the main server.
// Run: node build/check/config-merge.mjs
import { lex, moduleSources, report } from './csource.mjs';

const HEADER = 'src/mod_bff_config.h';
const SOURCE = 'src/mod_bff_config.c';
const STRUCTS = [
    { name: 'bff_srv_conf_t', create: 'bff_config_create_server', merge: 'bff_config_merge_server' },
    { name: 'bff_dir_conf_t', create: 'bff_config_create_dir', merge: 'bff_config_merge_dir' },
];
// Fields that hold no directive value (none: the runtime objects built from
// the values live in bff_site_t, src/mod_bff_site.h, and nothing writes to
// the configuration after the merge).
const RUNTIME_ONLY = { bff_srv_conf_t: {}, bff_dir_conf_t: {} };
// Fields that bff_conf_same() may leave out: two servers that differ only in
// them can share one bff_site_t (one key ring, store and provider cache).
// Any other field left out would let a virtual host run on another's
// settings (its client secret, its keys).
const SAME_EXEMPT = {
    store_spec: 'parsed from store_arg, which is compared',
    pass_cookie_at: 'start-up warnings only; never part of the runtime',
};

// The fields of "typedef struct { ... } name;" with the line of each.
function structFields(src, name) {
    const m = new RegExp(`typedef\\s+struct\\s*\\{([^}]*)\\}\\s*${name}\\s*;`).exec(src.code);
    if (!m) return null;
    const bodyStart = m.index + m[0].indexOf('{') + 1;
    const fields = [];
    let off = bodyStart;
    for (const decl of m[1].split(';')) {
        const id = /(\w+)\s*(\[[^\]]*\]\s*)?$/.exec(decl.trim());
        if (id && decl.trim()) {
            fields.push({ field: id[1], line: src.lineOf(off + decl.lastIndexOf(id[1])) });
        }
        off += decl.length + 1;
    }
    return fields;
}

// The body of function fn's definition, with the line it starts on.
function functionBody(src, fn) {
    const m = new RegExp(`\\b${fn}\\s*\\([^;{]*\\)\\s*\\{`).exec(src.code);
    if (!m) return null;
    let depth = 0, k = m.index + m[0].length - 1;
    const start = k;
    for (; k < src.code.length; k++) {
        if (src.code[k] === '{') depth++;
        else if (src.code[k] === '}' && --depth === 0) break;
    }
    return { body: src.code.slice(start, k + 1), line: src.lineOf(m.index) };
}

const header = lex(HEADER);
const source = lex(SOURCE);
const problems = [];
let checked = 0;
for (const s of STRUCTS) {
    const fields = structFields(header, s.name);
    const merge = functionBody(source, s.merge);
    const create = functionBody(source, s.create);
    if (!fields || !merge || !create) {
        problems.push({ file: fields ? SOURCE : HEADER, line: 1,
                        msg: `cannot find ${fields ? `${s.merge}/${s.create}` : `struct ${s.name}`}; update build/check/config-merge.mjs` });
        continue;
    }
    const allowed = RUNTIME_ONLY[s.name];
    for (const { field, line } of fields) {
        if (allowed[field]) continue;
        checked++;
        const f = field.replace(/\W/g, '');
        if (!new RegExp(`->\\s*${f}\\s*=(?!=)`).test(merge.body)) {
            problems.push({ file: HEADER, line, msg: `${s.name}.${field} is not assigned in ${s.merge} (${SOURCE}:${merge.line}); merge it, or list it in RUNTIME_ONLY with the reason` });
        }
        const unset = new RegExp(`->\\s*${f}\\s*!=\\s*(-1|\\w+_UNSET)\\b|MERGE_INT\\(\\s*${f}\\s*\\)`).test(merge.body);
        if (unset && !new RegExp(`->\\s*${f}\\s*=\\s*(-1|\\w+_UNSET)\\s*;`).test(create.body)) {
            problems.push({ file: HEADER, line, msg: `${s.name}.${field} is merged as unset-when-marked but ${s.create} (${SOURCE}:${create.line}) does not set the marker` });
        }
    }
    for (const field of Object.keys(allowed)) {
        if (!fields.some((x) => x.field === field)) {
            problems.push({ file: 'build/check/config-merge.mjs', line: 1, msg: `RUNTIME_ONLY names ${s.name}.${field}, which no longer exists; remove it` });
        }
    }
}
// Every directive value of a server decides which site it shares.
const same = functionBody(source, 'bff_conf_same');
const srvFields = structFields(header, 'bff_srv_conf_t') || [];
if (!same) {
    problems.push({ file: SOURCE, line: 1, msg: 'cannot find bff_conf_same; update build/check/config-merge.mjs' });
} else {
    for (const { field, line } of srvFields) {
        if (SAME_EXEMPT[field]) continue;
        checked++;
        if (!new RegExp(`\\ba->\\s*${field}\\b`).test(same.body) || !new RegExp(`\\bb->\\s*${field}\\b`).test(same.body)) {
            problems.push({ file: HEADER, line, msg: `bff_srv_conf_t.${field} is not compared in bff_conf_same (${SOURCE}:${same.line}): servers that differ in it would share one site; compare it, or list it in SAME_EXEMPT with the reason` });
        }
    }
}
// Nothing but the directive handlers, create and merge writes to the
// configuration: the runtime is built into bff_site_t.
for (const file of moduleSources().filter((f) => f !== SOURCE)) {
    const src = lex(file);
    const vars = new Set([...src.code.matchAll(/\bbff_srv_conf_t\s*\*\s*(\w+)/g)].map((m) => m[1]));
    for (const v of vars) {
        const w = new RegExp(`\\b${v}->\\s*\\w+(\\.\\w+)*\\s*=(?!=)`, 'g');
        for (const x of src.code.matchAll(w)) {
            problems.push({ file, line: src.lineOf(x.index), msg: `writes to the configuration (${v}) after the merge; build runtime values into bff_site_t` });
        }
    }
}
process.exitCode = report('config-merge', problems,
    `${checked} checks: directive fields of ${STRUCTS.map((s) => s.name).join(', ')} merged and initialised, compared in bff_conf_same, not written after the merge`);
