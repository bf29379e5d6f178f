"""dlnet's errors: one tree, one base class, one line each.

Every error dlnet raises for something a user gave it (a photo, a model file, an option, a hint,
a folder of training photos) derives from :class:`DLNetError` and says in one line what is wrong
and with what (``"old.jpg: not an image"``, ``"quality must be a whole number in 1..100, got 0"``).
So a caller can catch them all at once, and the ``dlnet`` command prints any of them as one line
(exit 2) instead of a traceback. Each also keeps the built-in class it had before
(``ValueError``, ``RuntimeError``), so code that caught those still does.

The tree (each defined beside the code that raises it)::

    DLNetError
    ├── OptionError          an option out of range (here: configs of every layer raise it)
    ├── ImageError           dlnet.io.imageio: a photo that cannot be read or written
    │   └── VideoError       dlnet.infer.video
    ├── HintError            dlnet.io.hints: a colour hint that cannot be used
    ├── DataError            dlnet.io.photolist: a photo folder or file list that cannot be used
    ├── WeightsError         dlnet.model.weights: a model file missing, corrupt or refused
    ├── OnnxUnavailable      dlnet.infer.onnxrun: no ONNX path here (the cache, the export)
    ├── RuntimeChoiceError   dlnet.infer.runtime: a runtime that cannot run this
    ├── ClusterError         dlnet.infer.cluster: a Ray job that cannot go on
    ├── EvaluationError      dlnet.evaluate.protocol: unusable data, methods or report folder
    └── UsageError           dlnet.apps.commands: a command line that cannot be run

This module imports nothing, so that every layer can raise from it without reaching up.

Example:
    >>> try:
    ...     raise OptionError("quality", "must be a whole number in 1..100, got 0")
    ... except DLNetError as e:
    ...     print(e)
    quality must be a whole number in 1..100, got 0
"""

from __future__ import annotations

__all__ = ["DLNetError", "OptionError"]


class DLNetError(Exception):
    """The base of dlnet's errors about what a user gave it: ``str()`` is one line saying what
    is wrong and with what."""


class OptionError(DLNetError, ValueError):
    """An option out of range: ``str()`` is one line naming it, ``field`` is its name (the
    config's field; None for a problem of several together) and ``reason`` the rest."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field, self.reason = field, reason
        # a reason that names one item of the option ("hint 2 at (5, 9) is outside ...") says
        # which option it is already: "hints hint 2 ..." would say it twice
        named = field and reason.startswith(f"{field.removesuffix('s')} ")
        super().__init__(f"{field} {reason}" if field and not named else reason)
