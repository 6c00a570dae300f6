"""Regenerate the checked-in Python stubs of the .proto files in this folder: ``make proto``.

protoc runs with the repository root as its only proto path, so each file is known
as ``redux/proto/<name>.proto`` and the generated modules import each other as
``from redux.proto import common_pb2``: no import rewriting. gRPC stubs are
generated only for files that declare a service. The output depends on the
grpcio-tools version (pinned in the ``dev`` extra), which bundles protoc.
"""

from __future__ import annotations

import re
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
REPO_ROOT = PROTO_DIR.parents[1]
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generated_files(directory: Path) -> list[Path]:
    """The generated stubs in a ``redux/proto`` folder."""
    return sorted(p for p in directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def generate(out_root: Path) -> list[Path]:
    """Generate the stubs under ``out_root/redux/proto/``; returns the files written."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    out_root = Path(out_root).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    sources = [str(p) for p in proto_files()]
    with_services = [p for p in sources if re.search(r"^\s*service\s", Path(p).read_text(), re.MULTILINE)]
    proto_path = f"--proto_path={REPO_ROOT}"
    runs = [
        [proto_path, f"--python_out={out_root}", f"--pyi_out={out_root}", *sources],
        [proto_path, f"--grpc_python_out={out_root}", *with_services],
    ]
    for args in runs:
        if protoc.main(["grpc_tools.protoc", *args]) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return generated_files(out_root / PROTO_DIR.relative_to(REPO_ROOT))


def main() -> None:
    for stale in generated_files(PROTO_DIR):  # so that a deleted .proto leaves no stubs behind
        stale.unlink()
    for path in generate(REPO_ROOT):
        print(path.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
