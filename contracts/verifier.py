"""The setup's exported Solidity Groth16 verifier, deployed and called from Python.

Calls always carry an explicit gas limit: eth_estimateGas under-estimates verifyProof, and at
that gas the pairing precompile fails inside the verifier, which then returns false instead of
reverting.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.contract import Contract

from omniplus.contracts.chain import deploy
from omniplus.contracts.solc import Artifact, compile_contracts
from omniplus.core.errors import ChainError, InputError

if TYPE_CHECKING:
    from omniplus.prover.proof import Proof

VERIFY_GAS = 1_000_000  # enough for a few dozen public inputs; verify_gas() sizes it for n


def verify_gas(n_public: int) -> int:
    """Explicit gas for verifyProof: ≈ 190k for the pairing and setup, ≈ 7.2k per public input
    (ecMul + ecAdd + calldata; 1,984,198 measured at 249 inputs), with a margin (unused gas is not
    charged)."""
    return max(VERIFY_GAS, 300_000 + 8_000 * n_public)


def verify_onchain(setup, proof: Proof, public: list[int], rpc: str | None = None,
                   key: str | None = None) -> tuple[bool, int]:
    """Deploy the setup's verifier (on an anvil we start when no RPC is given), check the proof with
    an eth_call, and send the same call as a transaction to measure its gas."""
    from omniplus.contracts.chain import Anvil, connect, transact

    with ExitStack() as stack:
        if rpc is None:
            node = stack.enter_context(Anvil())
            rpc, key = node.rpc_url, node.keys[0]
        elif key is None:
            raise ChainError("verifying on an external chain needs a funded key (--key or --keyfile)")
        w3 = connect(rpc)
        verifier = deploy_verifier(w3, key, setup.verifier_sol)
        a, b, c = proof_calldata(proof)
        fn = verifier.functions.verifyProof(a, b, c, [int(x) for x in public])
        gas = verify_gas(len(public))
        try:
            valid = bool(fn.call({"gas": gas}))
        except Exception as exc:  # web3 raises many types for a failed eth_call (RPC errors, reverts)
            raise ChainError(f"verifyProof eth_call failed at gas {gas:,}: {exc}") from exc
        receipt = transact(w3, key, fn, gas=gas)
        return valid, int(receipt["gasUsed"])

def proof_calldata(proof: Any) -> tuple[list[int], list[list[int]], list[int]]:
    """(a, b, c) as the snarkjs Solidity verifier takes them.

    Accepts prover.proof.Proof or a snarkjs proof.json dict. The G2 point B is passed with each
    coordinate's c1 before c0 (the EVM pairing precompile's order), while proof.json and the
    Python Proof keep (c0, c1).
    """
    if isinstance(proof, dict):
        try:
            a = [int(proof["pi_a"][0]), int(proof["pi_a"][1])]
            (x0, x1), (y0, y1) = proof["pi_b"][0], proof["pi_b"][1]
            c = [int(proof["pi_c"][0]), int(proof["pi_c"][1])]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputError(f"malformed proof.json: {exc}") from exc
        b = [[int(x1), int(x0)], [int(y1), int(y0)]]
        return a, b, c
    pa, pb, pc = proof.a, proof.b, proof.c
    if pa is None or pb is None or pc is None:
        raise InputError("a proof point is the point at infinity")
    (x0, x1), (y0, y1) = pb
    return [int(pa[0]), int(pa[1])], [[int(x1), int(x0)], [int(y1), int(y0)]], [int(pc[0]), int(pc[1])]


def verifier_artifact(source: str | Path) -> Artifact:
    """Compile a Groth16Verifier.sol (a setup's own export, or snarkjs'; a file or a setup directory)."""
    path = Path(source)
    if path.is_dir():
        path = path / "Groth16Verifier.sol"
    if not path.exists():
        raise InputError(f"{path} not found (a setup directory has Groth16Verifier.sol)")
    arts = compile_contracts(path.resolve())
    if "Groth16Verifier" not in arts:
        raise InputError(f"{path} defines no contract Groth16Verifier")
    return arts["Groth16Verifier"]


def deploy_verifier(w3: Web3, key: str, source: str | Path) -> Contract:
    return deploy(w3, key, verifier_artifact(source))
