#!/usr/bin/env node
// Cryptographic checks of a prepared BN254 powers-of-tau file, up to the power a circuit needs.
//
// Why: `snarkjs groth16 setup` trusts its ptau blindly, so a file with τ = 1, a wrong point or an
// off-curve point yields a key whose proofs can be forged. prover/ptau.py checks the header, the
// curve, the power and the contribution count; this script does the heavy part (whole sections):
//   * every point used (sections 2-6 prefix, 12 levels p and p+1, 13-15 level p) is canonical and
//     on the curve; G1 has cofactor 1, so on-curve means in the subgroup; G2 points are checked in
//     the subgroup by [r]·Σ ρ_i Q_i = 0 for 3 independent random combinations (the twist's
//     cofactor has smallest prime factor 10069: a point outside G2 passes with prob. <= 10069^-3);
//   * τ, α, β ∉ {0, 1} and the first τ points are the generators;
//   * the τ, α, β powers are consistent (pairing checks on random linear combinations, as
//     `snarkjs powersoftau verify` does): e(Σρ_i P_i, τG2) = e(Σρ_i P_{i+1}, G2) for P = τ^i·G1,
//     α·τ^i·G1, β·τ^i·G1; e(τG1, Σρ_i Q_i) = e(G1, Σρ_i Q_{i+1}) for Q = τ^i·G2; e(β·G1, G2) = e(G1, β·G2);
//   * the Lagrange levels equal the τ powers they are made from: Σ f(ω^i)·L_i = Σ f_j·τ^j for a
//     random polynomial f (its top coefficient 0 at level p+1, which snarkjs may build truncated).
// Usage: node ptau_check.js FILE.ptau POWER   → one JSON line {ok, error?, checks, seconds} on stdout.
"use strict";

const fs = require("fs");
const crypto = require("crypto");
const { buildBn128 } = require("ffjavascript");

const Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583n;
const R = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;
const MONT = (1n << 256n) % Q;
const MONT_INV = modpow(MONT, Q - 2n, Q);
const B1 = 3n;
const inv82 = modpow(82n, Q - 2n, Q);
const B2 = [(27n * inv82) % Q, (Q - (3n * inv82) % Q) % Q]; // 3 / (9 + u)

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

class Refused extends Error {}

function readSections(fd, size) {
    const head = Buffer.alloc(12);
    fs.readSync(fd, head, 0, 12, 0);
    const n = head.readUInt32LE(8);
    const sections = new Map();
    let p = 12;
    const sh = Buffer.alloc(12);
    for (let i = 0; i < n; i++) {
        fs.readSync(fd, sh, 0, 12, p);
        const type = sh.readUInt32LE(0);
        const sz = Number(sh.readBigUInt64LE(4));
        p += 12;
        if (p + sz > size) throw new Refused(`section ${type} runs past the end of the file`);
        if (!sections.has(type)) sections.set(type, { start: p, size: sz });
        p += sz;
    }
    return sections;
}

function readScalar(buf, p) {
    return buf.readBigUInt64LE(p) | (buf.readBigUInt64LE(p + 8) << 64n)
        | (buf.readBigUInt64LE(p + 16) << 128n) | (buf.readBigUInt64LE(p + 24) << 192n);
}

// Canonical and on the curve, from the Montgomery little-endian bytes; infinity is refused.
function checkG1s(buf, what) {
    const n = buf.length / 64;
    for (let i = 0; i < n; i++) {
        const X = readScalar(buf, 64 * i);
        const Y = readScalar(buf, 64 * i + 32);
        if (X >= Q || Y >= Q) throw new Refused(`${what}: point ${i} has a coordinate >= q`);
        if (X === 0n && Y === 0n) throw new Refused(`${what}: point ${i} is the point at infinity`);
        const x = (X * MONT_INV) % Q;
        const y = (Y * MONT_INV) % Q;
        if ((y * y - x * x * x - B1) % Q !== 0n) throw new Refused(`${what}: point ${i} is not on the BN254 curve`);
    }
}

const f2mul = (a, b) => [((a[0] * b[0] - a[1] * b[1]) % Q + Q) % Q, (a[0] * b[1] + a[1] * b[0]) % Q];

function checkG2s(buf, what) {
    const n = buf.length / 128;
    for (let i = 0; i < n; i++) {
        const c = [0, 1, 2, 3].map((k) => readScalar(buf, 128 * i + 32 * k));
        if (c.some((v) => v >= Q)) throw new Refused(`${what}: point ${i} has a coordinate >= q`);
        if (c.every((v) => v === 0n)) throw new Refused(`${what}: point ${i} is the point at infinity`);
        const [x0, x1, y0, y1] = c.map((v) => (v * MONT_INV) % Q);
        const x = [x0, x1];
        const y = [y0, y1];
        const lhs = f2mul(y, y);
        const x3 = f2mul(f2mul(x, x), x);
        if ((lhs[0] - x3[0] - B2[0]) % Q !== 0n || (lhs[1] - x3[1] - B2[1]) % Q !== 0n) {
            throw new Refused(`${what}: point ${i} is not on the BN254 twist`);
        }
    }
}

async function main() {
    const [path, powerArg] = process.argv.slice(2);
    const need = Number(powerArg);
    if (!path || !Number.isInteger(need) || need < 1 || need > 27) {
        process.stderr.write("usage: node ptau_check.js FILE.ptau POWER\n");
        process.exit(2);
    }
    const t0 = Date.now();
    const checks = [];
    const fd = fs.openSync(path, "r");
    const sections = readSections(fd, fs.fstatSync(fd).size);
    const read = (type, start, len) => {
        const s = sections.get(type);
        if (!s) throw new Refused(`no section ${type}`);
        if ((start + len) > s.size) throw new Refused(`section ${type} is too short for power ${need}`);
        const b = Buffer.alloc(len);
        fs.readSync(fd, b, 0, len, s.start + start);
        return b;
    };
    const n = 1 << need;
    const tauG1 = read(2, 0, (2 * n - 1) * 64);
    const tauG2 = read(3, 0, n * 128);
    const alphaG1 = read(4, 0, n * 64);
    const betaG1 = read(5, 0, n * 64);
    const betaG2 = read(6, 0, 128);
    const lag = {
        12: read(12, (n - 1) * 64, n * 64),
        "12+": read(12, (2 * n - 1) * 64, 2 * n * 64),
        13: read(13, (n - 1) * 128, n * 128),
        14: read(14, (n - 1) * 64, n * 64),
        15: read(15, (n - 1) * 64, n * 64),
    };
    fs.closeSync(fd);

    const curve = await buildBn128(true);
    try {
        const { G1, G2, Fr } = curve;
        checkG1s(tauG1.subarray(0, 128), "tau*G1 (section 2)");
        checkG2s(tauG2.subarray(0, 128), "tau*G2 (section 3)");
        checkG1s(alphaG1.subarray(0, 64), "alpha*G1 (section 4)");
        checkG1s(betaG1.subarray(0, 64), "beta*G1 (section 5)");
        const p1 = (buf, i) => G1.fromRprLEM(buf, 64 * i);
        const p2 = (buf, i) => G2.fromRprLEM(buf, 128 * i);
        if (!G1.eq(p1(tauG1, 0), G1.g)) throw new Refused("tau*G1[0] is not the generator");
        if (!G2.eq(p2(tauG2, 0), G2.g)) throw new Refused("tau*G2[0] is not the generator");
        const trivial = [["tau", p1(tauG1, 1)], ["alpha", p1(alphaG1, 0)], ["beta", p1(betaG1, 0)]];
        for (const [name, P] of trivial) {
            if (G1.eq(P, G1.g)) throw new Refused(`${name} = 1 (no contribution: anyone can forge proofs)`);
        }
        checks.push("tau, alpha, beta are not 1");
        checkG1s(tauG1, "tau*G1 (section 2)");
        checkG2s(tauG2, "tau*G2 (section 3)");
        checkG1s(alphaG1, "alpha*tau*G1 (section 4)");
        checkG1s(betaG1, "beta*tau*G1 (section 5)");
        checkG2s(betaG2, "beta*G2 (section 6)");
        checkG1s(lag[12], `Lagrange G1 level ${need} (section 12)`);
        checkG1s(lag["12+"], `Lagrange G1 level ${need + 1} (section 12)`);
        checkG2s(lag[13], `Lagrange G2 level ${need} (section 13)`);
        checkG1s(lag[14], `alpha Lagrange G1 level ${need} (section 14)`);
        checkG1s(lag[15], `beta Lagrange G1 level ${need} (section 15)`);
        checks.push("points canonical and on the curve");


        // G2 subgroup: 3 independent random combinations of every G2 point used.
        const allG2 = Buffer.concat([tauG2, lag[13], betaG2]);
        const m2 = allG2.length / 128;
        for (let k = 0; k < 3; k++) {
            const S = await G2.multiExpAffine(new Uint8Array(allG2), new Uint8Array(crypto.randomBytes(m2 * 16)));
            if (!G2.isZero(G2.timesScalar(S, R))) throw new Refused("a G2 point is not in the prime-order subgroup");
        }
        checks.push("G2 points in the subgroup");

        const sameRatio = async (a, ax, b, bx) => curve.pairingEq(G1.neg(a), bx, ax, b);
        // Σρ_i P_i and Σρ_i P_{i+1} over the first m points of an affine buffer
        const shifted = async (G, buf, m, sz) => {
            const rho = new Uint8Array(crypto.randomBytes((m - 1) * 16));
            const lo = await G.multiExpAffine(new Uint8Array(buf.subarray(0, (m - 1) * sz)), rho);
            const hi = await G.multiExpAffine(new Uint8Array(buf.subarray(sz, m * sz)), rho);
            return [lo, hi];
        };
        const tau2 = p2(tauG2, 1);
        const chains = [["tau*G1", tauG1, 2 * n - 1], ["alpha*tau*G1", alphaG1, n], ["beta*tau*G1", betaG1, n]];
        for (const [name, buf, m] of chains) {
            if (m < 2) continue;
            const [lo, hi] = await shifted(G1, buf, m, 64);
            if (!(await sameRatio(lo, hi, G2.g, tau2))) throw new Refused(`${name} powers are not consistent with tau`);
        }
        if (n >= 2) {
            const [lo, hi] = await shifted(G2, tauG2, n, 128);
            if (!(await sameRatio(G1.g, p1(tauG1, 1), lo, hi))) throw new Refused("tau*G2 powers are not consistent with tau");
        }
        if (!(await sameRatio(G1.g, p1(betaG1, 0), G2.g, p2(betaG2, 0)))) {
            throw new Refused("beta*G1 and beta*G2 differ (section 5 vs 6)");
        }
        checks.push("tau, alpha, beta powers consistent (pairings)");

        // Lagrange levels: Σ f(ω^i)·L_i(τ)·G == Σ f_j·τ^j·G for a random f
        const lagCheck = async (G, sz, lagBuf, powBuf, size, nCoef, what) => {
            const f = Buffer.alloc(size * 32);
            crypto.randomFillSync(f.subarray(0, nCoef * 32));
            for (let i = 0; i < nCoef; i++) f[32 * i + 31] &= 0x0f; // < 2^252 < r: canonical
            const evals = await Fr.batchFromMontgomery(await Fr.fft(await Fr.batchToMontgomery(new Uint8Array(f))));
            const lhs = await G.multiExpAffine(new Uint8Array(lagBuf), evals);
            const rhs = await G.multiExpAffine(new Uint8Array(powBuf.subarray(0, nCoef * sz)), new Uint8Array(f.subarray(0, nCoef * 32)));
            if (!G.eq(lhs, rhs)) throw new Refused(`${what} does not match the tau powers`);
        };
        await lagCheck(G1, 64, lag[12], tauG1, n, n, `Lagrange G1 level ${need} (section 12)`);
        await lagCheck(G1, 64, lag["12+"], tauG1, 2 * n, 2 * n - 1, `Lagrange G1 level ${need + 1} (section 12)`);
        await lagCheck(G2, 128, lag[13], tauG2, n, n, `Lagrange G2 level ${need} (section 13)`);
        await lagCheck(G1, 64, lag[14], alphaG1, n, n, `alpha Lagrange G1 level ${need} (section 14)`);
        await lagCheck(G1, 64, lag[15], betaG1, n, n, `beta Lagrange G1 level ${need} (section 15)`);
        checks.push("Lagrange sections match the tau powers");
    } finally {
        await curve.terminate();
    }
    process.stdout.write(JSON.stringify({ ok: true, checks, seconds: (Date.now() - t0) / 1000 }) + "\n");
}

main().catch((err) => {
    if (err instanceof Refused) {
        process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + "\n");
        process.exit(0);
    }
    process.stderr.write(`ptau_check: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
