pragma circom 2.0.0;

// Dense-witness reference circuit for `omniplus bench mpc`: n repeated squarings of a private
// random field element. Every wire is a uniformly random-looking field element, unlike the
// gradient circuit whose witness is mostly bits. One multiplication per constraint, so
// nConstraints = n (circom --O2 removes the linear copies). bench/mpc.py appends
// `component main = Squarings(n);`.
template Squarings(n) {
    signal input x;
    signal output y;
    signal s[n + 1];
    s[0] <== x;
    for (var i = 0; i < n; i++) {
        s[i + 1] <== s[i] * s[i];
    }
    y <== s[n];
}
