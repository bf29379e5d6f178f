"""``dlnet models``: every shipped model once, the default marked, records that match the files.

Written against whatever models are shipped (names come from the weights folder), so replacing or
retraining a model needs no change here.
"""

from __future__ import annotations

import json

import pytest

from dlnet.apps.cli import main
from dlnet.model.weights import DEFAULT_MODEL, WEIGHTS_DIR, available_models, load_model, sha256_file


@pytest.fixture(scope="module")
def shipped() -> list[str]:
    names = available_models()
    if not names:
        pytest.skip("no shipped model in this checkout")
    return names


def test_models_lists_each_shipped_model_with_the_default_marked(shipped, capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0].removesuffix(" (default)") for line in lines] == shipped
    assert [line for line in lines if " (default):" in line] == [
        next(line for line in lines if line.startswith(f"{DEFAULT_MODEL} (default):"))]
    assert all(len(line.split(": ", 1)[1]) > 10 for line in lines), "each model is described"


def test_models_json_matches_the_files(shipped, capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == shipped
    assert [r["name"] for r in rows if r["default"]] == [DEFAULT_MODEL]
    for row in rows:
        assert row["sha256"] == sha256_file(WEIGHTS_DIR / f"{row['name']}.safetensors")


def test_the_default_model_loads_by_its_name_and_by_none(shipped):
    assert DEFAULT_MODEL in shipped
    assert load_model().config.to_dict() == load_model(DEFAULT_MODEL).config.to_dict()


def test_models_takes_no_unknown_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["models", "--bogus"])
    assert exit_.value.code == 2
