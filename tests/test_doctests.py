"""The docstring examples of every dlnet module run as doctests (the quick ones: a few seconds).

An example that cannot run here (it needs a photo on disk, writes a file, or starts a server) is
marked ``# doctest: +SKIP`` where it stands, so what is left runs. Modules listed in SLOW are left
to their own tests, with the reason.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import dlnet

SLOW = {
    "dlnet.model.net": "its examples build full DenseNet/EfficientNet models (10 s); test_model.py covers them",
    "dlnet.model.encoders": "its examples build full encoders (3-12 s); test_model.py covers them",
    "dlnet.evaluate.protocol": "its examples score photos on disk (not runnable as they stand)",
}


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(dlnet.__path__, "dlnet."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra not installed
            continue
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    assert {"dlnet.infer.options", "dlnet.io.atomic", "dlnet.io.imageio", "dlnet.infer.colorizer", "dlnet.color.rebalance"} <= set(MODULES)


@pytest.mark.parametrize("name", [m for m in MODULES if m not in SLOW])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (above)"
