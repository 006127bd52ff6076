"""Generate gRPC stubs from proto/*.proto into proto/gen at build time (never committed)."""

from __future__ import annotations

import re
import sys

from omniplus.paths import PROTO_DIR


def generate() -> list[str]:
    from grpc_tools import protoc  # imported late: only the build needs it

    out = PROTO_DIR / "gen"
    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text('"""Generated gRPC stubs (make proto)."""\n')
    protos = sorted(PROTO_DIR.glob("*.proto"))
    for proto in protos:
        args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", str(proto)]
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
