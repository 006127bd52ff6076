#!/usr/bin/env node
// Development powers of tau, written directly in snarkjs' *prepared* .ptau layout.
//
// Why: `snarkjs powersoftau prepare phase2` turns tau powers into Lagrange points with
// point FFTs and takes ~29 min at power 16 on this machine. Knowing tau, every point is
// scalar·G for a scalar we can compute in the field, so the whole file is fixed-base
// multiplications of the two generators (byte-window tables, spread over ffjavascript's
// worker pool): seconds, not minutes. tau, alpha and beta are random and forgotten when the
// process exits: a DEVELOPMENT setup only (whoever runs it could have kept them).
//
// Usage: node ptau_dev.js POWER OUT_FILE
//
// Layout produced (everything snarkjs' `zkey new` / `groth16 setup` reads):
//   1  header: u32 n8=32, q (32 bytes LE), u32 power, u32 ceremonyPower (= power)
//   2  tau^i·G1,             i < 2^(power+1) − 1
//   3  tau^i·G2,             i < 2^power
//   4  alpha·tau^i·G1,       i < 2^power
//   5  beta·tau^i·G1,        i < 2^power
//   6  beta·G2
//   7  contributions: u32 0 (no ceremony: this is not a multi-party setup)
//   12 for p = 0..power+1: L^(2^p)_i(tau)·G1, i < 2^p   (Lagrange basis on snarkjs' domain)
//   13 for p = 0..power:   L^(2^p)_i(tau)·G2
//   14 for p = 0..power:   alpha·L^(2^p)_i(tau)·G1
//   15 for p = 0..power:   beta·L^(2^p)_i(tau)·G1
// Points are affine, coordinates little-endian Montgomery (ffjavascript's own memory form).
// snarkjs builds level power+1 of section 12 from the 2^(power+1) − 1 available tau powers
// with the missing top power taken as zero; we reproduce that exactly (subtract the x^(N−1)
// coefficient of L_i, which is omega^i/N), so the file is byte-identical in layout and
// semantics to a prepared ceremony file. The Lagrange basis is over omega = w[p] of snarkjs'
// root table (w[28] = 5^((r−1)/2^28), w[i] = w[i+1]^2), natural order.
"use strict";

const fs = require("fs");
const crypto = require("crypto");
const os = require("os");
const { buildBn128 } = require("ffjavascript");
const { Pool, fixedBase } = require("./fixedbase.js");

function log(msg) {
    process.stderr.write(`[ptau_dev] ${msg}\n`);
}

// ---------------------------------------------------------------- field arithmetic (BigInt)
function modpow(b, e, m) {
    let r = 1n;
    b %= m;
    while (e > 0n) {
        if (e & 1n) r = (r * b) % m;
        b = (b * b) % m;
        e >>= 1n;
    }
    return r;
}

function randomScalar(r) {
    for (;;) {
        const x = BigInt("0x" + crypto.randomBytes(48).toString("hex")) % r;
        if (x > 1n) return x;
    }
}

function batchInverse(xs, r) {
    const n = xs.length;
    const prefix = new Array(n);
    let acc = 1n;
    for (let i = 0; i < n; i++) {
        prefix[i] = acc;
        acc = (acc * xs[i]) % r;
    }
    let inv = modpow(acc, r - 2n, r);
    const out = new Array(n);
    for (let i = n - 1; i >= 0; i--) {
        out[i] = (inv * prefix[i]) % r;
        inv = (inv * xs[i]) % r;
    }
    return out;
}

// [f·x^0, f·x^1, ..., f·x^(n−1)]
function geometric(first, x, n, r) {
    const out = new Array(n);
    let acc = first % r;
    for (let i = 0; i < n; i++) {
        out[i] = acc;
        acc = (acc * x) % r;
    }
    return out;
}

// f·L_i(tau) for the size-2^p domain of snarkjs; `truncate` drops tau^(N−1) from each L_i.
function lagrange(tau, p, roots, r, f, truncate) {
    const N = 1 << p;
    const Nb = BigInt(N);
    const omega = roots[p];
    const ws = geometric(1n, omega, N, r);
    const inv = batchInverse(ws.map((w) => (tau - w + r) % r), r);
    const invN = modpow(Nb, r - 2n, r);
    const zt = (modpow(tau, Nb, r) - 1n + r) % r;
    const common = (zt * invN) % r;
    const top = truncate ? (modpow(tau, Nb - 1n, r) * invN) % r : 0n;
    const out = new Array(N);
    for (let i = 0; i < N; i++) {
        let l = (ws[i] * ((common * inv[i]) % r)) % r;
        if (truncate) l = (l - ((ws[i] * top) % r) + r) % r;
        out[i] = (l * f) % r;
    }
    return out;
}

// ---------------------------------------------------------------- file writing
function u32(x) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(x, 0);
    return b;
}

function u64(x) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(x), 0);
    return b;
}

class BinWriter {
    constructor(path, nSections) {
        this.fd = fs.openSync(path, "w");
        this.write(Buffer.from("ptau", "ascii"));
        this.write(u32(1));
        this.write(u32(nSections));
    }

    write(buf) {
        let off = 0;
        while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    }

    section(type, parts) {
        const size = parts.reduce((s, p) => s + p.length, 0);
        this.write(u32(type));
        this.write(u64(size));
        for (const p of parts) this.write(p);
    }

    close() {
        fs.fsyncSync(this.fd);
        fs.closeSync(this.fd);
    }
}

// ---------------------------------------------------------------- main
async function main() {
    const power = Number(process.argv[2]);
    const outPath = process.argv[3];
    if (!Number.isInteger(power) || power < 1 || power > 27 || !outPath) {
        process.stderr.write("usage: node ptau_dev.js POWER(1..27) OUT_FILE\n");
        process.exit(2);
    }
    const t0 = Date.now();
    const curve = await buildBn128(true);
    const nThreads = Math.max(1, Number(process.env.OMNIPLUS_PTAU_THREADS) || os.cpus().length);
    const pool = new Pool(nThreads, {
        code: curve.tm.code,
        g1: curve.G1.g,
        g2: curve.G2.g,
        n8: curve.G1.F.n8,
    });
    try {
        const r = BigInt(curve.r.toString());
        const q = BigInt(curve.q.toString());
        const nBytes = 32;
        const roots = new Array(29);
        roots[28] = modpow(5n, (r - 1n) >> 28n, r);
        for (let i = 27; i >= 0; i--) roots[i] = (roots[i + 1] * roots[i + 1]) % r;

        const tau = randomScalar(r);
        const alpha = randomScalar(r);
        const beta = randomScalar(r);
        for (let p = 0; p <= power + 1; p++) {
            // tau on the domain would make a Lagrange denominator vanish (probability ~2^-236)
            if (modpow(tau, 1n << BigInt(p), r) === 1n) throw new Error("degenerate tau, rerun");
        }

        await pool.start();
        log(`${nThreads} worker threads ready in ${Date.now() - t0} ms`);

        const g1 = (sc) => fixedBase(pool, "G1", sc, nBytes);
        const g2 = (sc) => fixedBase(pool, "G2", sc, nBytes);
        const n = 1 << power;
        const timed = async (label, f) => {
            const t = Date.now();
            const res = await f();
            log(`${label}: ${Date.now() - t} ms`);
            return res;
        };

        const sec2 = await timed("tau G1", () => g1(geometric(1n, tau, 2 * n - 1, r)));
        const sec3 = await timed("tau G2", () => g2(geometric(1n, tau, n, r)));
        const sec4 = await timed("alpha tau G1", () => g1(geometric(alpha, tau, n, r)));
        const sec5 = await timed("beta tau G1", () => g1(geometric(beta, tau, n, r)));
        const sec6 = await g2([beta]);

        const levels = async (label, f, G, top, truncateTop) => {
            const parts = [];
            await timed(label, async () => {
                for (let p = 0; p <= top; p++) {
                    const sc = lagrange(tau, p, roots, r, f, truncateTop && p === top);
                    parts.push(await G(sc));
                }
            });
            return parts;
        };
        const sec12 = await levels("Lagrange G1", 1n, g1, power + 1, true);
        const sec13 = await levels("Lagrange G2", 1n, g2, power, false);
        const sec14 = await levels("alpha Lagrange G1", alpha, g1, power, false);
        const sec15 = await levels("beta Lagrange G1", beta, g1, power, false);

        const tmp = outPath;
        const w = new BinWriter(tmp, 11);
        const qBytes = Buffer.alloc(32);
        let qq = q;
        for (let i = 0; i < 32; i++) {
            qBytes[i] = Number(qq & 0xffn);
            qq >>= 8n;
        }
        w.section(1, [u32(32), qBytes, u32(power), u32(power)]);
        w.section(2, [sec2]);
        w.section(3, [sec3]);
        w.section(4, [sec4]);
        w.section(5, [sec5]);
        w.section(6, [sec6]);
        w.section(7, [u32(0)]);
        w.section(12, sec12);
        w.section(13, sec13);
        w.section(14, sec14);
        w.section(15, sec15);
        w.close();
        log(`power ${power} written to ${outPath} in ${Date.now() - t0} ms`);
    } finally {
        await pool.stop();
        await curve.terminate();
    }
}

main().catch((err) => {
    process.stderr.write(`ptau_dev: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
