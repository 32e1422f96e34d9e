// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Every field of the configuration structs that holds a directive value is
// assigned in its merge function, and every field the merge tests against an
// "unset" marker (-1, *_UNSET) is set to that marker in its create function:
// a field left out of merge silently stops inheriting from the main server,
// one left out of create reads as "set to 0" and overrides the main server.
// Run: node build/check/config-merge.mjs
import { lex, report } from './csource.mjs';

const HEADER = 'src/mod_bff_config.h';
const SOURCE = 'src/mod_bff_config.c';
const STRUCTS = [
    { name: 'bff_srv_conf_t', create: 'bff_config_create_server', merge: 'bff_config_merge_server' },
    { name: 'bff_dir_conf_t', create: 'bff_config_create_dir', merge: 'bff_config_merge_dir' },
];
// Fields that hold no directive value: built at post_config from the merged
// values (bff_config_finalize / the store and provider setup), so merging them
// would copy one virtual host's runtime objects into another.
const RUNTIME_ONLY = {
    bff_srv_conf_t: {
        txn_cookie_name: 'derived from cookie_name in bff_config_finalize',
        txn_cookie_prefix: 'derived from cookie_name in bff_config_finalize',
        keyring: 'built from crypto_keys at post_config',
        store: 'opened from store_spec at post_config',
        provider: 'provider cache created at post_config',
        client: 'built from client_id/secret/auth in bff_config_finalize',
        origin: 'derived from redirect_uri in bff_config_finalize',
        site: 'derived from origin and client_id in bff_config_finalize',
        trusted_audiences: 'built from trusted_aud in bff_config_finalize',
        sessions: 'sessions service built over store and keyring at post_config',
    },
    bff_dir_conf_t: {},
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
process.exitCode = report('config-merge', problems,
    `${checked} directive fields of ${STRUCTS.map((s) => s.name).join(', ')} merged and initialised`);
