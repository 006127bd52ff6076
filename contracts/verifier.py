"""The setup's exported Solidity Groth16 verifier, deployed and called from Python.

snarkjs' verifier takes G2 coordinates as (c1, c0) while proof.json keeps (c0, c1); the swap
happens here and only here. Calls always carry an explicit gas limit: eth_estimateGas
under-estimates verifyProof, and at that gas the pairing precompile fails inside the
verifier, which then returns false instead of reverting.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prover.proof import Proof

VERIFY_GAS = 1_000_000


def proof_calldata(proof: Proof) -> tuple[list[int], list[list[int]], list[int]]:
    """(a, b, c) as the Solidity verifier's arguments."""
    (ax, ay), ((bx0, bx1), (by0, by1)), (cx, cy) = proof.a, proof.b, proof.c
    return [ax, ay], [[bx1, bx0], [by1, by0]], [cx, cy]


def verify_onchain(setup, proof: Proof, public: list[int], rpc: str | None = None) -> tuple[bool, int]:
    """Deploy the setup's verifier (on an anvil we start when no RPC is given), check the proof with
    an eth_call, and send the same call as a transaction to measure its gas."""
    from contracts.solc import compile_contracts
    from servers.chain import Anvil, connect, deploy, send_call

    artifact = compile_contracts(setup.path / "Groth16Verifier.sol")["Groth16Verifier"]
    with ExitStack() as stack:
        if rpc is None:
            node = stack.enter_context(Anvil())
            rpc, key = node.rpc_url, node.accounts[0].key
        else:
            from servers.chain import default_key

            key = default_key()
        w3 = connect(rpc)
        verifier = deploy(w3, key, artifact)
        a, b, c = proof_calldata(proof)
        fn = verifier.functions.verifyProof(a, b, c, [int(x) for x in public])
        valid = bool(fn.call({"gas": VERIFY_GAS}))
        receipt = send_call(w3, key, fn, gas=VERIFY_GAS)
        return valid, int(receipt["gasUsed"])
