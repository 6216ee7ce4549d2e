"""Old archives keep decoding: the committed format-1 archives in golden/ (made with the shipped default
model, int8; golden/README.md says how) decode without --model, the decoder finding the model by its
fingerprint, to the committed original bytes. A change that breaks format-1 decoding fails here.

Format 1's probabilities are floats: the archives decode with the onnxruntime/numpy versions and the kind
of CPU that made them (the header's producer string). There is a pair per kind of CPU the project's
machines have had; on this kind its pair must decode, and every other pair must fail in one line naming
both sides. A failure after upgrading onnxruntime or numpy means users' archives break too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnrnn.cli import main
from lnrnn.codec import container, decompress, registry, unpack
from lnrnn.codec.api import cpu_kind, producer, producer_parts
from lnrnn.codec.errors import CodecError
from lnrnn.serve.app import create_app
from tests.helpers import TestClient, settings_for

GOLDEN = Path(__file__).parent / "golden"
ORIGINAL = GOLDEN / "lighthouse.txt"
ARCHIVES = sorted(p.name for p in GOLDEN.glob("lighthouse.*.lnrz"))  # format 2's are in golden/format2/
MADE_BY = "lnrnn 0.1.0, onnxruntime 1.32.0, numpy 2.4.6, constriction 0.5.0"  # golden/README.md
# the first pair's producer did not name the CPU yet: an AMD EPYC with AVX2 and no AVX-512 (golden/README.md)
UNRECORDED_CPU = "x86_64/X86_V3"
OCTET = {"content-type": "application/octet-stream"}


@pytest.fixture(autouse=True)
def shipped_models_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder searches the installed lnrnn.models, with no configured model to help it."""
    for name in (registry.ENV, "LNRNN_MODEL_DIR", "LNRNN_PRECISION"):
        monkeypatch.delenv(name, raising=False)


def made_on(blob: bytes) -> str:
    return producer_parts(unpack(blob)[0].producer).get("cpu", UNRECORDED_CPU)


def decodes_here(blob: bytes) -> bool:
    """Made by these versions on this kind of CPU (whether the CPU was recorded or not)."""
    header, _ = unpack(blob)
    here = producer_parts(producer())
    return made_on(blob) == here["cpu"] and producer_parts(header.producer) | {"cpu": here["cpu"]} == here


def test_every_golden_archive_names_its_cpu_in_its_file_name() -> None:
    assert len(ARCHIVES) >= 4 and len(ARCHIVES) % 2 == 0
    for name in ARCHIVES:
        cpu = made_on((GOLDEN / name).read_bytes())
        assert cpu == UNRECORDED_CPU or cpu.replace("/", "-") in name, (name, cpu)


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
    assert header.adaptive is (".adaptive." in name) and header.precision == "int8"
    assert header.length == ORIGINAL.stat().st_size and header.n_blocks == 3 and header.lanes == 2
    assert header.producer.startswith(MADE_BY)
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
    if not decodes_here(blob):  # another kind of CPU: one line naming what wrote it and what reads it
        assert code == 2 and err.count("\n") == 1 and not out.exists(), err
        assert f"written by {unpack(blob)[0].producer}; read by {producer()}" in err, err
        cpu = f"{made_on(blob)} -> {cpu_kind()}"
        assert f"cpu {cpu}" in err or f"cpu (not recorded) -> {cpu_kind()}" in err, err
        return
    assert code == 0, f"{err.strip()}\n{why(blob)}"
    assert out.read_bytes() == ORIGINAL.read_bytes(), why(blob)
    assert main(["decompress", "-q", "-t", str(GOLDEN / name)]) == 0


def test_the_golden_archives_decode_through_the_library_and_the_route(model_dir: Path) -> None:
    """The pair made on this kind of CPU decodes; the others are refused cleanly (no traceback, no 500)."""
    original = ORIGINAL.read_bytes()
    for name in ARCHIVES:
        blob = (GOLDEN / name).read_bytes()
        if decodes_here(blob):
            assert decompress(blob) == original, why(blob)
        else:
            with pytest.raises(CodecError, match="written by"):
                decompress(blob)
    # a server of another model still decodes them: the shipped default is found by the fingerprint
    with TestClient(create_app(settings_for(model_dir))) as client:
        for name in ARCHIVES:
            blob = (GOLDEN / name).read_bytes()
            restored = client.post("/v1/decompress", content=blob, headers=OCTET)
            if decodes_here(blob):
                assert restored.status_code == 200 and restored.content == original, restored.text[:500]
            else:
                message = restored.json()["error"]["message"]
                assert 400 <= restored.status_code < 500 and "written by" in message, restored.text


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
