"use strict";
// Fixed-base multiplication of the BN254 generators over a pool of worker threads.
//
// Shared by ptau_dev.js (development powers of tau) and zkey_dev.js (development Groth16 keys):
// both need s·G for hundreds of thousands of arbitrary scalars s and one fixed G, which a byte-window
// table (row j = b·2^(8j)·G, b < 256) turns into <= 32 mixed additions per point.
// This module never loads ffjavascript: its web-worker shim would take over the worker threads.
// The caller passes the wasm code and generator bytes of a main-thread ffjavascript curve.

const { Worker, isMainThread, parentPort, workerData } = require("worker_threads");

const CHUNK = 2048; // points per worker job

// ---------------------------------------------------------------- fixed-base multiplication
// Each worker thread owns a single-threaded ffjavascript curve and calls its wasm exports
// directly: ffjavascript's own task protocol clones one JS object per wasm call, which cost
// more than the curve arithmetic itself here. Table row j holds b·2^(8j)·G for b = 0..255
// (affine Montgomery), so s·G = Σ_j row_j[byte_j(s)]: at most 32 mixed additions per point.

// The wasm keeps its free-memory pointer at address 0; we bump it and grow memory as needed.
class WasmArena {
    constructor(instance, memory) {
        this.x = instance.exports;
        this.memory = memory;
        this.refresh();
    }

    refresh() {
        this.u8 = new Uint8Array(this.memory.buffer);
        this.u32 = new Uint32Array(this.memory.buffer);
    }

    alloc(len) {
        while (this.u32[0] & 7) this.u32[0]++;
        const p = this.u32[0];
        const need = p + len + 65536;
        if (need > this.memory.buffer.byteLength) {
            this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / 65536));
            this.refresh();
        }
        this.u32[0] = p + len;
        return p;
    }

    // Room past the free pointer: batchToAffine keeps its temporaries there without allocating.
    reserve(extra) {
        const need = this.u32[0] + extra + 65536;
        if (need > this.memory.buffer.byteLength) {
            this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / 65536));
            this.refresh();
        }
    }

    mark() {
        return this.u32[0];
    }

    release(mark) {
        this.u32[0] = mark;
    }
}

function buildTableWasm(arena, gen, n8, prefix, nBytes) {
    const x = arena.x;
    const sJ = n8 * 3;
    const sA = n8 * 2;
    const entries = nBytes * 256;
    const pTable = arena.alloc(entries * sA);
    const mark = arena.mark();
    const pJac = arena.alloc(entries * sJ);
    const pBase = arena.alloc(sJ);
    arena.u8.set(gen, pBase);
    for (let j = 0; j < nBytes; j++) {
        const row = pJac + j * 256 * sJ;
        x[prefix + "_zero"](row);
        for (let b = 1; b < 256; b++) {
            x[prefix + "_add"](row + (b - 1) * sJ, pBase, row + b * sJ);
        }
        x[prefix + "_add"](row + 255 * sJ, pBase, pBase); // next base: 2^(8(j+1))·G
    }
    arena.reserve(entries * sJ * 2);
    x[prefix + "_batchToAffine"](pJac, entries, pTable);
    arena.release(mark);
    return pTable;
}

async function workerMain() {
    const { code, g1, g2, n8 } = workerData;
    const memory = new WebAssembly.Memory({ initial: 64 });
    const module = await WebAssembly.compile(code);
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    const arena = new WasmArena(instance, memory);
    const x = arena.x;
    const groups = {
        G1: { n8: n8, prefix: "g1m", gen: g1 },
        G2: { n8: 2 * n8, prefix: "g2m", gen: g2 },
    };
    for (const g of Object.values(groups)) g.table = buildTableWasm(arena, g.gen, g.n8, g.prefix, 32);
    parentPort.on("message", (msg) => {
        if (msg.cmd === "stop") {
            parentPort.close();
            return;
        }
        const { n8: gn8, prefix, table } = groups[msg.group];
        const sJ = gn8 * 3;
        const sA = gn8 * 2;
        const bytes = new Uint8Array(msg.bytes);
        const n = bytes.length / msg.nBytes;
        const mark = arena.mark();
        const pJac = arena.alloc(n * sJ);
        const pAff = arena.alloc(n * sA);
        const zero = x[prefix + "_zero"];
        const addMixed = x[prefix + "_addMixed"];
        for (let i = 0; i < n; i++) {
            const acc = pJac + i * sJ;
            zero(acc);
            const o = i * msg.nBytes;
            for (let j = 0; j < msg.nBytes; j++) {
                const b = bytes[o + j];
                if (b !== 0) addMixed(acc, table + (j * 256 + b) * sA, acc);
            }
        }
        arena.reserve(n * sJ * 2);
        x[prefix + "_batchToAffine"](pJac, n, pAff);
        const out = arena.u8.slice(pAff, pAff + n * sA);
        arena.release(mark);
        parentPort.postMessage({ id: msg.id, out: out.buffer }, [out.buffer]);
    });
    parentPort.postMessage({ ready: true });
}

class Pool {
    constructor(nThreads, init) {
        this.init = init;
        this.workers = [];
        this.idle = [];
        this.queue = [];
        this.pending = new Map();
        this.nextId = 0;
        this.nThreads = nThreads;
    }

    async start() {
        const ready = [];
        for (let i = 0; i < this.nThreads; i++) {
            const w = new Worker(__filename, { workerData: this.init });
            this.workers.push(w);
            ready.push(new Promise((resolve, reject) => {
                w.once("error", reject);
                w.once("message", () => resolve());
            }));
            w.on("message", (msg) => {
                if (msg.ready) return;
                const job = this.pending.get(msg.id);
                this.pending.delete(msg.id);
                job.resolve(new Uint8Array(msg.out));
                this.idle.push(w);
                this.pump();
            });
            w.on("error", (err) => {
                for (const job of this.pending.values()) job.reject(err);
            });
        }
        await Promise.all(ready);
        this.idle = [...this.workers];
    }

    pump() {
        while (this.idle.length && this.queue.length) {
            const w = this.idle.pop();
            const job = this.queue.shift();
            this.pending.set(job.id, job);
            w.postMessage(job.msg, [job.msg.bytes]);
        }
    }

    run(group, bytes, nBytes) {
        return new Promise((resolve, reject) => {
            const id = this.nextId++;
            this.queue.push({ id, resolve, reject, msg: { id, group, bytes: bytes.buffer, nBytes } });
            this.pump();
        });
    }

    async stop() {
        await Promise.all(this.workers.map((w) => w.terminate()));
    }
}

async function fixedBase(pool, group, scalars, nBytes) {
    const sA = group === "G1" ? 64 : 128;
    const n = scalars.length;
    const out = new Uint8Array(n * sA);
    const jobs = [];
    for (let start = 0; start < n; start += CHUNK) {
        const part = scalars.slice(start, start + CHUNK);
        const bytes = scalarBytes(part, nBytes);
        jobs.push(pool.run(group, bytes, nBytes).then((res) => out.set(res, start * sA)));
    }
    await Promise.all(jobs);
    return out;
}

function scalarBytes(scalars, nBytes) {
    const out = new Uint8Array(scalars.length * nBytes);
    for (let i = 0; i < scalars.length; i++) {
        let s = scalars[i];
        let o = i * nBytes;
        while (s > 0n) {
            out[o++] = Number(s & 0xffn);
            s >>= 8n;
        }
    }
    return out;
}


if (!isMainThread) {
    workerMain().catch((err) => {
        process.stderr.write(`fixedbase worker: ${err && err.stack ? err.stack : err}\n`);
        process.exit(1);
    });
}

module.exports = { Pool, fixedBase, scalarBytes };
