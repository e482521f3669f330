"""Model files: one directory ($NED_MODELS), fixed names, found/missing, epochs, per-actor renderers."""

from __future__ import annotations

import pytest

from ned_core.errors import MissingModelError
from ned_core.ned import models


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV, str(tmp_path))
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_every_entry_says_what_where_and_licence():
    names = [m.name for m in models.MODELS]
    assert names[:4] == ["flame", "deca", "manipulator", "renderer"] and len(set(names)) == len(names)
    for m in models.MODELS:
        assert m.what and m.source and m.licence and m.used_by
    assert "non-commercial" in models.entry("flame").licence and "never shipped" in models.entry("deca").licence


def test_default_directory_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(models.ENV, raising=False)
    assert models.models_dir().name == "models" and models.models_dir().parent.name == ".ned"
    monkeypatch.setenv(models.ENV, str(tmp_path))
    assert models.models_dir() == tmp_path


def test_missing_then_found(models_dir):
    assert [m.name for m in models.missing()] == ["flame", "deca", "manipulator", "renderer"]
    with pytest.raises(MissingModelError) as err:
        models.require("flame")
    assert str(models_dir / "flame" / "generic_model.pkl") in err.value.message
    assert "flame.is.tue.mpg.de" in err.value.message
    flame = _touch(models_dir / "flame" / "generic_model.pkl")
    assert models.require("flame") == flame
    assert "flame" not in [m.name for m in models.missing()]


def test_highest_epoch_wins_and_latest_only_without_numbers(models_dir):
    _touch(models_dir / "manipulator" / "latest_nets_finetuned.pth")
    assert models.find("manipulator").name == "latest_nets_finetuned.pth"
    _touch(models_dir / "manipulator" / "02_nets_finetuned.pth")
    best = _touch(models_dir / "manipulator" / "10_nets_finetuned.pth")
    assert models.find("manipulator") == best


def test_renderers_are_per_actor(models_dir):
    a = _touch(models_dir / "renderer" / "tarantino" / "20_net_G.pth")
    assert models.require("renderer") == a  # the only actor
    b = _touch(models_dir / "renderer" / "pacino" / "20_net_G.pth")
    assert models.find("renderer", actor="tarantino") == a
    assert models.find("renderer") is None  # two actors: never guessed
    with pytest.raises(MissingModelError, match="found: pacino, tarantino"):
        models.require("renderer")
    with pytest.raises(MissingModelError, match="deniro"):
        models.require("renderer", actor="deniro")
    status = {s.model.name: s for s in models.status()}
    assert set(status["renderer"].found) == {a, b}


def test_an_option_path_wins(models_dir, tmp_path):
    own = _touch(tmp_path / "elsewhere" / "mine.pth")
    assert models.require("manipulator", option=str(own)) == own
    with pytest.raises(MissingModelError, match="nope.pth"):
        models.require("manipulator", option=str(tmp_path / "nope.pth"))
