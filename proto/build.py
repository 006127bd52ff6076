"""Generate the gRPC stubs from proto/*.proto into proto/gen at build time (never committed).

Run by `make install` for the editable checkout and by setup.py's build step for `pip install .`;
it imports nothing of omniplus, so it works before the package is installed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent


def generate(out: Path = PROTO_DIR / "gen", src: Path = PROTO_DIR) -> list[str]:
    from grpc_tools import protoc  # imported late: only the build needs it

    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text('"""Generated gRPC stubs (make proto)."""\n')
    protos = sorted(src.glob("*.proto"))
    for proto in protos:
        args = ["protoc", f"-I{src}", f"--python_out={out}", f"--grpc_python_out={out}", str(proto)]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")
    # grpc_tools writes `import x_pb2`; make the imports package-relative.
    for stub in out.glob("*_pb2*.py"):
        text = stub.read_text()
        fixed = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        stub.write_text(fixed)
    return [p.name for p in protos]


if __name__ == "__main__":
    names = generate()
    print(f"generated stubs for {len(names)} proto file(s)", file=sys.stderr)
