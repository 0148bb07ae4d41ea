"""The signed manifest of a run directory (acceptance/manifest.py, `forecourt verify`)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from test_checkers import make_run

from acceptance.cli import main as forecourt
from acceptance.manifest import (
    FORMAT,
    MANIFEST_FILE,
    key_path,
    load_or_create_key,
    public_key_hex,
    verify_manifest,
    write_manifest,
)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory as `forecourt check` leaves it (record.json, junit.xml, manifest)."""
    root = make_run().write(tmp_path_factory.mktemp("manifest") / "run")
    assert forecourt(["check", str(root)]) == 0
    return root


def _copy(src: Path, dst: Path) -> Path:
    for path in src.rglob("*"):
        if path.is_file():
            (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / path.relative_to(src)).write_bytes(path.read_bytes())
    return dst


def test_check_signs_every_file_and_verify_passes(checked: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((checked / MANIFEST_FILE).read_text())
    assert doc["format"] == FORMAT and doc["created_at"].endswith("Z")
    on_disk = {p.relative_to(checked).as_posix() for p in checked.rglob("*") if p.is_file()}
    assert set(doc["files"]) == on_disk - {MANIFEST_FILE}
    assert {"record.json", "junit.xml", "scenario.yaml"} <= set(doc["files"])
    assert any(name.startswith("truth/") for name in doc["files"])
    key = load_or_create_key(key_path())
    assert doc["signature"]["public_key"] == public_key_hex(key)
    assert stat.S_IMODE(os.stat(key_path()).st_mode) == 0o600
    capsys.readouterr()
    assert forecourt(["verify", str(checked), "--public-key", public_key_hex(key)]) == 0
    assert "intact" in capsys.readouterr().out
    assert forecourt(["verify", str(checked)]) == 0
    assert "pin the issuer's key with --public-key" in capsys.readouterr().out


@pytest.mark.parametrize("change, expected", [
    (lambda r: (r / "record.json").write_text((r / "record.json").read_text() + " "),
     "changed: record.json"),
    (lambda r: (r / "junit.xml").unlink(), "missing: junit.xml"),
    (lambda r: (r / "truth" / "extra.csv").write_text("x\n"), "added: truth/extra.csv"),
])
def test_a_changed_removed_or_added_file_is_named(checked: Path, tmp_path: Path, change,
                                                  expected: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(checked, tmp_path / "run")
    change(run)
    problems, _ = verify_manifest(run)
    assert problems == [next(p for p in problems if p.startswith(expected))]
    assert forecourt(["verify", str(run)]) == 1
    assert expected in capsys.readouterr().out


def test_an_edited_manifest_breaks_the_signature(checked: Path, tmp_path: Path) -> None:
    run = _copy(checked, tmp_path / "run")
    (run / "record.json").write_text("{}")
    doc = json.loads((run / MANIFEST_FILE).read_text())
    doc["files"]["record.json"] = __import__("hashlib").sha256(b"{}").hexdigest()
    (run / MANIFEST_FILE).write_text(json.dumps(doc))
    problems, _ = verify_manifest(run)
    assert len(problems) == 1 and problems[0].startswith("signature: does not match")


def test_another_key_fails_against_the_pinned_one(checked: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(checked, tmp_path / "run")
    pinned = doc_key = json.loads((run / MANIFEST_FILE).read_text())["signature"]["public_key"]
    (run / "record.json").write_text("{}")  # forged, then re-signed with the forger's key
    write_manifest(run, key_file=tmp_path / "forger.pem")
    forger = json.loads((run / MANIFEST_FILE).read_text())["signature"]["public_key"]
    assert forger != doc_key
    assert verify_manifest(run)[0] == []  # self-consistent: why a key must be pinned
    assert forecourt(["verify", str(run), "--public-key", pinned]) == 1
    out = capsys.readouterr().out
    assert f"{MANIFEST_FILE} was signed with key {forger}, not the pinned {pinned}" in out


def test_verify_exit_2_without_a_manifest(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert forecourt(["verify", str(tmp_path / "absent")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert forecourt(["verify", str(tmp_path)]) == 2
    assert "no manifest" in capsys.readouterr().err
    (tmp_path / MANIFEST_FILE).write_text("{]")
    assert forecourt(["verify", str(tmp_path)]) == 2
    assert "not readable JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        forecourt(["verify", str(tmp_path), "--public-key", "xyz"])


def test_an_unusable_key_leaves_no_stale_manifest(checked: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(checked, tmp_path / "run")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    monkeypatch.setenv("FORECOURT_MANIFEST_KEY", str(bad))
    assert forecourt(["check", str(run)]) == 0  # the verdict stands
    assert f"{bad}: cannot read the manifest signing key" in capsys.readouterr().err
    assert not (run / MANIFEST_FILE).exists()


def test_report_signs_anew_and_manifest_key_prints_the_public_key(
        checked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(checked, tmp_path / "run")
    assert forecourt(["report", str(run), "--lang", "en"]) == 0
    assert "report.html" in json.loads((run / MANIFEST_FILE).read_text())["files"]
    assert verify_manifest(run)[0] == []
    capsys.readouterr()
    assert forecourt(["manifest-key"]) == 0
    assert capsys.readouterr().out.strip() == public_key_hex(load_or_create_key(key_path()))
