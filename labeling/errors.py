"""Errors a user can fix: a missing file, a recipe without a model, an unset URL.

The command line turns a ``UserError`` into one red line and exit status 2 (no traceback
unless ``--debug``), and tasks never retry one (``tasks.retries.retry_transient``): retrying
a mistyped path only delays the same answer.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input or configuration; the message names the thing, the value and the fix."""


class TransientError(Exception):
    """A failure that can pass on its own (a server restarting, a lock held); tasks retry it with backoff.

    Raise it (or subclass it) for trouble a retry can fix; everything else fails at once.
    """
