"""Test helper: a tiny circom circuit with a real snarkjs Groth16 setup in a scratch folder.

The circuit takes a public x and private a[n] (4-bit values), range-checks each a[i] with bit
constraints, squares it and outputs y = x·Σ a[i]²: public outputs and inputs, mostly-bit
witness, linear and quadratic rows — the shape of the gradient circuit, at 6n + 1 constraints.
Everything comes from the real tools (circom2, snarkjs CLI) at power ≤ 8 by default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from omniplus.core import resources as paths
from omniplus.core.tools import run_tool

CIRCUIT = """pragma circom 2.0.0;

template Toy(n) {
    signal input x;
    signal input a[n];
    signal output y;
    signal bits[n][4];
    signal sq[n];
    var acc = 0;
    for (var i = 0; i < n; i++) {
        var lc = 0;
        for (var j = 0; j < 4; j++) {
            bits[i][j] <-- (a[i] >> j) & 1;
            bits[i][j] * (bits[i][j] - 1) === 0;
            lc += bits[i][j] * (1 << j);
        }
        lc === a[i];
        sq[i] <== a[i] * a[i];
        acc += sq[i];
    }
    y <== acc * x;
}

component main {public [x]} = Toy(%d);
"""


@dataclass
class Toy:
    """Paths of a built toy setup plus its witness (wire 0 = 1)."""

    dir: Path
    n: int
    r1cs: Path
    wasm: Path
    zkey: Path
    vkey_path: Path
    wtns: Path
    input: dict
    witness: list[int]

    @property
    def vkey(self) -> dict:
        return json.loads(self.vkey_path.read_text())


def snarkjs(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    """Run the pinned snarkjs CLI, return stdout."""
    proc = run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=f"snarkjs {args[0]}",
                    timeout=timeout)
    return proc.stdout.decode()


def toy_input(n: int, x: int = 7) -> dict:
    return {"x": str(x), "a": [str((3 * i + 1) % 16) for i in range(n)]}


def build_toy(workdir: Path, n: int = 4, power: int | None = None) -> Toy:
    """Compile, set up (ptau power chosen from the size unless given) and compute the witness."""
    from omniplus.prover.wtns import read_wtns

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "toy.circom").write_text(CIRCUIT % n)
    nm = workdir / "node_modules"
    if not nm.exists():
        os.symlink(paths.NODE_MODULES, nm)
    run_tool([paths.node_tool("circom2"), "toy.circom", "--r1cs", "--wasm", "-l", "node_modules",
              "-o", "."], cwd=workdir, what="circom2", timeout=300)
    if power is None:
        rows = 6 * n + 1 + 3  # constraints + one extra A row per public wire and the constant
        power = max(3, (rows - 1).bit_length())
    snarkjs("powersoftau", "new", "bn128", str(power), "pot0.ptau", cwd=workdir)
    snarkjs("powersoftau", "contribute", "pot0.ptau", "pot1.ptau", "--name=t", "-e=toy entropy",
            cwd=workdir)
    snarkjs("powersoftau", "prepare", "phase2", "pot1.ptau", "pot.ptau", cwd=workdir)
    snarkjs("groth16", "setup", "toy.r1cs", "pot.ptau", "toy0.zkey", cwd=workdir)
    snarkjs("zkey", "contribute", "toy0.zkey", "toy.zkey", "--name=t", "-e=more entropy", cwd=workdir)
    snarkjs("zkey", "export", "verificationkey", "toy.zkey", "vkey.json", cwd=workdir)
    inp = toy_input(n)
    (workdir / "input.json").write_text(json.dumps(inp))
    wasm = workdir / "toy_js" / "toy.wasm"
    snarkjs("wtns", "calculate", wasm, "input.json", "toy.wtns", cwd=workdir)
    return Toy(workdir, n, workdir / "toy.r1cs", wasm, workdir / "toy.zkey", workdir / "vkey.json",
               workdir / "toy.wtns", inp, read_wtns(workdir / "toy.wtns"))


_SHARED: dict[int, Toy] = {}


def shared_toy(n: int = 4) -> Toy:
    """One build per test process and size (in a temp dir removed at exit): test modules that
    need the toy setup share it instead of paying ≈10 s each."""
    import atexit
    import shutil
    import tempfile

    if n not in _SHARED:
        d = Path(tempfile.mkdtemp(prefix=f"omniplus-toy{n}-"))
        atexit.register(shutil.rmtree, d, True)
        _SHARED[n] = build_toy(d, n)
    return _SHARED[n]
