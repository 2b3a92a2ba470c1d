"""``hfa policy check``: judge every entry of the lock against the ``[policy]`` of hfa.toml, offline."""

from pathlib import Path
from typing import Annotated

import typer

from hfa.cli.options import CacheDirOpt, Ctx, JsonOpt, QuietOpt, VerboseOpt, guarded
from hfa.cli.selection import LockOpt


def check(
    lock: LockOpt = Path("hfa.lock"),
    sarif: Annotated[
        Path | None,
        typer.Option(
            "--sarif", help="Also write the findings as SARIF 2.1.0 to this file.", dir_okay=False, show_default=False
        ),
    ] = None,
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Check the lock's repos and task defaults against the \\[policy] of hfa.toml beside it; exit 1 on a violation.

    Licences, pickle files, remote code, gating, size and sources, judged from what the lock
    records (and, for `pickle = "scan"`, the cached files); no network. Exceptions with their
    reasons are shown, and clear what they allow. See docs/policy.md.
    """
    ctx = Ctx.from_options(cache_dir=cache_dir, json_output=json_output, quiet=quiet, verbose=verbose)
    with guarded(ctx.out):
        from hfa import __version__
        from hfa.config import LOCK_FILE_LIMIT, read_small_file
        from hfa.errors import CheckFailed, UsageError
        from hfa.lock import lockfile
        from hfa.policy import check_entries, findings, load_policy
        from hfa.scan.report import Locator, human_lines, write_sarif

        policy = load_policy(lock)
        if not policy.declared:
            where = policy.origin if policy.origin != "hfa.toml" else f"{Path(lock).resolve().parent / 'hfa.toml'}"
            raise UsageError(
                f"No [policy] table for {lock}: nothing to check ({where} has none)",
                'add one to hfa.toml beside the lock, e.g. [policy.licenses] deny = ["cc-by-nc-4.0"] (docs/policy.md)',
            )
        locked = lockfile.read(lock)
        violations = check_entries(
            policy, locked.repos, cache_dir=ctx.settings.cache_dir, strict=True, tasks=locked.tasks
        )
        found = findings(violations)
        locked_keys = {(e.repo_type, e.repo_id.lower()) for e in locked.repos}
        locked_keys |= {("model", t.repo_id.lower()) for t in locked.tasks}
        unused = [x for x in policy.exceptions if (x.repo_type, x.repo_id.lower()) not in locked_keys]
        for x in unused:  # as cargo-deny does: an exception for a repo no longer locked is stale
            ctx.out.warn(
                f"exception for {x.display} is unused: {lock} does not lock it; remove it from {policy.origin}"
            )
        failing = [v for v in violations if not v.cleared]
        if sarif is not None:
            text = read_small_file(lock, LOCK_FILE_LIMIT, "lock file", "--lock").decode("utf-8")
            entries = [(e.repo_type, e.repo_id, e.commit) for e in locked.repos]
            write_sarif(sarif, found, __version__, Locator().with_lock(lock, text, entries), category="hfa-policy")
        doc = {
            "lock": str(lock),
            "policy": policy.origin,
            "repos": len(locked.repos),
            "tasks": len(locked.tasks),
            "passed": not failing,
            "violations": [v.to_json() for v in violations],
            "findings": [f.to_json() for f in found],
            "unused_exceptions": [x.display for x in unused],
        }
        out = ctx.out

        def human() -> None:
            for line in human_lines(found):
                out.line(line)
            cleared = len(violations) - len(failing)
            tail = f", {cleared} allowed by exception" if cleared else ""
            defaults = f" and {len(locked.tasks)} task default(s)" if locked.tasks else ""
            summary = (
                f"Checked {len(locked.repos)} repo(s){defaults} of {lock} against {policy.origin}:"
                f" {len(failing)} violation(s){tail}."
            )
            if failing:
                out.info(summary)
            else:
                out.success(summary)

        out.result(doc, human)
        if failing:
            raise CheckFailed(
                f"{len(failing)} policy violation(s) in {lock}",
                "replace or re-pin those repos, or add exceptions with reasons (docs/policy.md)"
                + (f"; SARIF in {sarif}" if sarif else ""),
            )
