"""The setup's exported Solidity Groth16 verifier, deployed and called from Python.

Calls always carry an explicit gas limit: eth_estimateGas under-estimates verifyProof, and at
that gas the pairing precompile fails inside the verifier, which then returns false instead of
reverting.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from omniplus.core.errors import ChainError

if TYPE_CHECKING:
    from omniplus.prover.proof import Proof

VERIFY_GAS = 1_000_000


def verify_onchain(setup, proof: Proof, public: list[int], rpc: str | None = None,
                   key: str | None = None) -> tuple[bool, int]:
    """Deploy the setup's verifier (on an anvil we start when no RPC is given), check the proof with
    an eth_call, and send the same call as a transaction to measure its gas."""
    from omniplus.contracts.chain import Anvil, connect, transact
    from omniplus.contracts.markets import deploy_verifier, proof_calldata

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
        valid = bool(fn.call({"gas": VERIFY_GAS}))
        receipt = transact(w3, key, fn, gas=VERIFY_GAS)
        return valid, int(receipt["gasUsed"])
