"""One module per ``dlnet`` subcommand: ``configure(parser)`` and ``run(args) -> int``.

What they share lives here, so that a command never imports the CLI (``dlnet.cli``) back:
:class:`UsageError` and the checks of command-line amounts.
"""

from __future__ import annotations

import math


class UsageError(Exception):
    """A problem with what the user asked for: reported as one line, exit code 2."""


def millions(flag: str, value: float) -> int:
    """A positive, finite amount given in millions (``--max-megapixels 50``) as a whole count."""
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive number, got {value:g}")
    return max(1, int(value * 1e6))
