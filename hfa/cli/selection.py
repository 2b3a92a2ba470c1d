"""Selection options shared by `hfa pull`, `hfa info` and `hfa pin`.

Each command declares them with the aliases below and gathers their values in a
:class:`SelectionArgs`, which checks them and converts them into the resolver's
:class:`hfa.resolve.selection.SelectOptions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hfa.cli.selecting import SelectionArgs as SelectionArgs  # their home: free of typer
from hfa.cli.selecting import repo_and_options as repo_and_options

SEL = "Selection"

RepoTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--repo-type",
        help="model, dataset or space (default: model, or from a datasets/ or spaces/ prefix).",
        show_default=False,
    ),
]
FrameworkOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--framework",
        help="Weights to fetch: pt, safetensors, tf, flax, onnx, openvino, gguf (repeatable). Default: safetensors when"
        " present, else pickle (pt).",
        rich_help_panel=SEL,
        show_default=False,
    ),
]
QuantOpt = Annotated[
    str | None,
    typer.Option("--quant", help="GGUF repos: the one quantisation to fetch, e.g. Q4_K_M.", rich_help_panel=SEL),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option("--include", help="Also fetch files matching this glob (repeatable).", rich_help_panel=SEL),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Never fetch files matching this glob (repeatable; wins).", rich_help_panel=SEL),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Fetch every file (but --exclude).", rich_help_panel=SEL)]
ConfigOnlyOpt = Annotated[
    bool, typer.Option("--config-only", help="Only configs, tokenizer files and the README.", rich_help_panel=SEL)
]
SubfolderOpt = Annotated[
    str | None,
    typer.Option("--subfolder", help="Only files under this folder (diffusers components).", rich_help_panel=SEL),
]
VariantOpt = Annotated[
    str | None,
    typer.Option(
        "--variant",
        help="Weights variant to fetch instead of the plain files where one exists, e.g. fp16 (as from_pretrained's"
        " variant=). Default: the plain files.",
        rich_help_panel=SEL,
        show_default=False,
    ),
]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code", help="Also fetch the repo's *.py files (code a loader would run).", rich_help_panel=SEL
    ),
]


LockOpt = Annotated[
    Path,
    typer.Option("--lock", help="The lock file.", dir_okay=False, rich_help_panel="Lock"),
]
