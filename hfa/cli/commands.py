"""The table of hfa's commands, free of typer: which function each command is, and its summary.

Read on every start: by hfa.cli.app, which mounts the commands on typer, and by
hfa.cli.plainhelp, which prints ``hfa --help`` without typer. So it imports nothing.

A command's summary (the first paragraph of its help, the line ``hfa --help`` lists) lives here,
and only here; its function's docstring holds the rest of its help, which
hfa.cli.app joins to the summary when it mounts the command (:func:`command_help`).
"""

from __future__ import annotations


class Group:
    """A command with subcommands: ``{subcommand: function}`` of one module.

    A plain class: every hfa start reads this table, and a dataclass costs ~0.15 ms to build.
    """

    __slots__ = ("commands",)

    def __init__(self, commands: dict[str, str]) -> None:
        self.commands = commands


# Commands that run another command: options after its first argument are that command's
# (`hfa offline run python -c 1`), as `uv run` and `env` take them; hfa's own go before it.
PASS_THROUGH: frozenset[tuple[str, str]] = frozenset({("offline", "run")})

APP_HELP = "Manage Hugging Face Hub assets like packages: find, pin, pull exactly what is needed, verify, work offline."
VERSION_HELP = "Print hfa's version and exit."

# command -> (module under hfa.cli, its function or Group); help lists them in this order (typer
# lists the groups after the plain commands).
COMMANDS: dict[str, tuple[str, str | Group]] = {
    "search": ("search", "search"),
    "info": ("info", "info"),
    "pin": ("pin", "pin"),
    "pull": ("pull", "pull"),
    "push": ("push", "push"),
    "scan": ("scan", "scan"),
    "verify": ("scan", "verify"),
    "export": ("bundle", "export"),
    "import": ("bundle", "import_"),
    "serve": ("serve", "serve"),
    "cache": ("cache", Group({"ls": "ls", "clear-results": "clear_results", "rm": "rm", "prune": "prune", "gc": "gc"})),
    "policy": ("policy", Group({"check": "check"})),
    "offline": ("offline", Group({"status": "status", "env": "env", "run": "run"})),
    "infer": ("infer", "infer"),
    "jobs": (
        "jobs",
        Group(
            {
                "ls": "ls",
                "status": "status",
                "wait": "wait",
                "results": "results",
                "cancel": "cancel",
                "resume": "resume",
            }
        ),
    ),
}

# command -> the first paragraph of its help (rich markup: `\\[` is a literal bracket).
SUMMARIES: dict[str, str] = {
    "search": "Find models, datasets or spaces by text, author, task, library, licence, language, tags and gating.",
    "info": "Show what a repo holds: its commit, card facts, files with risk flags, and what pull would take.",
    "pin": "Pin repos to exact commits in hfa.lock, with every selected file's size and hash.",
    "pull": "Fetch only the files a model needs, verifying every byte, into the huggingface_hub cache.",
    "push": "Upload repositories from the cache to an S3-compatible bucket, for `hfa pull --from` without the Hub.",
    "scan": "Scan content for pickle dangers, Git-LFS stubs, bad safetensors headers and remote code.",
    "verify": "Prove a cache, a repo, a lock's files or a folder sound, offline: hashes, links, stubs, and the scan.",
    "export": "Export what a lock (or REPO\\[@REV]…) names from the cache as one verified tar, each blob once.",
    "import": "Import a bundle into the cache with no network, or adopt a model folder or git clone (DIR --repo org/name).",
    "serve": "Serve a huggingface_hub cache as a read-only Hub endpoint (set HF_ENDPOINT to the printed URL).",
    "cache": "Inspect and clean the cache: ls, rm, prune, gc, clear-results (each removal with --dry-run).",
    "policy": "Check the lock against the \\[policy] of hfa.toml (licences, pickles, remote code, gated, size, sources).",
    "offline": "Work without a network: status (is the lock's content here and sound), env, run.",
    "jobs": "Batches submitted with `hfa infer --jsonl FILE --submit`: ls, status, wait, results, cancel, resume.",
    "infer": "Run a model on an input: one request, a JSONL batch (--jsonl), or a --selftest.",
}


def listed() -> list[str]:
    """The commands in the order typer lists them: the plain commands, then the groups."""
    return [n for n, (_, t) in COMMANDS.items() if not isinstance(t, Group)] + [
        n for n, (_, t) in COMMANDS.items() if isinstance(t, Group)
    ]
