"use strict";
/*
 * omniplus curve engine: one long-lived node process per Python process.
 *
 * Why: starting node and building the wasm curve costs ~0.3-0.5 s per call, which
 * would dominate proving small batches and every MSM/FFT the collaborative prover
 * runs on its shares. Python (prover/engine.py) starts this script once and
 * talks to it over stdin/stdout.
 *
 * Framing (identical in both directions, all integers little-endian):
 *
 *     u32  header_len        bytes of the JSON header
 *     u64  payload_len       bytes of the binary payload (may be 0)
 *     header_len bytes       UTF-8 JSON object
 *     payload_len bytes      raw bytes
 *
 * Request header:  {"id": <int>, "cmd": <string>, ...arguments}
 * Reply header:    {"id": <same>, "ok": true, "ms": <node-side time>, ...results}
 *              or  {"id": <same>, "ok": false, "error": <message>}
 *
 * Field elements in payloads are 32-byte little-endian canonical integers
 * (never Montgomery form): the conversions happen here, next to the engine
 * that needs them.
 *
 * Commands:
 *   ping                                  -> {pid, node, threads}
 *   load_zkey {zkey, path}                -> {n_vars, n_public, domain_size, points: {section: count}}
 *   unload_zkey {zkey}                    -> {}
 *   prove {zkey}  payload = witness       -> {proof, public}   (snarkjs groth16.prove)
 *   msm_g1 {zkey, section, start} payload = scalars -> {point: [x, y] | null}
 *   msm_g2 {zkey, section, start} payload = scalars -> {point: [[x0, x1], [y0, y1]] | null}
 *   msm_at {zkey, section, count} payload = count u32 point indices, then count scalars
 *                                         -> {point}  (G1 or G2 by section; a sparse MSM:
 *                                         only the chosen points are touched, so a DO's block
 *                                         costs its own size, not the circuit's)
 *   verify {vkey, public, proof}          -> {valid}  (snarkjs groth16.verify, wasm pairings)
 *   pairing_eq {pairs: [[g1, g2], ...]}   -> {equal}  (Π e(g1_i, g2_i) == 1; points as decimal
 *                                         strings [x, y] / [[x0, x1], [y0, y1]], null = infinity)
 *   fft / ifft  payload = values          -> payload = transformed values
 * Points come back affine, coordinates as decimal strings, infinity as null.
 *
 * stdout carries frames only: console output is redirected to stderr.
 */

const fs = require("fs");
const snarkjs = require("snarkjs");
const { buildBn128 } = require("ffjavascript");

for (const k of ["log", "info", "debug"]) console[k] = console.error;

const N8 = 32;
const R = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;
const G1_SECTIONS = new Set([5, 6, 8, 9]);
const G2_SECTIONS = new Set([7]);

let curvePromise = null;
function getCurve() {
    // snarkjs builds the same multi-threaded singleton, so prove and msm share one thread pool.
    if (curvePromise === null) curvePromise = buildBn128();
    return curvePromise;
}

const zkeys = new Map();

function parseBinSections(data, magic) {
    // snarkjs binary container: magic, u32 version, u32 count, then {u32 type, u64 size, bytes}.
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const got = String.fromCharCode(data[0], data[1], data[2], data[3]);
    if (got !== magic) throw new Error(`not a ${magic} file (magic ${JSON.stringify(got)})`);
    const count = dv.getUint32(8, true);
    const sections = new Map();
    let p = 12;
    for (let i = 0; i < count; i++) {
        if (p + 12 > data.byteLength) throw new Error("truncated section table");
        const type = dv.getUint32(p, true);
        const size = Number(dv.getBigUint64(p + 4, true));
        p += 12;
        if (p + size > data.byteLength) throw new Error(`section ${type} runs past the end of the file`);
        if (!sections.has(type)) sections.set(type, { start: p, size });
        p += size;
    }
    return sections;
}

function loadZkey(id, path) {
    const data = new Uint8Array(fs.readFileSync(path));
    const sections = parseBinSections(data, "zkey");
    const need = [1, 2, 4, 5, 6, 7, 8, 9];
    for (const s of need) if (!sections.has(s)) throw new Error(`${path}: zkey has no section ${s}`);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (dv.getUint32(sections.get(1).start, true) !== 1) throw new Error(`${path}: zkey is not groth16`);
    let p = sections.get(2).start;
    const n8q = dv.getUint32(p, true);
    p += 4 + n8q;
    const n8r = dv.getUint32(p, true);
    p += 4 + n8r;
    if (n8q !== N8 || n8r !== N8) throw new Error(`${path}: not a bn128 zkey`);
    const nVars = dv.getUint32(p, true);
    const nPublic = dv.getUint32(p + 4, true);
    const domainSize = dv.getUint32(p + 8, true);
    const views = new Map();
    const points = {};
    for (const s of [5, 6, 7, 8, 9]) {
        const { start, size } = sections.get(s);
        const sz = G2_SECTIONS.has(s) ? 4 * N8 : 2 * N8;
        views.set(s, data.subarray(start, start + size));
        points[s] = size / sz;
    }
    zkeys.set(id, { path, data, views, nVars, nPublic, domainSize });
    return { n_vars: nVars, n_public: nPublic, domain_size: domainSize, points };
}

function getZkey(id) {
    const z = zkeys.get(id);
    if (!z) throw new Error(`zkey ${id} is not loaded`);
    return z;
}

function memWtns(witness) {
    // A .wtns image in memory: header section (n8, prime, count), then the plain values.
    const n = witness.byteLength / N8;
    const out = new Uint8Array(12 + 12 + 40 + 12 + witness.byteLength);
    const dv = new DataView(out.buffer);
    out.set([0x77, 0x74, 0x6e, 0x73], 0); // "wtns"
    dv.setUint32(4, 2, true);
    dv.setUint32(8, 2, true);
    dv.setUint32(12, 1, true);
    dv.setBigUint64(16, 40n, true);
    dv.setUint32(24, N8, true);
    let r = R;
    for (let i = 0; i < N8; i++) { out[28 + i] = Number(r & 0xffn); r >>= 8n; }
    dv.setUint32(60, n, true);
    dv.setUint32(64, 2, true);
    dv.setBigUint64(68, BigInt(witness.byteLength), true);
    out.set(witness, 76);
    return out;
}

function checkScalars(buf, what) {
    if (buf.byteLength % N8 !== 0) throw new Error(`${what}: payload is not a whole number of 32-byte values`);
    return buf.byteLength / N8;
}

async function msm(group, req, payload) {
    const z = getZkey(req.zkey);
    const section = req.section;
    const allowed = group === "G1" ? G1_SECTIONS : G2_SECTIONS;
    if (!allowed.has(section)) throw new Error(`section ${section} does not hold ${group} points`);
    const m = checkScalars(payload, `msm_${group.toLowerCase()}`);
    const sz = group === "G1" ? 2 * N8 : 4 * N8;
    const all = z.views.get(section);
    const start = req.start || 0;
    const total = all.byteLength / sz;
    if (!Number.isInteger(start) || start < 0 || start + m > total) {
        throw new Error(`section ${section} has ${total} points: cannot use ${m} from index ${start}`);
    }
    const curve = await getCurve();
    const G = curve[group];
    if (m === 0) return { point: null };
    const bases = all.subarray(start * sz, (start + m) * sz);
    const res = await G.multiExpAffine(bases, payload);
    if (G.isZero(res)) return { point: null };
    const [x, y] = G.toObject(G.toAffine(res));
    const str = (v) => (Array.isArray(v) ? v.map((c) => c.toString()) : v.toString());
    return { point: [str(x), str(y)] };
}

async function msmAt(req, payload) {
    // Gather the chosen points of a section into a dense base buffer, then one multiExpAffine.
    const z = getZkey(req.zkey);
    const section = req.section;
    const group = G1_SECTIONS.has(section) ? "G1" : (G2_SECTIONS.has(section) ? "G2" : null);
    if (group === null) throw new Error(`section ${section} holds no points`);
    const m = req.count;
    if (!Number.isInteger(m) || m < 0 || payload.byteLength !== m * (4 + N8)) {
        throw new Error(`msm_at: payload of ${payload.byteLength} bytes does not hold ${m} indices and scalars`);
    }
    const sz = group === "G1" ? 2 * N8 : 4 * N8;
    const all = z.views.get(section);
    const total = all.byteLength / sz;
    const dv = new DataView(payload.buffer, payload.byteOffset, 4 * m);
    const bases = new Uint8Array(m * sz);
    for (let i = 0; i < m; i++) {
        const k = dv.getUint32(4 * i, true);
        if (k >= total) throw new Error(`msm_at: section ${section} has ${total} points, index ${k} is outside`);
        bases.set(all.subarray(k * sz, (k + 1) * sz), i * sz);
    }
    const curve = await getCurve();
    const G = curve[group];
    if (m === 0) return { point: null };
    const scalars = new Uint8Array(payload.subarray(4 * m));
    const res = await G.multiExpAffine(bases, scalars);
    if (G.isZero(res)) return { point: null };
    const [x, y] = G.toObject(G.toAffine(res));
    const str = (v) => (Array.isArray(v) ? v.map((c) => c.toString()) : v.toString());
    return { point: [str(x), str(y)] };
}

async function fft(inverse, payload) {
    const n = checkScalars(payload, inverse ? "ifft" : "fft");
    if (n === 0 || (n & (n - 1)) !== 0) throw new Error(`fft length ${n} is not a power of two`);
    if (n === 1) return payload;
    const curve = await getCurve();
    const Fr = curve.Fr;
    const mont = await Fr.batchToMontgomery(payload);
    const out = inverse ? await Fr.ifft(mont) : await Fr.fft(mont);
    return await Fr.batchFromMontgomery(out);
}

async function handle(req, payload) {
    switch (req.cmd) {
    case "ping": {
        const curve = await getCurve();
        return [{ pid: process.pid, node: process.version, threads: curve.tm.concurrency }, null];
    }
    case "load_zkey":
        return [loadZkey(req.zkey, req.path), null];
    case "unload_zkey":
        zkeys.delete(req.zkey);
        return [{}, null];
    case "prove": {
        const z = getZkey(req.zkey);
        const n = checkScalars(payload, "prove");
        if (n !== z.nVars) throw new Error(`witness has ${n} values, the circuit has ${z.nVars} wires`);
        const { proof, publicSignals } = await snarkjs.groth16.prove(
            { type: "mem", data: z.data }, { type: "mem", data: memWtns(payload) });
        return [{ proof, public: publicSignals }, null];
    }
    case "msm_g1":
        return [await msm("G1", req, payload), null];
    case "msm_g2":
        return [await msm("G2", req, payload), null];
    case "msm_at":
        return [await msmAt(req, payload), null];
    case "pairing_eq": {
        const curve = await getCurve();
        const args = [];
        for (const [p, q] of req.pairs) {
            args.push(p === null ? curve.G1.zero : curve.G1.fromObject([BigInt(p[0]), BigInt(p[1]), 1n]));
            args.push(q === null ? curve.G2.zero : curve.G2.fromObject(
                [q[0].map(BigInt), q[1].map(BigInt), [1n, 0n]]));
        }
        return [{ equal: await curve.pairingEq(...args) }, null];
    }
    case "verify":
        return [{ valid: await snarkjs.groth16.verify(req.vkey, req.public, req.proof) }, null];
    case "fft":
        return [{}, await fft(false, payload)];
    case "ifft":
        return [{}, await fft(true, payload)];
    default:
        throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
    }
}

function writeFrame(header, payload) {
    const h = Buffer.from(JSON.stringify(header), "utf8");
    const plen = payload ? payload.byteLength : 0;
    const prefix = Buffer.alloc(12);
    prefix.writeUInt32LE(h.length, 0);
    prefix.writeBigUInt64LE(BigInt(plen), 4);
    process.stdout.write(prefix);
    process.stdout.write(h);
    if (plen) process.stdout.write(Buffer.from(payload.buffer, payload.byteOffset, plen));
}

// Incoming bytes are buffered until a whole frame is present; frames are served one at a time.
let chunks = [];
let buffered = 0;
let queue = Promise.resolve();

function takeBytes(n) {
    const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    chunks = rest.length ? [rest] : [];
    buffered = rest.length;
    return head;
}

function peekPrefix() {
    const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
    chunks = [all];
    return [all.readUInt32LE(0), Number(all.readBigUInt64LE(4))];
}

function pump() {
    while (buffered >= 12) {
        const [hlen, plen] = peekPrefix();
        if (buffered < 12 + hlen + plen) return;
        const frame = takeBytes(12 + hlen + plen);
        const headerText = frame.subarray(12, 12 + hlen).toString("utf8");
        // Copy the payload out of node's pooled Buffer: ffjavascript expects plain, zero-offset arrays.
        const payload = new Uint8Array(frame.subarray(12 + hlen));
        queue = queue.then(() => serve(headerText, payload));
    }
}

async function serve(headerText, payload) {
    let id = null;
    try {
        const req = JSON.parse(headerText);
        id = req.id;
        const t0 = process.hrtime.bigint();
        const [res, out] = await handle(req, payload);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        writeFrame({ id, ok: true, ms, ...res }, out);
    } catch (err) {
        const msg = (err && err.message) ? err.message : String(err);
        writeFrame({ id, ok: false, error: msg }, null);
    }
}

process.stdin.on("data", (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    pump();
});

process.stdin.on("end", () => {
    // The parent closed our stdin: finish queued work, stop the wasm threads, exit.
    queue.then(async () => {
        if (curvePromise !== null) await (await curvePromise).terminate();
        process.exit(0);
    });
});
