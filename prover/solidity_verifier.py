"""The Solidity Groth16 verifier a setup exports, written from verification_key.json.

Why not snarkjs' `zkey export solidityverifier`: its template unrolls one block of code per public
input, so past about 240 public inputs the contract is larger than EIP-170's 24,576-byte limit and
cannot be deployed (the paper's N = 4, d = 5,701 statement has 249 public inputs at k = 8, 303 at
k = 10). Here the IC points are one `bytes` constant read in a loop, 64 bytes per input, so the
code stays under the limit up to MAX_PUBLIC inputs; the gas is the same precompile calls (one ecMul and one
ecAdd per input, one 4-pair pairing). The ABI is snarkjs': verifyProof(uint[2], uint[2][2],
uint[2], uint[n]) returns bool, with B's coordinates in the precompile's (c1, c0) order, so callers
and proof_calldata are unchanged, and a bad proof or an input >= r returns false.

verification_key.json (snarkjs): vk_alpha_1 [x, y, 1], vk_beta_2 / vk_gamma_2 / vk_delta_2
[[x0, x1], [y0, y1], [1, 0]] with x = x0 + x1·u, IC: nPublic + 1 points [x, y, 1], decimal strings.
"""

from __future__ import annotations

from typing import Any

from omniplus.core.errors import SetupError
from omniplus.prover.field import Q, R

MAX_PUBLIC = 360  # 64·(n+1) bytes of IC plus ~2 KB of code stays under EIP-170's 24,576 bytes


def _g1(p: Any, what: str) -> tuple[int, int]:
    try:
        x, y = int(p[0]), int(p[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise SetupError(f"verification key: {what} is not a G1 point ({exc})") from exc
    if not (0 <= x < Q and 0 <= y < Q):
        raise SetupError(f"verification key: {what} has a coordinate outside the base field")
    return x, y


def _g2(p: Any, what: str) -> tuple[int, int, int, int]:
    """(x1, x0, y1, y0): the pairing precompile's order."""
    try:
        (x0, x1), (y0, y1) = (int(v) for v in p[0][:2]), (int(v) for v in p[1][:2])
    except (TypeError, ValueError, IndexError) as exc:
        raise SetupError(f"verification key: {what} is not a G2 point ({exc})") from exc
    if not all(0 <= v < Q for v in (x0, x1, y0, y1)):
        raise SetupError(f"verification key: {what} has a coordinate outside the base field")
    return x1, x0, y1, y0


def verifier_source(vk: dict) -> str:
    """Solidity source of contract Groth16Verifier for this verification key."""
    if vk.get("protocol") != "groth16" or vk.get("curve") not in (None, "bn128"):
        raise SetupError("verification key is not a BN254 Groth16 key")
    ic = vk.get("IC")
    if not isinstance(ic, list) or len(ic) < 1:
        raise SetupError("verification key has no IC points")
    n = len(ic) - 1
    if vk.get("nPublic") != n:
        raise SetupError(f"verification key: nPublic={vk.get('nPublic')} but {len(ic)} IC points")
    if n > MAX_PUBLIC:
        raise SetupError(f"{n} public inputs: the verifier would pass the 24,576-byte contract limit "
                         f"(at most {MAX_PUBLIC}); split the model into chunks (prover/chunks.py)")
    ax, ay = _g1(vk.get("vk_alpha_1"), "alpha")
    beta, gamma, delta = (_g2(vk.get(f"vk_{k}_2"), k) for k in ("beta", "gamma", "delta"))
    table = "".join(f"{c:064x}" for i, p in enumerate(ic) for c in _g1(p, f"IC[{i}]"))

    def g2_consts(name: str, v: tuple[int, int, int, int]) -> str:
        return "\n".join(f"    uint256 internal constant {name}_{part} = {x};"
                         for part, x in zip(("X1", "X0", "Y1", "Y0"), v, strict=True))

    return f"""// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// Groth16 verifier (BN254) for one circuit with {n} public inputs, written by omniplus
/// (prover/solidity_verifier.py) from the setup's verification_key.json. The IC points are one
/// bytes constant read in a loop so the code stays under EIP-170's limit for hundreds of inputs.
contract Groth16Verifier {{
    uint256 internal constant R = {R};
    uint256 internal constant Q = {Q};
    uint256 internal constant ALPHA_X = {ax};
    uint256 internal constant ALPHA_Y = {ay};
{g2_consts("BETA", beta)}
{g2_consts("GAMMA", gamma)}
{g2_consts("DELTA", delta)}
    /// IC_0 .. IC_{n}: (x, y) as two 32-byte big-endian words each.
    bytes internal constant IC = hex"{table}";

    /// true iff the proof verifies for these public inputs; false for any bad proof or input >= r.
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[{n}] calldata pub
    ) external view returns (bool) {{
        bytes memory ic = IC;
        uint256[4] memory acc; // (x, y) of IC_0 + sum pub_i IC_(i+1), then the current term
        uint256[3] memory term; // (x, y, scalar) for ecMul
        bool ok = true;
        assembly {{
            mstore(acc, mload(add(ic, 32)))
            mstore(add(acc, 32), mload(add(ic, 64)))
        }}
        for (uint256 i = 0; i < {n}; ++i) {{
            uint256 s = pub[i];
            if (s >= R) return false;
            assembly {{
                let pt := add(ic, add(96, mul(i, 64)))
                mstore(term, mload(pt))
                mstore(add(term, 32), mload(add(pt, 32)))
                mstore(add(term, 64), s)
                ok := and(ok, staticcall(gas(), 7, term, 96, add(acc, 64), 64))
                ok := and(ok, staticcall(gas(), 6, acc, 128, acc, 64))
            }}
        }}
        if (!ok || a[0] >= Q || a[1] >= Q) return false;
        uint256[24] memory input = [
            a[0], (Q - a[1]) % Q, b[0][0], b[0][1], b[1][0], b[1][1],
            ALPHA_X, ALPHA_Y, BETA_X1, BETA_X0, BETA_Y1, BETA_Y0,
            acc[0], acc[1], GAMMA_X1, GAMMA_X0, GAMMA_Y1, GAMMA_Y0,
            c[0], c[1], DELTA_X1, DELTA_X0, DELTA_Y1, DELTA_Y0
        ];
        uint256[1] memory out;
        assembly {{
            ok := staticcall(gas(), 8, input, 768, out, 32)
        }}
        return ok && out[0] == 1;
    }}
}}
"""
