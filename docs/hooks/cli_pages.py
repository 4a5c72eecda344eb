"""Generates the command-line reference from the Typer app when the site
is built: ``cli/index.md`` lists every command, and ``cli/<command>.md``
(``cli/dlq-list.md`` for a sub-command) gives its usage, what it does and
each argument and option, as ``conveyor <command> --help`` says them."""

from __future__ import annotations

import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from typer.main import get_command

from conveyor.cli.main import app

# Typer carries a click of its own, so commands are known by what they
# have (``commands`` for a group), not by their class.
Command = Any


def commands(group: Command, prefix: str = "") -> list[tuple[str, Command]]:
    """Every command and sub-command of ``group``, by its full name."""
    found: list[tuple[str, Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append((f"{prefix}{name}", command))
        if hasattr(command, "commands"):
            found.extend(commands(command, f"{prefix}{name} "))
    return found


def context(command: Command, name: str, parent: Any = None) -> Any:
    return command.context_class(command, info_name=name, parent=parent)


def slug(name: str) -> str:
    return name.replace(" ", "-")


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def params_table(ctx: Any, params: list[Any]) -> list[str]:
    rows = []
    for param in params:
        record = param.get_help_record(ctx)
        if record is None or getattr(param, "hidden", False):
            continue
        names, text = record
        rows.append(f"| `{cell(names)}` | {cell(text)} |")
    if not rows:
        return []
    return ["| argument or option | what it does |", "|---|---|", *rows, ""]


def page(root: Command, name: str, command: Command) -> str:
    ctx = context(command, name, context(root, "conveyor"))
    pieces = " ".join(command.collect_usage_pieces(ctx))
    usage = f"conveyor {name} " + re.sub(r"\{(\w+)\}", lambda m: m[1].upper(), pieces)
    lines = [f"# conveyor {name}", "", "```text", usage, "```", "", (command.help or "").strip(), ""]
    if hasattr(command, "commands"):
        lines += ["| command | what it does |", "|---|---|"]
        for sub, subcommand in commands(command, f"{name} "):
            lines.append(
                f"| [`conveyor {sub}`]({slug(sub)}.md) | {cell(subcommand.get_short_help_str(200))} |"
            )
        lines.append("")
    lines += params_table(ctx, command.params)
    lines += ["Every command also takes `--redis-url` (see [the command line](index.md)).", ""]
    return "\n".join(lines)


def index(root: Command) -> str:
    ctx = context(root, "conveyor")
    lines = [
        "# The command line",
        "",
        "`conveyor` is installed with the package (`python -m conveyor` is the same command line).",
        "Every command names its Redis with `--redis-url`, anywhere on the line; without it,",
        "`REDIS_URL` or `REDIS_HOST`, `REDIS_PORT`... (see [connections](../guides/connections.md)),",
        "and a command that falls back to `127.0.0.1:6379` says so on stderr. A command that cannot",
        "do what it was asked prints one line naming the reason and exits 1. Every inspection",
        "command takes `--json` (times in ISO 8601, UTC, as in the HTTP API); long cleans,",
        "replays and obliterations show a progress bar, and the ones that delete ask first",
        "(`--yes` skips the question).",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name, command in commands(root):
        lines.append(f"| [`conveyor {name}`]({slug(name)}.md) | {cell(command.get_short_help_str(200))} |")
    lines.append("")
    lines += ["## Options of every command", ""]
    lines += params_table(ctx, root.params)
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    root = get_command(app)
    files.append(File.generated(config, "cli/index.md", content=index(root)))
    for name, command in commands(root):
        files.append(File.generated(config, f"cli/{slug(name)}.md", content=page(root, name, command)))
    return files
