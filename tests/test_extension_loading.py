"""Loading the compiled extension: a torch other than the one it was built against, or
a checkout without a build, gives a clear ImportError (never an undefined symbol or
Python's circular-import message)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gsnn_fast
from gsnn_fast.ops import check_torch_matches

PACKAGE = Path(gsnn_fast.__file__).resolve().parent


def test_build_info_records_the_torch_it_was_built_against():
    info = gsnn_fast.build_info()
    assert info["torch_version"] == torch.__version__
    assert info["cxx_standard"] >= 201703


def test_mismatch_names_both_versions_and_the_fix():
    check_torch_matches(None)  # no record: nothing to compare
    check_torch_matches(torch.__version__)
    with pytest.raises(
        ImportError, match=r"built against torch 2\.0\.0, but torch 2\.13\.0 is"
    ) as e:
        check_torch_matches("2.0.0", running="2.13.0")
    assert "make build" in str(e.value) and "--no-build-isolation" in str(e.value)


def _import_copy(tmp_path: Path, *, with_extension: bool, record: str | None) -> str:
    """Imports a copy of the package (with or without the compiled extension, with a
    recorded torch version) in a fresh interpreter; returns its stderr."""
    dest = tmp_path / "gsnn_fast"
    shutil.copytree(
        PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "_C*.so", "_build_record.py")
    )
    if with_extension:
        for so in PACKAGE.glob("_C*.so"):
            shutil.copy(so, dest / so.name)
    if record is not None:
        (dest / "_build_record.py").write_text(f"TORCH_VERSION = {record!r}\n")
    # -S: no site hooks (an editable install's import hook would find the checkout's
    # package instead of the copy); torch and friends come from the site folders.
    sites = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import gsnn_fast"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(tmp_path), *sites])},
        timeout=120,
    )
    assert proc.returncode != 0
    return proc.stderr


def test_a_faked_build_record_is_refused(tmp_path):
    err = _import_copy(tmp_path, with_extension=True, record="1.0.0")
    assert "built against torch 1.0.0" in err and torch.__version__ in err


def test_a_checkout_without_a_build_says_so(tmp_path):
    err = _import_copy(tmp_path, with_extension=False, record=None)
    assert "is not built" in err and "make build" in err
    assert "circular import" not in err
