pragma circom 2.1.0;

// Gradient validity for one batch (docs/DESIGN.md, "The circuit").
//
// Per DO slot i (its own block of constraints: only the slot's wires and the constant appear,
// so servers can check one DO's shared block without touching the others):
//   range:  g + 2^(k-1) = sum_b rbits[b]·2^b with boolean rbits   =>  g in [-2^(k-1), 2^(k-1))
//   square: sq[j] = g[j]·g[j]
//   norm:   B - sum_j sq[j] = sum_b nbits[b]·2^b with boolean nbits   =>  sum g^2 <= B
// Batch part (touches every slot): packed words P_m of the aggregate are linear `var`s (no
// constraints of their own); each public input W[m] equals P_m: one constraint per packed
// word, so the proof fixes every word of the aggregate (PROTOCOL.md v2, "Binding"). The v1
// binding (one random combination F = sum P_m rho^(m+1)) was a knapsack the prover could solve.
//
// ctx = keccak256(chain, market, task, batch index, payees, model version) mod r is a public
// input no constraint uses: snarkjs' zkey adds one A row per public input (wire i times 1), which
// already makes a proof for one ctx invalid for any other. circom keeps unused public inputs as
// wires (tests/test_circuit_build.py checks the .r1cs header and the .sym).
//
// All parameters, including the derived ones, come from circuits/params.py (CircuitParams),
// which also proves the field cannot wrap. Public inputs, in wire order: ctx, W[0..M-1], S[0..K-1].
//
// Contribution scores (prover/contribution.py): t[i][j] = g[i][j]·a_j with a_j = sum_i g[i][j]
// (one constraint per coordinate per DO; t belongs to no DO block, the servers compute its shares
// from the opened aggregate), s_i = sum_j t[i][j] - sum_j sq[i][j] = <g_i, a - g_i> (linear).
// Each s_i + sOff (sOff = (N-1)·B bounds |s_i|) takes sw bits; cs of them per public word S[m],
// slot 0 in the low bits, bound like W (a square, for --O2's sake).

template GradientValidity(N, d, k, B, normBits, w, c, M, offset, sOff, sw, cs, K) {
    signal input ctx;
    signal input W[M];
    signal input S[K];
    signal input g[N][d];

    signal rbits[N][d][k];
    signal sq[N][d];
    signal nbits[N][normBits];
    signal t[N][d];

    var sumsqs[N];
    for (var i = 0; i < N; i++) {
        var sumsq = 0;
        for (var j = 0; j < d; j++) {
            var shifted = 0;
            for (var b = 0; b < k; b++) {
                rbits[i][j][b] <-- ((g[i][j] + (1 << (k - 1))) >> b) & 1;
                rbits[i][j][b] * (rbits[i][j][b] - 1) === 0;
                shifted += rbits[i][j][b] * (1 << b);
            }
            shifted === g[i][j] + (1 << (k - 1));
            sq[i][j] <== g[i][j] * g[i][j];
            sumsq += sq[i][j];
        }
        var slack = 0;
        for (var b = 0; b < normBits; b++) {
            nbits[i][b] <-- ((B - sumsq) >> b) & 1;
            nbits[i][b] * (nbits[i][b] - 1) === 0;
            slack += nbits[i][b] * (1 << b);
        }
        slack === B - sumsq;
        sumsqs[i] = sumsq;
    }

    // Scores: t[i][j] = g[i][j] * a_j, s_i = sum_j t[i][j] - ||g_i||^2.
    var score[N];
    for (var i = 0; i < N; i++) {
        score[i] = -sumsqs[i];
    }
    for (var j = 0; j < d; j++) {
        var col = 0;
        for (var i = 0; i < N; i++) {
            col += g[i][j];
        }
        for (var i = 0; i < N; i++) {
            t[i][j] <== g[i][j] * col;
            score[i] += t[i][j];
        }
    }

    // Packed aggregate words, as linear combinations of the g's.
    var P[M];
    for (var m = 0; m < M; m++) {
        P[m] = 0;
        for (var l = 0; l < c; l++) {
            var j = m * c + l;
            if (j < d) {
                var a = offset;
                for (var i = 0; i < N; i++) {
                    a += g[i][j];
                }
                P[m] += a * (1 << (w * l));
            }
        }
    }

    // Every packed word is a public input: (P_m - W[m])^2 = 0, i.e. W[m] = P_m (x^2 = 0 forces
    // x = 0 in a field). Written as a square rather than the linear W[m] === P_m because circom's
    // --O2 would use a linear one to substitute a DO's input g away, putting W into that slot's
    // constraints and breaking the per-DO blocks the servers validate on shares.
    for (var m = 0; m < M; m++) {
        (P[m] - W[m]) * (P[m] - W[m]) === 0;
    }

    // Packed score words, bound the same way.
    for (var m = 0; m < K; m++) {
        var Q = 0;
        for (var l = 0; l < cs; l++) {
            var i = m * cs + l;
            if (i < N) {
                Q += (score[i] + sOff) * (1 << (sw * l));
            }
        }
        (Q - S[m]) * (Q - S[m]) === 0;
    }
}
