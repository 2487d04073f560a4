"""The scripts in examples/: they use art_seg's public names only, and the benchmark scripts start (``--help``)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def art_seg_imports(path: Path) -> list[str]:
    """Every ``art_seg`` module and name imported by the file, as dotted paths."""
    imported = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "art_seg":
            imported += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names if alias.name.split(".")[0] == "art_seg"]
    return imported


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_import_only_public_art_seg_names(path: Path) -> None:
    private = [name for name in art_seg_imports(path) if any(part.startswith("_") for part in name.split("."))]
    assert not private, f"{path.name} imports private names {private}"


def test_the_benchmark_harness_is_not_in_the_package() -> None:
    assert importlib.util.find_spec("art_seg.evaluation.attack_benchmark") is None
    assert (ROOT / "examples" / "attack_benchmark.py").is_file()


BENCHMARKS = ["benchmark_attacks.py", "benchmark_sea.py", "benchmark_sliding_window.py", "benchmark_strong_attacks.py"]


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark_scripts_start(script: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's art_seg
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--help"], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
