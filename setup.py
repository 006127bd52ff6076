"""Build hook: generate the gRPC stubs (proto/gen) before the packages are collected, so a plain
`pip install .` ships them. Everything else is declared in pyproject.toml."""

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithStubs(build_py):
    def run(self):
        here = Path(__file__).resolve().parent
        runpy.run_path(str(here / "proto" / "build.py"))["generate"]()
        super().run()


setup(cmdclass={"build_py": BuildPyWithStubs})
