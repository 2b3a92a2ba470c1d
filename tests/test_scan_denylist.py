"""The verdict on one global (hfa/scan/denylist.py, DEFAULT_ALLOWLIST): command-running, file-writing and
network gadgets from the peers' deny lists and the 2025-2026 advisories are critical; harmless
constructors and pure functions are allowed; anything unknown stays high. Nothing is unpickled:
benign fixtures are ``pickle.dumps`` of real objects, malicious ones are assembled."""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import fractions
import io
import pickle
import types
import uuid

import pytest
from scan_corpus import reduce_pickle

from hfa.scan.denylist import classify_global
from hfa.scan.model import DEFAULT_ALLOWLIST, ScanPolicy, Severity
from hfa.scan.pickles import scan_pickle

POLICY = ScanPolicy()

# (module, name) of gadgets that run a command, code, write files or reach the network when called.
GADGETS = [
    ("_aix_support", "_read_cmd_output"),  # runs a shell command (the example)
    ("_pyrepl.pager", "pipe_pager"),  # pipes text through a shell command
    ("_pyrepl.pager", "tempfile_pager"),
    ("_osx_support", "_read_output"),
    ("_osx_support", "compiler_fixup"),
    ("uuid", "_get_command_stdout"),
    ("platform", "_syscmd_ver"),
    ("pydoc", "pipepager"),
    ("pydoc", "locate"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ("lib2to3.pgen2.grammar", "Grammar.loads"),
    ("torch._inductor.codecache", "compile_file"),
    ("torch.utils.collect_env", "run"),
    ("torch.utils.bottleneck.__main__", "run_cprofile"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression"),
    ("torch._dynamo.guards", "GuardBuilder.get"),
    ("torch.utils._config_module", "ConfigModule.load_config"),
    ("torch.utils.data.datapipes.utils.decoder", "basichandlers"),
    ("numpy.testing._private.utils", "runstring"),
    ("numpy.f2py.crackfortran", "getlincoef"),
    ("numpy.distutils.exec_command", "exec_command"),
    ("test.support.script_helper", "assert_python_ok"),
    ("dataclasses", "_create_fn"),
    ("copyreg", "add_extension"),  # rebinds what a later EXT opcode imports
    ("logging.handlers", "SocketHandler"),
    ("logging", "FileHandler"),
    ("logging.config", "listen"),
    ("readline", "write_history_file"),
    ("tkinter", "Tcl"),
    ("_sitebuiltins", "_Helper"),
    ("antigravity", "geohash"),
    ("cgitb", "Hook"),
    ("jinja2", "Template"),
    ("mako.template", "Template"),
    ("yaml", "unsafe_load"),
    ("yaml", "load"),
    ("sympy", "sympify"),
    ("sympy.parsing.sympy_parser", "parse_expr"),
    ("numexpr", "evaluate"),
    ("getpass", "getpass"),
    ("pstats", "Stats"),
    ("ssl", "get_server_certificate"),
    ("imaplib", "IMAP4_stream"),
    ("asyncio.unix_events", "_UnixSubprocessTransport"),
    ("distutils.file_util", "write_file"),
    ("cloudpickle.cloudpickle", "subimport"),
    ("someplugin.helpers", "_read_cmd_output"),  # the command-running names, re-exported anywhere
    ("vendored.pyrepl.pager", "pipe_pager"),
]


@pytest.mark.parametrize(("module", "name"), GADGETS, ids=[f"{m}.{n}" for m, n in GADGETS])
def test_gadgets_are_critical(module: str, name: str) -> None:
    verdict = classify_global(module, name, POLICY)
    assert verdict is not None and verdict[0] is Severity.CRITICAL
    for proto in (0, 2, 4):
        found = scan_pickle(io.BytesIO(reduce_pickle(module, name, proto=proto)), "blob", POLICY)
        assert max(f.severity for f in found) is Severity.CRITICAL
        assert not (POLICY.allows(module, name))


HARMLESS: list[object] = [
    collections.deque([1, 2, 3], maxlen=5),
    collections.Counter("abracadabra"),
    collections.OrderedDict(a=1),
    collections.ChainMap({"a": 1}, {"b": 2}),
    decimal.Decimal("3.14159"),
    fractions.Fraction(3, 7),
    datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc),
    datetime.date(2026, 1, 1),
    datetime.time(12, 30),
    datetime.timedelta(days=2, seconds=5),
    datetime.timezone(datetime.timedelta(hours=2)),
    uuid.UUID(int=7),
    argparse.Namespace(lr=0.1, layers=[1, 2]),
    types.SimpleNamespace(a=1),
    NotImplemented,
    Ellipsis,
    len,
    sorted,
    max,
]


@pytest.mark.parametrize("obj", HARMLESS, ids=[type(o).__name__ for o in HARMLESS])
@pytest.mark.parametrize("proto", range(6))
def test_harmless_standard_objects_are_clean(obj: object, proto: int) -> None:
    assert scan_pickle(io.BytesIO(pickle.dumps(obj, protocol=proto)), "blob", POLICY) == []


@pytest.mark.parametrize(
    "name", ["annotations", "division", "print_function", "absolute_import", "generator_stop", "barry_as_FLUFL"]
)
def test_future_features_are_not_findings(name: str) -> None:
    assert classify_global("__future__", name, POLICY) is None
    assert scan_pickle(io.BytesIO(reduce_pickle("__future__", name, proto=4)), "blob", POLICY) == []


def test_future_dunder_names_stay_critical() -> None:
    verdict = classify_global("__future__", "__builtins__", POLICY)
    assert verdict is not None and verdict[0] is Severity.CRITICAL


def test_a_main_class_is_high_never_critical() -> None:
    for name in ("Model", "Trainer", "MyConfig"):
        assert classify_global("__main__", name, POLICY) == (
            Severity.HIGH,
            "not in the allowlist; importing or calling it may run arbitrary code",
            None,
        )
    found = scan_pickle(io.BytesIO(reduce_pickle("__main__", "Model", proto=4)), "blob", POLICY)
    assert {f.severity for f in found} == {Severity.HIGH}


@pytest.mark.parametrize(("module", "name"), [("somepkg", "Thing"), ("collections", "namedtuple"), ("builtins", "pow"),
                                              ("builtins", "type"), ("builtins", "print")])  # fmt: skip
def test_anything_unknown_stays_high(module: str, name: str) -> None:
    verdict = classify_global(module, name, POLICY)
    assert verdict is not None and verdict[0] is Severity.HIGH


def test_every_allowlist_entry_is_allowed_and_none_is_denied() -> None:
    """Every built-in entry is allowed, and without the allowlist none would be critical (no entry
    overrides the denylist)."""
    for entry in DEFAULT_ALLOWLIST:
        module, _, name = entry.rpartition(".")
        assert classify_global(module, name, POLICY) is None, entry
        bare = classify_global(module, name, ScanPolicy(allow=()))
        assert bare is not None and bare[0] is Severity.HIGH, entry


def test_the_denylist_names_its_sources() -> None:
    from pathlib import Path

    import hfa.scan.denylist as denylist

    text = Path(denylist.__file__).read_text()
    for source in ("picklescan", "modelaudit", "fickling", "GHSA-"):
        assert source in text
