"""Which globals a pickle may import: the dangerous-module tables and the verdict on one global.

Used by the pickle scanner's judge (:mod:`hfa.scan.pickles.judge`); nothing here reads a pickle.
"""

from __future__ import annotations

import _compat_pickle
import sys

from hfa.scan.model import ScanPolicy, Severity

_SEV_CRIT = Severity.CRITICAL
_SEV_HIGH = Severity.HIGH

# --------------------------------------------------------------------------------------------
# What is dangerous. A module entry covers the module and all its submodules; a (module, names)
# entry covers those attributes (and their own attributes: "Profile" covers "Profile.run").
# Anything not allowlisted is at least "unknown" (high); this list decides what is critical.
#
# Sources (read 2026-12; public, each checked against the standard library of Python 3.10-3.14):
# picklescan's _unsafe_globals (src/picklescan/scanner.py) and its advisories of 2025-2026
# (GHSA-655q-fx9r-782v, -9gvj-pp9x-gcfr, -f7qq-56ww-84cr, -mjqp-26hc-grxg, -jgw4-cr84-mqxg,
# -m273-6v24-x4m4, -4675-36f9-wf6r, -84r2-jw7c-4r5q, -vqmv-47xg-9wpr, -hgrh-qx5j-jfwx,
# -r8g5-cgf2-4m4m, -x843-g5mx-g377, -3329-ghmp-jmv5, -cffc-mxrf-mhh4, -rrxm-2pvv-m66x,
# -6556-fwc2-fg2p, -gx77-x2pv-48v7, -vvpj-8cmc-gx39: _aix_support, _pyrepl.pager, _osx_support,
# uuid._get_command_stdout, platform._syscmd_ver, idlelib, lib2to3, torch._inductor.codecache,
# torch.utils.collect_env, torch.fx.experimental.symbolic_shapes, pkgutil.resolve_name, importlib,
# marshal); modelaudit's SUSPICIOUS_GLOBALS (modelaudit/suspicious_symbols.py); fickling's
# UNSAFE_IMPORTS and its issue 190; modelscan PR 313. Added here from the standard library and
# common packages by the same rule (runs code, a shell, touches files or the network):
# dataclasses._create_fn / _FuncBuilder (exec), copyreg.add_extension (rebinds what EXT imports),
# logging.handlers (files, sockets, SMTP, HTTP), readline (history files), tkinter (Tcl eval),
# _sitebuiltins (help() pager, file readers), antigravity (a browser), cgitb (writes files),
# jinja2 / mako (templates compile to Python), yaml.load and friends (any object), sympy's
# sympify / lambdify / parse_expr (eval), numexpr.evaluate (eval), getpass (a terminal).


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_DANGEROUS_MODULES: frozenset[str] = _words(
    """
    _aix_support _ctypes _distutils_hack _frozen_importlib _frozen_importlib_external _imp
    _interpchannels _interpreters _lsprof _multiprocessing _osx_support _pickle _posixsubprocess
    _pyrepl _signal _sitebuiltins _socket _sqlite3 _ssl _testcapi _testinternalcapi _thread _tkinter
    _winapi _winreg _xxsubinterpreters aiohttp antigravity asyncio atexit bdb bz2 cffi cgi cgitb
    cloudpickle code codeop commands compileall concurrent cPickle cProfile ctypes dbm dill distutils
    doctest ensurepip faulthandler fcntl filecmp fileinput ftplib gc getpass glob gzip http httplib
    httpx idlelib imaplib imp importlib inspect jinja2 joblib.numpy_pickle_compat jsonpickle
    keras.utils lib2to3 linecache logging.config logging.handlers lzma mailbox mailcap mako marshal
    mlflow mmap msilib msvcrt multiprocessing nntplib nt
    numpy.ctypeslib numpy.distutils numpy.f2py numpy.lib._format_impl numpy.lib._npyio_impl
    numpy.lib.format numpy.lib.npyio numpy.testing os pandas.io pathlib pdb pickle pickletools pip
    pkg_resources pkgutil platform popen2 poplib posix profile pty py_compile pydoc requests resource
    pstats readline rlcompleter runpy sched select selectors setuptools shelve shutil signal site smtpd
    smtplib socket socketserver sqlite3 ssl subprocess sympy.parsing sympy.utilities.lambdify sys
    tarfile telnetlib tempfile tensorflow.io termios test threading timeit tkinter turtle
    torch._dynamo torch._export torch._inductor torch.distributed torch.export torch.fx torch.hub
    torch.jit torch.multiprocessing torch.onnx torch.package torch.serialization
    torch.utils._config_module torch.utils.bottleneck torch.utils.collect_env torch.utils.cpp_extension
    torch.utils.data.datapipes trace tty unittest urllib urllib2 urllib3 venv webbrowser winreg wsgiref
    xmlrpc xmlrpclib zipapp zipfile zipimport
    """
)
_DANGEROUS_NAMES: dict[str, frozenset[str]] = {
    "builtins": _words(
        """
        __build_class__ __import__ __loader__ __spec__ apply breakpoint compile delattr eval exec
        execfile exit file getattr globals help input locals memoryview open quit reload setattr vars
        """
    ),
    "types": _words(
        """
        BuiltinFunctionType BuiltinMethodType CodeType coroutine FunctionType LambdaType MethodType
        ModuleType new_class
        """
    ),
    "functools": _words("partial partialmethod reduce singledispatch"),
    "_functools": _words("partial reduce"),
    "operator": _words("attrgetter call itemgetter methodcaller"),
    "_operator": _words("attrgetter call itemgetter methodcaller"),
    "io": _words(
        """
        BufferedRandom BufferedReader BufferedRWPair BufferedWriter FileIO open open_code
        TextIOWrapper
        """
    ),
    "_io": _words(
        """
        BufferedRandom BufferedReader BufferedRWPair BufferedWriter FileIO open open_code
        TextIOWrapper
        """
    ),
    "codecs": _words("EncodedFile open StreamReaderWriter StreamRecoder"),
    "copyreg": _words("add_extension clear_extension_cache constructor dispatch_table pickle remove_extension"),
    "copy_reg": _words("add_extension clear_extension_cache constructor dispatch_table pickle remove_extension"),
    "dataclasses": _words("_create_fn _FuncBuilder"),
    "logging": _words("FileHandler basicConfig config handlers"),
    "yaml": _words("FullLoader full_load full_load_all load load_all Loader unsafe_load unsafe_load_all UnsafeLoader"),
    "sympy": _words("lambdify parse_expr sympify"),
    "sympy.core.sympify": _words("sympify"),
    "numexpr": _words("evaluate re_evaluate"),
    "weakref": _words("finalize"),
    "uuid": _words(
        """
        _arp_getnode _find_mac _find_mac_near_keyword _find_mac_under_heading _get_command_stdout
        _ifconfig_getnode _ip_getnode _lanscan_getnode _netstat_getnode _popen
        """
    ),
    "numpy": _words(
        """
        ctypeslib DataSource f2py fromfile fromregex genfromtxt load loads loadtxt memmap save savetxt
        savez savez_compressed testing
        """
    ),
    "numpy.core.memmap": _words("memmap"),
    "numpy._core.memmap": _words("memmap"),
    "numpy.core.multiarray": _words("fromfile"),
    "numpy._core.multiarray": _words("fromfile"),
    "torch": _words("_C _dynamo _inductor _load _ops compile from_file hub jit load ops package save"),
    "torch.storage": _words("_load_from_bytes"),
    "torch._C": _words(
        """
        _get_tracing_state _jit_pass _load_for_lite_interpreter import_ir_module
        import_ir_module_from_buffer
        """
    ),
    "torch.jit.unsupported_tensor_ops": _words("execWrapper"),
    "joblib": _words("delayed dump load Memory Parallel"),
    "joblib.numpy_pickle": _words(
        """
        _read_fileobject _unpickle dump load load_compatibility NumpyPickler NumpyUnpickler
        """
    ),
    "pandas": _words(
        """
        eval read_clipboard read_csv read_excel read_feather read_fwf read_hdf read_html read_json
        read_orc read_parquet read_pickle read_sas read_spss read_sql read_sql_query read_stata
        read_table read_xml
        """
    ),
    "sklearn.externals.joblib": _words("load"),
}
# Plain names of a denied module: calling one touches nothing. The path classes build a path from
# strings (Lightning hparams, argparse namespaces and training arguments hold them; pathlib._local is
# where Python 3.13+ defines them); torch.serialization._get_layout looks a sparse tensor's layout up
# by name; http.HTTPStatus is an IntEnum. Only the bare names: a method reached through one (``Path.write_text``, ``Path.unlink`` by a
# dotted name) is critical like every dotted name, and the rest of each module stays denied.
_PLAIN_NAMES: frozenset[tuple[str, str]] = frozenset(
    [
        *(
            (module, name)
            for module in ("pathlib", "pathlib._local")
            for name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")
        ),
        ("torch.serialization", "_get_layout"),
        ("http", "HTTPStatus"),  # an IntEnum of status codes
    ]
)
# Names that run code whatever module they come from (numpy.testing._private.utils.runstring, ...).
_DANGEROUS_ANYWHERE: frozenset[str] = _words(
    """
    __import__ _get_command_stdout _read_cmd_output _read_output _run_code _run_module_code _syscmd_ver
    assert_python_ok check_call check_output compile_file eval evaluate_guards_expression exec
    exec_command exec_module execfile execl execle execlp execlpe execv execve execvp execvpe execWrapper
    forkpty getoutput getstatusoutput import_module load_module load_source pipe_pager pipepager popen
    Popen resolve_name run_and_read_all run_autograd_prof run_code run_cprofile run_module run_path
    runcode runsource runstring spawnl spawnle spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe system
    tempfilepager
    """
)

_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))

# --------------------------------------------------------------------------------------------
# Verdicts on globals


def importable(dotted: str) -> bool:
    """Whether a name could be a module path or attribute path: identifiers (any script), or file
    names with dashes, joined by dots. Prose ("lass Foo:", "mport torch") is not; the probe uses
    this to tell a protocol 0 pickle from text that starts with 'c' or 'i'."""
    return bool(dotted) and all(part.replace("-", "_").isidentifier() for part in dotted.split("."))


def _bad_attribute(module: str, name: str, dotted_ok: bool = False) -> str | None:
    """Why (module, name) must be treated as dangerous whatever the policy says, or None. A dotted
    name is, unless ``dotted_ok`` (the built-in allowlist names it exactly)."""
    if "." in name and not dotted_ok:
        return "dotted attribute name (reaches attributes of attributes)"
    parts = name.split(".")
    if any(p.startswith("__") and p.endswith("__") and len(p) > 4 for p in parts):
        return "dunder attribute name"
    for part in module.split("."):
        if part.startswith("__") and part.endswith("__") and part not in ("__builtin__", "__main__", "__future__"):
            return "dunder module name"
    return None


def _in_module(module: str, prefixes: frozenset[str]) -> bool:
    if module in prefixes:
        return True
    cut = module.rfind(".")
    while cut > 0:
        module = module[:cut]
        if module in prefixes:
            return True
        cut = module.rfind(".")
    return False


def _denied(module: str, name: str) -> bool:
    if (module, name) in _PLAIN_NAMES:
        return False
    if _in_module(module, _DANGEROUS_MODULES) or _in_module(f"{module}.{name}", _DANGEROUS_MODULES):
        return True
    head = name.split(".", 1)[0]
    names = _DANGEROUS_NAMES.get(module)
    if names is not None and (name in names or head in names):
        return True
    return head in _DANGEROUS_ANYWHERE or name.rsplit(".", 1)[-1] in _DANGEROUS_ANYWHERE


def _policy_verdict(module: str, name: str, policy: ScanPolicy) -> tuple[Severity, str] | None:
    """None when allowed; else (severity, reason).

    An exact entry of the built-in allowlist beats the denylist; a user's entries (``extra``) never
    do, exact or pattern: :func:`hfa.scan.policy.load_policy` refuses them, and a policy built in
    code that names one still gets the critical verdict.
    """
    full = f"{module}.{name}"
    bad = _bad_attribute(module, name, dotted_ok=full in policy.allow)
    if bad:
        return _SEV_CRIT, bad
    if full in policy.allow:
        return None
    if _denied(module, name):
        return _SEV_CRIT, "known to run code, touch files, the network, processes or the import machinery"
    if policy.allows(module, name):
        return None
    return _SEV_HIGH, "not in the allowlist; importing or calling it may run arbitrary code"


def _compat_pair(module: str, name: str) -> tuple[str, str]:
    """What a protocol 0-2 unpickler (fix_imports, the default) really imports for a Python 2 name."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[(module, name)]
        return mapped
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def classify_global(module: str, name: str, policy: ScanPolicy) -> tuple[Severity, str, str | None] | None:
    """Judge one global: None if allowed, else (severity, reason, the Python 3 name it maps to).

    Both the name as written and the name the compatibility mapping turns it into are judged,
    and the worse verdict wins; a Python 2-only module name that no Python 3 can import counts
    only through its mapping.
    """
    mapped = _compat_pair(module, name)
    candidates = [(module, name)]
    resolved = None
    if mapped != (module, name):
        resolved = f"{mapped[0]}.{mapped[1]}"
        top = module.split(".", 1)[0]
        py2_only = module in _compat_pickle.IMPORT_MAPPING and top not in _STDLIB and mapped[0] != module
        candidates = [mapped] if py2_only else [(module, name), mapped]
    worst: tuple[Severity, str] | None = None
    for mod, nm in candidates:
        v = _policy_verdict(mod, nm, policy)
        if v is not None and (worst is None or v[0] > worst[0]):
            worst = v
    return None if worst is None else (worst[0], worst[1], resolved)


def denied_entry(entry: str) -> bool:
    """Whether an allowlist entry (``module.Name``) names a global the denylist holds critical."""
    module, _, name = entry.rpartition(".")
    if not module:
        return False
    verdict = classify_global(module, name, ScanPolicy(allow=(), extra=()))
    return verdict is not None and verdict[0] >= _SEV_CRIT
