"""The package as a user gets it: a plain (non-editable) build run from outside the checkout, and a
CLI that starts without importing its verbs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from omniplus.core.resources import package_dir

CHECKOUT = package_dir("omniplus").parent


def test_a_plain_install_runs_from_outside_the_checkout(tmp_path: Path) -> None:
    """`pip install .` (no editable finder): every sub-package, the package data and the generated
    gRPC stubs are inside the installed tree, and nothing is found by walking up from the CLI."""
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(CHECKOUT)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    shutil.rmtree(CHECKOUT / "build", ignore_errors=True)  # setuptools' in-tree build folder
    assert build.returncode == 0, build.stderr[-2000:]
    probe = (
        "import omniplus, omniplus.prover.field, omniplus.servers.daemon, omniplus.proto.gen.omniplus_pb2\n"
        "from omniplus.core import resources as r\n"
        f"assert str(r.CIRCUITS_DIR).startswith({str(target)!r}), r.CIRCUITS_DIR\n"
        "assert (r.CIRCUITS_DIR / 'gradient_validity.circom').is_file()\n"
        "assert (r.CONTRACTS_DIR / 'RollupMarket.sol').is_file() and (r.CONTRACTS_DIR / 'compile.js').is_file()\n"
        "assert (r.JS_DIR / 'engine.js').is_file() and (r.PROTO_DIR / 'omniplus.proto').is_file()\n"
        "print(omniplus.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    # -S keeps the editable install's finder (site-packages) out; the dependencies come from the venv's
    # site-packages added explicitly after the target, so omniplus can only come from the target
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env["PYTHONPATH"] = os.pathsep.join([str(target), site])
    run = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(str(target))
    cli = subprocess.run([sys.executable, "-S", "-m", "omniplus", "--help"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert cli.returncode == 0 and "VERB" in cli.stdout and "setup" in cli.stdout, cli.stderr[-2000:]


def test_the_cli_imports_no_verb_to_start() -> None:
    """`omniplus --version` and `omniplus VERB --help` import only the CLI core (and that one verb)."""
    code = ("import sys; from omniplus.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'web3', 'grpc', 'numpy', 'omniplus.cli.demo') if m in sys.modules]\n"
            "print('|' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.rsplit("|", 1)[1].strip() == "", out.stdout + out.stderr
    for verb in ("server", "coordinator", "setup", "do", "demo", "mo", "bench"):
        code = (f"import sys; from omniplus.cli import main\ntry:\n    main(['{verb}', '--help'])\n"
                "except SystemExit:\n    pass\nprint('|' + ','.join(m for m in ('torch', 'web3', 'grpc') "
                "if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.rsplit("|", 1)[1].strip() == "", f"`omniplus {verb} --help` imports {out.stdout}"
