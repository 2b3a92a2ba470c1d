"""The providers' limits and cooldowns, shared by every hfa process of the user on this machine.

Where: ``$HFA_INFER_STATE``, else ``$HF_HOME/hfa/infer-state/``:

* ``limits.sqlite`` — pyrate-limiter's SQLite buckets (one table per provider and measure), opened
  with its file lock (``limits.sqlite.lock``), so two processes counting against ``5/minute`` send 5
  in total. Requests are counted before they are sent (a loading poll is a request); input
  characters (``chars_per_month``, a sliding 30 days) once per request and provider.
* ``cooldowns.json`` — per provider: until when it is cooled down or held, why, and how many times
  in a row it failed. Written through a temporary file and a rename under ``cooldowns.json.lock``.

Providers are keyed by their ``name`` in ``hfa.toml``: give the same account the same name
everywhere, and two projects share its limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfa.config import hf_home
from hfa.errors import LocalError, UsageError
from hfa.infer.providers import ProviderSpec, RateSpec

__all__ = ["COOLDOWN_BASE", "COOLDOWN_MAX", "Cooldown", "Refusal", "StateStore", "default_state_root"]

COOLDOWN_BASE = 30.0  # seconds after the first failure; doubles with each failure in a row
COOLDOWN_MAX = 3600.0
QUOTA_COOLDOWN = 3600.0  # a provider that says its quota is used up is not asked again for an hour
ASKED_MAX = 86400.0  # the longest a provider's own Retry-After or RateLimit-Reset may hold it: a day
_STATE_LIMIT = 1024 * 1024
_LOCK_TIMEOUT = 30.0


def default_state_root() -> Path:
    value = os.environ.get("HFA_INFER_STATE", "").strip()
    if value:
        return Path(os.path.expandvars(os.path.expanduser(value)))
    return hf_home() / "hfa" / "infer-state"


def clock_time(at: float) -> str:
    """``at`` (seconds since the epoch) as local HH:MM:SS (with the date when it is not within a day)."""
    try:
        local = time.localtime(at)
    except (OverflowError, ValueError, OSError):  # a state file may hold anything
        return "a time out of range"
    return time.strftime("%H:%M:%S" if abs(at - time.time()) < 86400 else "%Y-%m-%d %H:%M:%S", local)


def _unwritable(exc: BaseException) -> bool:
    """Whether ``exc`` says the state store may not be written here (another user's, read-only)."""
    import errno
    import sqlite3

    if isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    ):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text)


@dataclass(frozen=True)
class Refusal:
    """hfa's own limiter said no: which limit, and when the next request fits (None: never)."""

    provider: str
    limit: RateSpec
    measure: str  # "requests" or "characters"
    free_at: float | None

    @property
    def message(self) -> str:
        unit = "requests" if self.measure == "requests" else "input characters"
        head = f"provider '{self.provider}' allows {self.limit.limit} {unit} per {self.limit.period}"
        if self.free_at is None:
            return f"{head}; this request alone is larger"
        return f"{head}; the next is free at {clock_time(self.free_at)}"


@dataclass(frozen=True)
class Cooldown:
    until: float
    reason: str
    failures: int
    held: bool = False  # a hold from the provider's own RateLimit headers, not a failure

    def to_json(self) -> dict[str, Any]:
        return {"until": self.until, "reason": self.reason, "failures": self.failures, "held": self.held}


def _ms(seconds: int) -> int:
    return seconds * 1000


def _until(entry: Any) -> float:
    """An entry's ``until`` as a number (0 when the file holds something else; at most a day ahead, as
    nothing hfa writes is further: a state file cannot shut a provider off for good)."""
    try:
        until = float(entry.get("until", 0) or 0) if isinstance(entry, dict) else 0.0
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if until != until:  # NaN
        return 0.0
    return min(until, time.time() + ASKED_MAX + COOLDOWN_MAX)


def _store_error(path: Path, exc: Exception) -> LocalError:
    return LocalError(
        f"The limits store {path} cannot be used ({type(exc).__name__}: {exc})",
        f"delete {path} (its counts start again) or set HFA_INFER_STATE to another folder",
    )


class StateStore:
    """Limits (pyrate-limiter over SQLite) and cooldowns (a JSON file) under one directory."""

    def __init__(self, root: Path | None = None, on_warning: Any = None) -> None:
        """``on_warning(text)``: told once when the store may not be written here (another user's, or
        read-only); hfa then goes on without counting limits and keeps cooldowns in memory."""
        self.root = root if root is not None else default_state_root()
        self.db_path = self.root / "limits.sqlite"
        self.cooldown_path = self.root / "cooldowns.json"
        self.on_warning = on_warning
        self.degraded: str | None = None  # why the store is not written (None: it is)
        self._off: set[str] = set()  # "limits", "cooldowns": not kept on disk in this process
        self._memory: dict[str, dict[str, Any]] = {}  # cooldowns that could not be written
        self._buckets: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _degrade(self, path: Path, exc: BaseException) -> None:
        """``path`` (the limits or the cooldowns) may not be written here: say so once, then go on without it."""
        what = "limits" if path == self.db_path else "cooldowns"
        if what in self._off:
            return
        self._off.add(what)
        reason = getattr(exc, "strerror", None) or str(exc)
        self.degraded = self.degraded or f"{path}: {reason}"
        effect = "limits are not counted" if what == "limits" else "cooldowns last only this run"
        if self.on_warning is not None:
            self.on_warning(
                f"{path} may not be written ({reason}): {effect}; set HFA_INFER_STATE to a folder of your own"
            )

    # -- limits ---------------------------------------------------------------------------------
    def _bucket(self, spec: ProviderSpec, measure: str) -> Any:
        rates = spec.rates if measure == "requests" else (RateSpec(spec.chars_per_month or 1, "month"),)
        key = (spec.name, measure)
        signature = tuple((r.limit, r.seconds) for r in rates)
        cached = self._buckets.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        from pyrate_limiter import Rate, SQLiteBucket

        self._mkdir()
        if self.db_path.is_symlink():  # SQLite would open (and write) whatever it points to
            raise LocalError(
                f"The limits store {self.db_path} is a symbolic link; hfa does not follow it",
                f"delete {self.db_path} (its counts start again) or set HFA_INFER_STATE to another folder",
            )
        table = "hfa_" + hashlib.sha256(f"{spec.name}\0{measure}".encode()).hexdigest()[:24]
        try:
            bucket = SQLiteBucket.init_from_file(
                [Rate(r.limit, _ms(r.seconds)) for r in rates],
                table=table,
                db_path=str(self.db_path),
                use_file_lock=True,
            )
        except (ValueError, AssertionError) as exc:
            raise UsageError(
                f"provider '{spec.name}': its rates do not fit together ({exc})",
                "list each period once; a longer period needs a larger, proportionally tighter limit",
            ) from None
        except Exception as exc:  # sqlite3.Error, OSError, a lock timeout: the store, not the request
            if _unwritable(exc):
                raise _Unwritable(exc) from None
            raise _store_error(self.db_path, exc) from None
        self._buckets[key] = (signature, bucket)
        return bucket

    def acquire(self, spec: ProviderSpec, chars: int | None = None) -> Refusal | None:
        """Count one request (and ``chars`` input characters) for ``spec``; a Refusal when a limit is reached."""
        from pyrate_limiter import RateItem

        measures = [("requests", 1)] if spec.rates else []
        if spec.chars_per_month and chars:
            measures.append(("characters", chars))
        import sqlite3

        if "limits" in self._off:
            return None
        with self._lock:
            for measure, weight in measures:
                try:
                    bucket = self._bucket(spec, measure)
                    now = bucket.now()
                    with contextlib.suppress(Exception):
                        bucket.leak(now)
                    decision = bucket.put_decision(RateItem(spec.name, now, weight))
                except _Unwritable as exc:
                    self._degrade(self.db_path, exc.cause)
                    return None
                except (sqlite3.Error, OSError) as exc:
                    if _unwritable(exc):
                        self._degrade(self.db_path, exc)
                        return None
                    raise _store_error(self.db_path, exc) from None
                if not decision.allowed:
                    failing = decision.failing_rate
                    limit = next(
                        (r for r in self._rates(spec, measure) if _ms(r.seconds) == failing.interval),
                        self._rates(spec, measure)[0],
                    )
                    free_at = None if decision.retry_after_ms is None else time.time() + decision.retry_after_ms / 1000
                    return Refusal(spec.name, limit, measure, free_at)
        return None

    @staticmethod
    def _rates(spec: ProviderSpec, measure: str) -> tuple[RateSpec, ...]:
        return spec.rates if measure == "requests" else (RateSpec(spec.chars_per_month or 1, "month"),)

    def usage(self, spec: ProviderSpec) -> list[dict[str, Any]]:
        """Per limit of ``spec``: used and left in its window now, and when the next one is free."""
        rows: list[dict[str, Any]] = []
        for measure in ("requests", "characters"):
            if (measure == "requests" and not spec.rates) or (measure == "characters" and not spec.chars_per_month):
                continue
            import sqlite3

            try:
                bucket = self._bucket(spec, measure)
            except _Unwritable as exc:
                self._degrade(self.db_path, exc.cause)
                return []
            now = bucket.now()
            for rate in self._rates(spec, measure):
                start = now - _ms(rate.seconds)
                try:
                    with self._lock, bucket.lock:
                        cur = bucket.conn.execute(
                            f'SELECT COUNT(*), MIN(item_timestamp) FROM "{bucket.table}" WHERE item_timestamp >= ?',
                            (start,),
                        )
                        used, oldest = cur.fetchone()
                        cur.close()
                except (sqlite3.Error, OSError) as exc:
                    if _unwritable(exc):
                        self._degrade(self.db_path, exc)
                        return []
                    raise _store_error(self.db_path, exc) from None
                left = max(0, rate.limit - used)
                rows.append(
                    {
                        "measure": measure,
                        "limit": rate.limit,
                        "period": rate.period,
                        "used": used,
                        "left": left,
                        "next_free_at": (oldest + _ms(rate.seconds)) / 1000 if not left and oldest else None,
                    }
                )
        return rows

    # -- cooldowns ------------------------------------------------------------------------------
    def _mkdir(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if _unwritable(exc):
                raise _Unwritable(exc) from None
            raise LocalError(
                f"Cannot create {self.root}: {exc.strerror}", "set HFA_INFER_STATE to a writable folder"
            ) from None

    def _read(self) -> dict[str, dict[str, Any]]:
        from hfa.config import read_small_file

        try:
            doc = json.loads(read_small_file(self.cooldown_path, _STATE_LIMIT, "cooldown state"))
        except (OSError, ValueError, UnicodeDecodeError):
            return {}  # missing or unreadable: no cooldowns (it only costs a request)
        except Exception:  # a refused file (too big, not regular) is treated the same way
            return {}
        providers = doc.get("providers") if isinstance(doc, dict) else None
        return {k: v for k, v in providers.items() if isinstance(v, dict)} if isinstance(providers, dict) else {}

    def cooldowns(self) -> dict[str, Cooldown]:
        out: dict[str, Cooldown] = {}
        for name, raw in {**self._read(), **self._memory}.items():
            try:
                out[name] = Cooldown(_until(raw), str(raw["reason"])[:300], int(raw["failures"]), bool(raw.get("held")))
            except (KeyError, TypeError, ValueError, OverflowError):
                continue
        return out

    def cooldown(self, name: str, now: float | None = None) -> Cooldown | None:
        """The cooldown of ``name`` still running at ``now``, or None."""
        found = self.cooldowns().get(name)
        return found if found is not None and found.until > (now if now is not None else time.time()) else None

    def _update(self, name: str, change: Any) -> Cooldown | None:
        from filelock import FileLock, Timeout

        from hfa.cache.layout import atomic_write_text

        new: dict[str, Any] | None = None
        try:
            if "cooldowns" in self._off:
                raise _Unwritable(PermissionError(self.degraded))
            self._mkdir()
            with FileLock(str(self.cooldown_path) + ".lock", timeout=_LOCK_TIMEOUT):
                entries = self._read()
                new = change(entries.get(name))
                if new is None:
                    self._memory.pop(name, None)
                    if name not in entries:
                        return None
                    entries.pop(name)
                else:
                    entries[name] = new
                now = time.time()
                entries = {k: v for k, v in entries.items() if _until(v) > now - 86400}
                atomic_write_text(self.cooldown_path, json.dumps({"version": 1, "providers": entries}, sort_keys=True))
        except Timeout:
            raise LocalError(f"{self.cooldown_path} stayed locked", "another hfa holds it; retry") from None
        except (_Unwritable, OSError, LocalError) as exc:
            # Cooldowns only spare requests: any failure to keep them (another user's folder, a link
            # where the lock goes, a folder named cooldowns.json) costs a warning, never the request.
            cause = exc.cause if isinstance(exc, _Unwritable) else exc
            self._degrade(self.cooldown_path, cause)  # kept in memory: this run still honours it
            new = change(self._memory.get(name) or self._read().get(name))
            if new is None:
                self._memory.pop(name, None)
            else:
                self._memory[name] = new
        return None if new is None else Cooldown(new["until"], new["reason"], new["failures"], new.get("held", False))

    def cool(self, name: str, reason: str, at_least: float | None = None, *, base: float = COOLDOWN_BASE) -> Cooldown:
        """Cool ``name`` down after a failure: ``base`` doubling with each failure in a row, at most an hour,
        and never less than ``at_least`` (the provider's ``Retry-After``)."""

        def change(old: dict[str, Any] | None) -> dict[str, Any]:
            count = old.get("failures", 0) if old and not old.get("held") else 0
            failures = min(count if isinstance(count, int) and count >= 0 else 0, 64) + 1
            asked = min(at_least, ASKED_MAX) if at_least is not None and at_least == at_least else 0.0
            span = max(min(base * 2 ** (failures - 1), COOLDOWN_MAX), asked)
            until = max(time.time() + span, _until(old))  # never shortens a hold
            return {"until": until, "reason": reason, "failures": failures, "held": False}

        cooled = self._update(name, change)
        assert cooled is not None
        return cooled

    def hold(self, name: str, until: float, reason: str) -> None:
        """The provider's own headers say it has no requests left until ``until``: tighten the local view."""

        def change(old: dict[str, Any] | None) -> dict[str, Any] | None:
            if old and _until(old) >= until:
                return old
            failures = (old or {}).get("failures", 0)
            return {
                "until": until,
                "reason": reason,
                "failures": failures if isinstance(failures, int) else 0,
                "held": True,
            }

        self._update(name, change)

    def clear(self, name: str) -> None:
        """``name`` answered: forget its failures."""
        if name in self._read() or name in self._memory:
            self._update(name, lambda old: None)


class _Unwritable(Exception):
    """The store may not be written here (handled inside :class:`StateStore`)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
