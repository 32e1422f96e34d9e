// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Reading callgrind output: total Ir, self Ir per ELF object, and the
// inclusive Ir of calls that enter one object from outside it (the work done
// on behalf of a module, including the OpenSSL, APR and libc code it calls).

import fs from 'node:fs';

/**
 * Parse a callgrind.out file (event Ir only needed). `target` is a substring
 * of the object path of interest (e.g. 'mod_bff.so'). Returns { total,
 * selfByObject: Map, selfByFn: Map('obj|fn' -> Ir), intoTarget,
 * intoTargetByFn: Map }.
 */
export function parseCallgrind(file, target) {
    const text = fs.readFileSync(file, 'utf8');
    const obNames = new Map();
    const fnNames = new Map();
    const name = (map, spec) => {
        const m = /^\((\d+)\)(?:\s+(.*))?$/.exec(spec);
        if (!m) return spec;
        if (m[2] !== undefined) map.set(m[1], m[2]);
        return map.get(m[1]) ?? `(${m[1]})`;
    };
    let total = null;
    let ob = '';
    let fn = '';
    let cob = null;
    let cfn = null;
    let pendingCall = false;
    const selfByObject = new Map();
    const selfByFn = new Map();
    const intoTargetByFn = new Map();
    let intoTarget = 0;
    const add = (map, k, v) => map.set(k, (map.get(k) || 0) + v);
    for (const line of text.split('\n')) {
        if (!line) continue;
        const c = line.charCodeAt(0);
        // Cost line: position then costs (Ir first).
        if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42) {
            const parts = line.split(' ');
            const ir = Number(parts[1] || 0);
            if (pendingCall) {
                const calleeOb = cob ?? ob;
                if (!ob.includes(target) && calleeOb.includes(target)) {
                    intoTarget += ir;
                    add(intoTargetByFn, cfn ?? '?', ir);
                }
                pendingCall = false;
                cob = null;
                cfn = null;
            } else {
                add(selfByObject, ob, ir);
                add(selfByFn, `${ob}|${fn}`, ir);
            }
            continue;
        }
        const eq = line.indexOf('=');
        const key = eq > 0 ? line.slice(0, eq) : '';
        const val = eq > 0 ? line.slice(eq + 1) : '';
        switch (key) {
        case 'ob': ob = name(obNames, val); break;
        case 'fn': fn = name(fnNames, val); break;
        case 'cob': cob = name(obNames, val); break;
        case 'cfn': cfn = name(fnNames, val); break;
        case 'calls': pendingCall = true; break;
        default:
            if (line.startsWith('summary:') || line.startsWith('totals:')) {
                total = Number(line.split(/\s+/)[1]);
            }
        }
    }
    if (total === null) total = [...selfByObject.values()].reduce((a, b) => a + b, 0);
    return { total, selfByObject, selfByFn, intoTarget, intoTargetByFn };
}

/** Top n entries of a Map by value. */
export function top(map, n) {
    return [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}
