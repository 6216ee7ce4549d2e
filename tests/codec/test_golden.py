"""Old archives keep decoding: the committed format-1 archives in golden/ (made with the shipped default
model, int8; golden/README.md says how) decode without --model, the decoder finding the model by its
fingerprint, to the committed original bytes. A change that breaks format-1 decoding fails here.

Format 1's probabilities are floats: the archives decode with the onnxruntime/numpy versions and the kind
of CPU that made them (the header's producer string; CI runs on that machine type). A failure after
upgrading one of them means users' archives break too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnrnn.cli import main
from lnrnn.codec import container, decompress, registry, unpack
from lnrnn.codec.api import producer
from lnrnn.serve.app import create_app
from tests.helpers import TestClient, settings_for

GOLDEN = Path(__file__).parent / "golden"
ORIGINAL = GOLDEN / "lighthouse.txt"
ARCHIVES = {"lighthouse.adaptive.lnrz": True, "lighthouse.neural.lnrz": False}  # name -> adaptive
MADE_BY = "lnrnn 0.1.0, onnxruntime 1.32.0, numpy 2.4.6, constriction 0.5.0"  # golden/README.md
OCTET = {"content-type": "application/octet-stream"}


@pytest.fixture(autouse=True)
def shipped_models_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder searches the installed lnrnn.models, with no configured model to help it."""
    for name in (registry.ENV, "LNRNN_MODEL_DIR", "LNRNN_PRECISION"):
        monkeypatch.delenv(name, raising=False)


def why(blob: bytes) -> str:
    """What the assertion says when a golden archive no longer decodes."""
    header, _ = unpack(blob)
    return (
        f"golden archive made by {header.producer}, read by {producer()}. If models/default was replaced, "
        "its old step graph must still ship (as models/<another name>) or the archives of every user are "
        "orphaned; if onnxruntime/numpy changed, format-1 archives of every user no longer decode"
    )


@pytest.mark.parametrize("name", ARCHIVES)
def test_the_golden_archive_is_format_1_of_the_default_model(name: str) -> None:
    blob = (GOLDEN / name).read_bytes()
    header, _ = unpack(blob)
    assert blob[4] == header.version == 1 and 1 in getattr(container, "VERSIONS", (container.VERSION,))
    assert header.adaptive is ARCHIVES[name] and header.precision == "int8"
    assert header.length == ORIGINAL.stat().st_size and header.n_blocks == 3 and header.lanes == 2
    assert header.producer == MADE_BY
    table = json.loads((registry.package_root() / registry.TABLE_FILE).read_text(encoding="utf-8"))
    entry = table["fingerprints"][header.fingerprint.hex()]
    assert (entry["model"], entry["precision"]) == ("default", "int8")


@pytest.mark.parametrize("name", ARCHIVES)
def test_the_golden_archive_decodes_without_model(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "restored.txt"
    code = main(["decompress", "-q", "-o", str(out), str(GOLDEN / name)])
    err = capsys.readouterr().err
    blob = (GOLDEN / name).read_bytes()
    assert code == 0, f"{err.strip()}\n{why(blob)}"
    assert out.read_bytes() == ORIGINAL.read_bytes(), why(blob)
    assert main(["decompress", "-q", "-t", str(GOLDEN / name)]) == 0


def test_the_golden_archives_decode_through_the_library_and_the_route(model_dir: Path) -> None:
    original = ORIGINAL.read_bytes()
    for name in ARCHIVES:
        blob = (GOLDEN / name).read_bytes()
        assert decompress(blob) == original, why(blob)
    # a server of another model still decodes them: the shipped default is found by the fingerprint
    with TestClient(create_app(settings_for(model_dir))) as client:
        for name in ARCHIVES:
            blob = (GOLDEN / name).read_bytes()
            restored = client.post("/v1/decompress", content=blob, headers=OCTET)
            assert restored.status_code == 200 and restored.content == original, restored.text[:500]


def test_another_explicit_model_is_refused_naming_the_right_one(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["decompress", "-t", "--model", str(model_dir), str(GOLDEN / "lighthouse.neural.lnrz")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    default = registry.locate(unpack((GOLDEN / "lighthouse.neural.lnrz").read_bytes())[0].fingerprint, "int8")
    assert default is not None and default.name == "default"
    assert (
        "compressed with another model" in err and f"it matches {default}: decompress without --model" in err
    )


def test_without_the_default_model_the_error_names_it(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As it will be once models/default is retrained: the table still names the model that made them."""
    monkeypatch.setenv(registry.ENV, str(tmp_path))
    monkeypatch.setenv("LNRNN_MODEL_DIR", str(model_dir))
    code = main(["decompress", "-t", str(GOLDEN / "lighthouse.adaptive.lnrz")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "compressed with models/default of lnrnn 0.1.0 (int8), which is not installed here" in err
    assert "pip install lnrnn==0.1.0" in err
