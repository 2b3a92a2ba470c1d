"""Whole-model torch saves in the legacy (non-zip) format: classes that arrive through ("module", class,
source file, source) persistent ids are resolved as torch's legacy persistent_load resolves them, so an
allowlist clears the same model in both formats. Nothing is loaded; torch only writes the fixtures."""

from __future__ import annotations

import io

import pytest
from scan_corpus import Asm, legacy_torch

from hfa.scan.archive import scan_serialized
from hfa.scan.model import Finding, ScanPolicy, Severity

NN = ScanPolicy(extra=("torch.nn.modules.*",))


def scan(data: bytes, policy: ScanPolicy = ScanPolicy(), name: str = "model.pt") -> list[Finding]:
    found = scan_serialized(io.BytesIO(data), name, policy)
    assert found is not None
    return found


def module_record(a: Asm, module: str, name: str) -> Asm:
    """torch's legacy persistent id of a module class: ("module", class, source file, source)."""
    a.op("MARK").str("module").op("GLOBAL", module, name).str(f"/site-packages/{module.replace('.', '/')}.py")
    return a.str("class " + name + "(Module):\n" + "    pass\n" * 60).op("TUPLE").op("BINPERSID")


def whole_model(module: str = "torch.nn.modules.linear", name: str = "Linear") -> bytes:
    """The model pickle of torch.save(nn.Linear(...), f, _use_new_zipfile_serialization=False), by hand."""
    a = Asm(2)
    module_record(a, module, name).op("EMPTY_TUPLE").op("NEWOBJ")
    a.op("EMPTY_DICT").op("MARK").str("training").op("NEWTRUE").str("_parameters")
    a.op("GLOBAL", "collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE")
    a.op("MARK").str("weight").op("GLOBAL", "torch._utils", "_rebuild_tensor").op("MARK")
    a.op("MARK").str("storage").op("GLOBAL", "torch", "FloatStorage").str("0").str("cpu").int(4).op("NONE")
    a.op("TUPLE").op("BINPERSID").int(0).tuple(lambda x: x.int(4)).tuple(lambda x: x.int(1)).op("TUPLE").op("REDUCE")
    a.op("SETITEMS").op("SETITEMS").op("BUILD")
    return a.stop()


def test_a_hand_built_legacy_whole_model_is_judged_by_its_classes() -> None:
    found = scan(legacy_torch(whole_model()))
    assert [(f.code, f.detail.get("name")) for f in found] == [("pickle.unknown-global", "Linear")]
    assert "calls it" in found[0].message  # NEWOBJ calls the class the record names
    assert all(f.code != "pickle.indirect-call" for f in found)
    assert scan(legacy_torch(whole_model()), NN) == []


def test_a_module_record_naming_a_dangerous_callable_is_critical() -> None:
    found = scan(legacy_torch(whole_model("os", "system")), NN)
    assert any(f.severity is Severity.CRITICAL and f.detail.get("name") == "system" for f in found)


def test_module_records_outside_a_legacy_file_stay_indirect_calls() -> None:
    """Only torch's legacy loader resolves them: elsewhere the persistent-load result is unknown."""
    found = scan(whole_model(), NN, name="model.pkl")
    assert "pickle.indirect-call" in {f.code for f in found}


@pytest.mark.parametrize("zipped", [False, True], ids=["legacy", "zip"])
def test_a_real_whole_model_clears_with_the_same_allowlist_in_both_formats(zipped: bool) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.LayerNorm(2))
    buf = io.BytesIO()
    torch.save(model, buf, _use_new_zipfile_serialization=zipped)
    data = buf.getvalue()
    bare = scan(data)
    assert {f.code for f in bare} == {"pickle.unknown-global"}
    assert {f.detail["name"] for f in bare} == {"Sequential", "Linear", "ReLU", "LayerNorm"}
    assert scan(data, NN) == []
