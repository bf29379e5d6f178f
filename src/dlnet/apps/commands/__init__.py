"""One module per ``dlnet`` subcommand: ``configure(parser)`` and ``run(args) -> int``.

What they share lives here, so that a command never imports the CLI (``dlnet.apps.cli``) back:
:class:`UsageError`, the one flag that names a model, and the checks of command-line values.
"""

from __future__ import annotations

import argparse

from dlnet.errors import DLNetError


class UsageError(DLNetError):
    """A problem with what the user asked for: reported as one line, exit code 2."""


def add_model_flag(parser: argparse.ArgumentParser, what: str = ".safetensors/.ckpt file") -> None:
    """``--model NAME|PATH`` (``--weights``, its older name, still works), as ``args.model``."""
    parser.add_argument("--model", "--weights", dest="model", default=None, metavar="NAME|PATH",
                        help=f"shipped model name or {what} (default: the default model)")


def option_error(e: ValueError, config: type | None = None) -> UsageError:
    """An :class:`~dlnet.errors.OptionError` as a usage error naming its flag (``--max-megapixels``;
    the flag ``config``'s field metadata gives it, where it is not the field's name)."""
    from dlnet.config import flag_of

    field = getattr(e, "field", None)
    if not field:
        return UsageError(str(e))
    flag = flag_of(config, field) if config is not None else "--" + field.replace("_", "-")
    return UsageError(f"{flag} {e.reason}")


def one_line(text: str) -> str:
    r"""``text`` with its control characters escaped, so that one message stays one line whatever
    a file is called; bytes of a name that are not UTF-8 show as ``\xNN``.

    Example:
        >>> one_line("in/two\nlines.jpg: not an image")
        'in/two\\nlines.jpg: not an image'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                   else repr(c)[1:-1] for c in text)
