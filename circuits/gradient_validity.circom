pragma circom 2.1.0;

// Gradient validity for one batch (docs/DESIGN.md, "The circuit").
//
// Per DO slot i (its own block of constraints: only the slot's wires and the constant appear,
// so servers can check one DO's shared block without touching the others):
//   range:  g + 2^(k-1) = sum_b rbits[b]·2^b with boolean rbits   =>  g in [-2^(k-1), 2^(k-1))
//   square: sq[j] = g[j]·g[j]
//   norm:   B - sum_j sq[j] = sum_b nbits[b]·2^b with boolean nbits   =>  sum g^2 <= B
// Batch part (touches every slot): packed words P_m of the aggregate are linear `var`s (no
// constraints); Horner acc[m] = P_m + rho·acc[m+1] ends with F === rho·acc[0], i.e.
// F = sum_m P_m·rho^(m+1): one constraint per packed word.
//
// All parameters, including the derived ones, come from circuits/params.py (CircuitParams),
// which also proves the field cannot wrap. Public inputs, in wire order: rho, F.

template GradientValidity(N, d, k, B, normBits, w, c, M, offset) {
    signal input rho;
    signal input F;
    signal input g[N][d];

    signal rbits[N][d][k];
    signal sq[N][d];
    signal nbits[N][normBits];

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

    // Horner: acc[m] = P_m + rho·acc[m+1], with acc[M-1] read as P_{M-1}.
    if (M == 1) {
        F === rho * P[0];
    } else {
        signal acc[M - 1];
        acc[M - 2] <== P[M - 2] + rho * P[M - 1];
        for (var m = M - 3; m >= 0; m--) {
            acc[m] <== P[m] + rho * acc[m + 1];
        }
        F === rho * acc[0];
    }
}
