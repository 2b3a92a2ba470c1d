"""Jobs: submit a JSON-lines batch now, collect its results later (``hfa infer --submit``, ``hfa jobs``).

A job is a folder ``$HF_HOME/hfa/jobs/ID/`` laid out after the batch-file model of the OpenAI
Batch API (docs/infer.md, "Jobs")::

    input.jsonl     the request lines, as given (written once, atomically)
    spec.json       task, model, parameters and run options (no token, no URL password)
    status.json     the status record, replaced atomically (temp file + rename) at each change
    output.jsonl    one line per answered request: {"index": N, "id": …, "result": …, …}
    errors.jsonl    one line per failed request:   {"index": N, "id": …, "error": "…"}
    worker.lock     held (flock) by the live worker; the kernel releases it when the worker dies
    worker.log      the worker's stdout and stderr
    cancel          present once the job was asked to stop

``index`` is the request's position among the input's non-blank lines (from 0): results are given
back in input order by merging the two files on it. Output lines are appended one at a time and
fsynced, so a worker killed with ``kill -9`` loses at most the line it was writing; a torn last
line is cut off when the job resumes, and the lines already answered are never asked again.

Every file is created with mode ``0o666`` less the umask (as ``open()`` gives), so another user's
tools can read a job; job ids (``job-`` and 24 hex digits) are random, and every id that comes from
outside is checked against :data:`JOB_ID_RE` before it becomes a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from hfa.errors import HfaError, LocalError, NotFound, UsageError

__all__ = [
    "JOB_ID_RE",
    "STATES",
    "TERMINAL",
    "JobStore",
    "check_job_id",
    "default_jobs_root",
    "new_job_id",
    "run_job",
]

JOB_ID_RE = re.compile(r"job-[0-9a-f]{24}")
STATES = ("queued", "running", "cancelling", "completed", "failed", "cancelled", "died")
TERMINAL = ("completed", "failed", "cancelled")
MAX_LINE_BYTES = 1 << 20  # a results line longer than this is refused when read back
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def default_jobs_root() -> Path:
    """``HFA_JOBS_DIR``, else ``$HF_HOME/hfa/jobs``."""
    from hfa.config import hf_home

    value = os.environ.get("HFA_JOBS_DIR", "").strip()
    if value:
        return Path(os.path.expandvars(os.path.expanduser(value)))
    return hf_home() / "hfa" / "jobs"


def new_job_id() -> str:
    """A fresh job id: ``job-`` and 96 random bits in hex, safe as a path component."""
    return f"job-{secrets.token_hex(12)}"


def check_job_id(value: str) -> str:
    """``value`` if it is a job id; a usage error otherwise (it never becomes a path unchecked)."""
    if not isinstance(value, str) or not JOB_ID_RE.fullmatch(value):
        shown = repr(value[:80]) if isinstance(value, str) else type(value).__name__
        raise UsageError(f"{shown} is not a job id (job- and 24 hex digits)", "list your jobs with `hfa jobs ls`")
    return value


class JobCancelled(HfaError):
    """Raised inside a worker for a request the job no longer wants."""


class JobStore:
    """The jobs under one folder: create, read, mark, and tell a live worker from a dead one."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_jobs_root()
        self._write_lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.root / check_job_id(job_id)

    def existing(self, job_id: str) -> Path:
        folder = self.folder(job_id)
        if not (folder / "status.json").is_file():
            raise NotFound(f"No job {job_id} in {self.root}", "list your jobs with `hfa jobs ls`")
        return folder

    # -- create ----------------------------------------------------------------------------------
    def create(self, lines: Iterable[str], spec: dict[str, Any]) -> str:
        """A new job holding ``lines`` and ``spec``, status ``queued``; its id."""
        from hfa.cache import atomic_write_bytes
        from hfa.infer.tasks import get_task

        if get_task(str(spec.get("task"))).binary_output:
            raise UsageError(
                f"{spec.get('task')} writes images, which a job does not keep yet",
                "run it as a batch: hfa infer text-to-image --jsonl FILE --output DIR",
            )

        texts = [line.rstrip("\r\n") for line in lines]
        total = sum(1 for line in texts if line.strip())
        job_id = new_job_id()
        folder = self.folder(job_id)
        try:
            folder.mkdir(parents=True, exist_ok=False)
            atomic_write_bytes(folder / "input.jsonl", "".join(t + "\n" for t in texts).encode("utf-8"))
            atomic_write_bytes(folder / "spec.json", _dumps(spec))
            self._write_status(
                folder,
                {
                    "id": job_id,
                    "status": "queued",
                    "task": spec.get("task"),
                    "model": spec.get("model"),
                    "created_at": time.time(),
                    "started_at": None,
                    "finished_at": None,
                    "pid": None,
                    "error": None,
                    "total": total,
                },
            )
        except OSError as exc:
            raise LocalError(f"Cannot write the job under {self.root}: {exc}", "check HFA_JOBS_DIR / HF_HOME") from None
        return job_id

    # -- read ----------------------------------------------------------------------------------
    def spec(self, job_id: str) -> dict[str, Any]:
        return _load_object(self.existing(job_id) / "spec.json")

    def record(self, job_id: str) -> dict[str, Any]:
        return _load_object(self.existing(job_id) / "status.json")

    def input_lines(self, job_id: str) -> list[str]:
        """The request lines as submitted (split on ``\n`` only: a U+2028 inside a JSON string is text)."""
        try:
            data = _read_regular(self.existing(job_id) / "input.jsonl").decode("utf-8")
        except (OSError, UnicodeDecodeError, HfaError) as exc:
            raise LocalError(f"Cannot read the input of job {job_id}: {exc}", "submit it again") from None
        return data.split("\n")[:-1] if data.endswith("\n") else data.split("\n") if data else []

    def ids(self) -> list[str]:
        """Every job id under the root, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if JOB_ID_RE.fullmatch(entry.name) and (entry / "status.json").is_file():
                try:
                    created = float(_load_object(entry / "status.json").get("created_at") or 0)
                except HfaError:
                    created = 0.0
                found.append((created, entry.name))
        return [name for _, name in sorted(found)]

    def lines(self, job_id: str, total: int | None = None) -> dict[int, dict[str, Any]]:
        """The answered lines (output and errors) by index; a torn or foreign line is ignored, as is
        one whose index is not one of the job's requests (``0 <= index < total``)."""
        folder = self.existing(job_id)
        if total is None:
            total = _total(self.record(job_id))
        done: dict[int, dict[str, Any]] = {}
        for name in ("output.jsonl", "errors.jsonl"):
            for doc in _read_lines(folder / name):
                index = doc.pop("index", None)
                if type(index) is int and 0 <= index < total and index not in done:
                    done[index] = doc
        return done

    def worker_alive(self, job_id: str) -> bool:
        return lock_held(self.existing(job_id) / "worker.lock")

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's status document: its record, with counts from its files and a dead worker named."""
        alive = self.worker_alive(job_id)  # first: a worker marks its job done before it lets go of the lock
        record = self.record(job_id)
        total = _total(record)
        done = self.lines(job_id, total)
        failed = sum(1 for line in done.values() if "error" in line)
        state = record.get("status") if record.get("status") in STATES else "failed"
        cancel = (self.existing(job_id) / "cancel").exists()
        message = None
        if state not in TERMINAL and not alive:
            if cancel:
                state = "cancelled"
                with contextlib.suppress(OSError, HfaError):  # a reader (another user) may not write it
                    self.mark(job_id, status="cancelled", finished_at=time.time())
            else:
                state = "died"
                message = f"worker died; finish the job with `hfa jobs resume {job_id}`"
        elif state in ("queued", "running") and cancel:
            state = "cancelling"
        return {
            "id": job_id,
            "status": state,
            "task": record.get("task"),
            "model": record.get("model"),
            "counts": {"total": total, "completed": len(done) - failed, "failed": failed},
            "created_at": record.get("created_at"),
            "started_at": record.get("started_at"),
            "finished_at": record.get("finished_at"),
            "pid": record.get("pid"),
            "worker_alive": alive,
            "error": record.get("error"),
            "message": message,
        }

    def statuses(self) -> list[dict[str, Any]]:
        """Every job's status, oldest first; a job whose files are unreadable says so as its status."""
        found = []
        for job_id in self.ids():
            try:
                found.append(self.status(job_id))
            except HfaError as exc:
                found.append(
                    {"id": job_id, "status": "unreadable", "task": None, "model": None,
                     "counts": {"total": 0, "completed": 0, "failed": 0}, "error": str(exc)}
                )  # fmt: skip
        return found

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """The answered lines in input order, as a batch prints them."""
        done = self.lines(job_id)
        return [done[i] for i in sorted(done)]

    # -- change ----------------------------------------------------------------------------------
    def mark(self, job_id: str, **fields: Any) -> None:
        """Update the status record (atomically: a temp file and a rename)."""
        folder = self.existing(job_id)
        with self._write_lock:
            record = _load_object(folder / "status.json")
            record.update(fields)
            self._write_status(folder, record)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop: requests not yet sent are not sent. Its status after asking."""
        from hfa.cache import atomic_write_bytes

        status = self.status(job_id)
        if status["status"] in TERMINAL:
            return status
        folder = self.existing(job_id)
        try:
            atomic_write_bytes(folder / "cancel", b"")
        except PermissionError:
            raise not_yours(folder, job_id, "cancel") from None
        return self.status(job_id)

    def cancelled(self, job_id: str) -> bool:
        return (self.folder(job_id) / "cancel").exists()

    def _write_status(self, folder: Path, record: dict[str, Any]) -> None:
        from hfa.cache import atomic_write_bytes

        atomic_write_bytes(folder / "status.json", _dumps(record))

    # -- the worker's side ---------------------------------------------------------------------------
    def take_lock(self, job_id: str) -> int | None:
        """Hold the job's worker lock: its descriptor, or None when a live worker holds it."""
        folder = self.existing(job_id)
        try:
            return acquire_lock(folder / "worker.lock")
        except PermissionError:
            raise not_yours(folder, job_id, "resume") from None


def not_yours(folder: Path, job_id: str, action: str) -> HfaError:
    """The error for ``action`` on a job another user owns: they may read it (its files are 0644), not change it."""
    from hfa.errors import AccessDenied

    try:
        owner = folder.stat().st_uid
    except OSError:
        owner = -1
    try:
        import pwd

        name = pwd.getpwuid(owner).pw_name
    except (ImportError, KeyError):
        name = f"uid {owner}"
    return AccessDenied(
        f"Job {job_id} belongs to {name}: you may read it, but not {action} it",
        f"ask {name} to run `hfa jobs {action} {job_id}` (or use your own HFA_JOBS_DIR)",
    )


# -- the worker lock (flock: the kernel releases it when its holder dies, even by kill -9) ----------
def acquire_lock(path: Path) -> int | None:
    """Open and lock ``path`` without waiting: the descriptor, or None when another holds it.

    The lock lives as long as the descriptor, in this process and any child it is passed to
    (``subprocess.Popen(pass_fds=…)``): a submitter takes it and hands it to the worker it starts,
    so there is never a moment when a job about to start looks dead.
    """
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def lock_held(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock."""
    import fcntl

    # Read-only: another user reads a job (its files are 0644) and can still tell a live worker
    # (flock works on any open descriptor); a lock file it cannot open at all says nothing alive.
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True  # the worker holds it (exclusively)
    finally:
        os.close(fd)  # closing the descriptor releases the lock
    return False


# -- running a job ---------------------------------------------------------------------------------
def run_job(
    store: JobStore,
    job_id: str,
    handle: Callable[[Any], Any],
    *,
    concurrency: int,
    parse: Callable[[list[str]], Iterator[Any]],
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Answer the job's lines not answered yet, ``concurrency`` at once, appending each to its file.

    ``parse`` turns the input lines into batch requests (:func:`hfa.infer.batch.parse_lines`);
    ``handle`` answers one (raising :class:`JobCancelled` leaves a line unanswered). ``stop()`` true
    ends the run early without finishing the job (a server stopping: it resumes when it starts again).
    The caller holds the worker lock. Returns the status.
    """
    from hfa.infer.batch import run_batch

    folder = store.existing(job_id)
    for name in ("output.jsonl", "errors.jsonl"):
        _cut_torn_tail(folder / name)
    done = set(store.lines(job_id))
    store.mark(job_id, status="running", started_at=time.time(), pid=os.getpid(), error=None, finished_at=None)
    order: deque[tuple[int, Any]] = deque()  # (index, request) in the order run_batch answers them
    skipped: set[int] = set()  # id() of requests the job no longer wanted when their turn came
    guard = threading.Lock()

    def pending() -> Iterator[Any]:
        for index, request in enumerate(parse(store.input_lines(job_id))):
            if index in done:
                continue
            if store.cancelled(job_id) or stop():
                return
            order.append((index, request))
            yield request

    def answer(request: Any) -> Any:
        try:
            if store.cancelled(job_id) or stop():
                raise JobCancelled("cancelled")
            return handle(request)
        except JobCancelled:  # not an answer: the line stays to be asked when the job resumes
            with guard:
                skipped.add(id(request))
            raise

    with _appender(folder / "output.jsonl") as out, _appender(folder / "errors.jsonl") as err:
        for line in run_batch(pending(), answer, concurrency=concurrency):
            index, request = order.popleft()
            with guard:
                if id(request) in skipped:
                    continue
            (err if "error" in line else out)(_dumps({"index": index, **line}))
    if store.cancelled(job_id):
        store.mark(job_id, status="cancelled", finished_at=time.time())
    elif not stop():
        store.mark(job_id, status="completed", finished_at=time.time())
    return store.status(job_id)


@contextlib.contextmanager
def _appender(path: Path) -> Iterator[Callable[[bytes], None]]:
    """Append whole lines to ``path``, each flushed to disk before the next (mode 0o666 less umask).
    A link or anything but a regular file there is refused: results are never written elsewhere."""
    try:
        fd = os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
            0o666,
        )
    except OSError as exc:
        raise LocalError(
            f"Cannot write {path}: {exc.strerror}", f"remove it; the job's folder is {path.parent}"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LocalError(f"{path} is not a regular file", f"remove it; the job's folder is {path.parent}")

    def write(data: bytes) -> None:
        os.write(fd, data)
        os.fsync(fd)

    try:
        yield write
    finally:
        os.close(fd)


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line left without its newline (a worker killed while writing it); reads only the tail."""
    try:
        fd = os.open(path, os.O_RDWR | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LocalError(
            f"Cannot open {path}: {exc.strerror}", f"remove it; the job's folder is {path.parent}"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LocalError(f"{path} is not a regular file", f"remove it; the job's folder is {path.parent}")
        end = size
        while end > 0:  # back from the end to the last newline, a block at a time
            start = max(0, end - 65536)
            block = os.pread(fd, end - start, start)
            if start + len(block) == size and block.endswith(b"\n"):
                return
            cut = block.rfind(b"\n")
            if cut >= 0:
                os.ftruncate(fd, start + cut + 1)
                return
            end = start
        if size:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _read_regular(path: Path) -> bytes:
    """All of ``path`` if it is a regular file (no link followed, a FIFO never waited on)."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fp:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LocalError(f"{path} is not a regular file", f"remove the job's folder {path.parent}")
        return fp.read()


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a results file, streamed; anything but a regular file (a link, a FIFO) reads
    as empty, a line over :data:`MAX_LINE_BYTES` or not JSON is skipped, the torn tail never read."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    with os.fdopen(fd, "rb") as fp:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        while True:
            raw = fp.readline(MAX_LINE_BYTES + 1)
            if not raw.endswith(b"\n"):
                if len(raw) <= MAX_LINE_BYTES:
                    return  # the end: nothing more, or a torn last line
                while raw and not raw.endswith(b"\n"):  # skip the rest of an over-long line
                    raw = fp.readline(MAX_LINE_BYTES + 1)
                continue
            try:
                doc = json.loads(raw)
            except (ValueError, RecursionError):
                continue  # not ours
            if isinstance(doc, dict):
                yield doc


def _total(record: dict[str, Any]) -> int:
    total = record.get("total")
    return total if type(total) is int and total >= 0 else 0


def _load_object(path: Path) -> dict[str, Any]:
    from hfa.config import read_small_file

    if path.is_symlink():  # a record is never a link: it would be read (and trusted) from elsewhere
        raise LocalError(f"{path} is a link, not a job record", f"remove the job's folder {path.parent}")
    try:
        doc = json.loads(read_small_file(path, 1 << 20, "job file"))
    except FileNotFoundError:
        raise NotFound(f"{path} is missing", f"the job's folder {path.parent} is incomplete: remove it") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise LocalError(f"{path} is not a job record", f"remove the job's folder {path.parent}")
    return doc


def _dumps(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8")
