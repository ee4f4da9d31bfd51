"""What every ``juryflow`` command shares: user errors as one line, ``--debug``, the settings file.

A user's mistake (``UserError``, ``SettingsError``, a bad recipe) prints one red line on stderr
and exits 2; a bug keeps its traceback. ``--debug`` (or ``JURYFLOW_DEBUG=1``) shows the traceback
for user errors too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from labeling.errors import UserError
from labeling.settings import SettingsError

DEMO_CONFIG = Path("juryflow-demo") / "juryflow.yaml"
# Raised by models/ (imported only by the commands that train): matched by module and name, so
# that this module does not import the training stack just to name its errors.
_MODEL_USER_ERRORS = {("models.training.config", "RecipeError"), ("models.training.data", "SnapshotError")}


def is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, (UserError, SettingsError)):
        return True
    return any((cls.__module__, cls.__name__) in _MODEL_USER_ERRORS for cls in type(exc).__mro__)


def one_line(exc: BaseException) -> str:
    """The message on one line: a multi-line message (settings list each problem) joins with '; '."""
    lines = [line.strip().lstrip("- ").strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    head, rest = lines[0], lines[1:]
    return f"{head} {'; '.join(rest)}" if head.endswith(":") and rest else "; ".join(lines)


def fail(message: str) -> typer.Exit:
    """Print a user-facing error line and return the exit to raise: ``raise fail("...")``."""
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(2)


def debug_requested(ctx: typer.Context | None = None) -> bool:
    root = ctx.find_root() if ctx is not None else None
    from_env = os.environ.get("JURYFLOW_DEBUG", "").lower() in ("1", "true", "yes")
    return from_env or bool(root and root.params.get("debug"))


class UserErrorGroup(TyperGroup):
    """The root command group: turns user errors from any subcommand into one line and exit 2."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not is_user_error(exc) or debug_requested(ctx):
                raise
            raise fail(one_line(exc)) from None


def use_demo_config_by_default() -> Path | None:
    """Without $JURYFLOW_CONFIG and ./juryflow.yaml, commands use the demo's settings if a demo ran here.

    So the quickstart lines after ``juryflow demo`` (``juryflow status``, the harvest flow) see
    the demo's store without extra setup. Returns the file chosen, or None.
    """
    if os.environ.get("JURYFLOW_CONFIG") or Path("juryflow.yaml").exists() or not DEMO_CONFIG.is_file():
        return None
    os.environ["JURYFLOW_CONFIG"] = str(DEMO_CONFIG)
    _chosen_by_default.append(DEMO_CONFIG)
    return DEMO_CONFIG


_chosen_by_default: list[Path] = []


def drop_demo_default() -> None:
    """Back to ./juryflow.yaml: for commands that create the user's own settings (``labelstudio up``)."""
    if _chosen_by_default and os.environ.get("JURYFLOW_CONFIG") == str(_chosen_by_default[-1]):
        del os.environ["JURYFLOW_CONFIG"]
        _chosen_by_default.clear()


def note_demo_config(chosen: Path | None) -> None:
    if chosen is not None:
        typer.secho(f"using the demo's settings {chosen} (no ./juryflow.yaml; set JURYFLOW_CONFIG to choose)",
                    dim=True, err=True)


def exit_on_user_error(main) -> None:
    """For ``python -m flows.<name>``: run ``main()``, turning a user error into one line and exit 2."""
    try:
        main()
    except Exception as exc:
        if not is_user_error(exc) or debug_requested() or "--debug" in sys.argv:
            raise
        typer.secho(f"error: {one_line(exc)}", fg="red", err=True)
        sys.exit(2)
