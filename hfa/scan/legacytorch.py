"""Legacy ``torch.save`` files (``_use_new_zipfile_serialization=False``): five stacked pickles,
then the raw storages, checked against what the model pickle declares so nothing hides after them.
"""

from __future__ import annotations

from hfa.scan.model import Severity
from hfa.scan.pickles import KEEP_ITEMS_LARGE, Global, ListValue, PickleReport, probe_pickle

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from hfa.scan.archive import FileScan

# Element sizes of the storage classes a legacy torch file names in its persistent ids.
STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}


def scan_legacy_torch(fp: BinaryIO, display: str, out: FileScan, start: int, end: int | None, stream: bool) -> None:
    """Pickles 2-4 (protocol, sys info, model), pickle 5 (storage keys), then raw storages."""
    body = out.pickles(
        fp,
        display,
        start=start,
        end=end,
        max_pickles=3,
        first_index=1,
        collect=True,
        stream=stream,
        continuation=True,
        legacy_torch=True,
    )
    if not body.complete:
        return
    if body.pickles < 3:
        _unexpected(out, display, f"a legacy torch file that ends after {1 + body.pickles} of its 5 pickles")
        return
    keys = out.pickles(
        fp,
        display,
        start=body.end,
        end=end,
        max_pickles=1,
        first_index=4,
        collect=True,
        keep_items=KEEP_ITEMS_LARGE,
        stream=stream,
        continuation=True,
    )
    if not keys.complete:
        return
    if keys.pickles < 1:
        _unexpected(out, display, "a legacy torch file without its storage-keys pickle")
        return
    _check_legacy_storages(fp, display, out, body, keys, end, stream)


def _unexpected(out: FileScan, display: str, message: str, **detail: Any) -> None:
    out.add(Severity.MEDIUM, "archive.unexpected-data", message, display, **detail)


def _check_legacy_storages(
    fp: BinaryIO, display: str, out: FileScan, body: PickleReport, keys: PickleReport, end: int | None, stream: bool
) -> None:
    """The raw data must be exactly: for each storage key, an int64 count then count elements."""
    sizes: dict[str, tuple[int, int]] = {}
    for pid in body.storage_ids:
        if len(pid) < 5 or not isinstance(pid[1], Global) or not isinstance(pid[2], str):
            continue
        element = STORAGE_ELEMENT_SIZE.get(pid[1].name) if pid[1].module == "torch" else None
        numel = pid[4]
        if element is None or type(numel) is not int:
            _unexpected(out, display, f"storage {pid[2]!r} has a type or size the scanner cannot check")
            return
        sizes.setdefault(pid[2], (numel, element))  # the first reference creates the storage
    listed = keys.stop_values[0] if keys.stop_values else None
    if not isinstance(listed, ListValue) or listed.overflow or not all(isinstance(k, str) for k in listed.items):
        _unexpected(out, display, "the storage-keys pickle is not a list of keys")
        return
    pos = keys.end
    for key in listed.items:
        if key not in sizes:
            _unexpected(out, display, f"storage key {key!r} is not declared by the model pickle")
            return
        numel, element = sizes[key]
        fp.seek(pos)
        raw = fp.read(8)
        if len(raw) < 8 or int.from_bytes(raw, "little", signed=True) != numel:
            _unexpected(out, display, f"storage {key!r} does not start with its element count", offset=pos)
            return
        pos += 8 + numel * element
        if end is not None and pos > end:
            _unexpected(out, display, f"storage {key!r} runs past the end of the file", offset=pos)
            return
    fp.seek(pos)
    if (end is not None and pos >= end) or not fp.read(1):
        return
    size = f"{end - pos} bytes" if end is not None else "data"
    _unexpected(out, display, f"{size} after the last storage of a legacy torch file", offset=pos)
    if probe_pickle(fp, pos, end, stream=stream):  # torch never reads it, but something else might
        out.pickles(fp, display, start=pos, end=end, first_index=5, stream=stream)
