"""Which colorizer answers the server's requests, and how it starts fast (``dlnet serve --runtime``).

The choice is :mod:`dlnet.infer.runtime`'s, asked twice: for the first photo (onnxruntime on a
CPU: 0.2 s to start, where PyTorch takes 3-5 s) and for a server's endless work (PyTorch only
where its bf16 is faster per photo: a CPU with AVX-512 BF16 or AMX, or a GPU). When the answers
differ the server answers at once with onnxruntime while PyTorch loads in a background thread,
then PyTorch takes over; else one runtime serves throughout (on a CPU without native bf16,
onnxruntime: as fast, and 1 GB less memory). Videos go to the same colorizer as photos (films run
on either runtime). ``"torch"`` or ``"onnx"`` runs that runtime only.

Example:
    >>> runtime = ServeRuntime(ServeSettings())   # doctest: +SKIP
    >>> runtime.photos.colorize("old.jpg")         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading

from dlnet.infer.runtime import RUNTIMES, Work, choose_runtime, load_colorizer

__all__ = ["ServeRuntime", "RUNTIMES"]

log = logging.getLogger("dlnet.apps.serve")


class ServeRuntime:
    """The server's colorizer: :attr:`photos` answers photo and video requests (either
    runtime; it may change once, to PyTorch, see the module doc). ``settings`` is a
    :class:`~dlnet.apps.serve.ServeSettings`; ``colorizer``, when given, is used for everything.
    Raises ``WeightsError`` for a model that cannot be loaded."""

    def __init__(self, settings, colorizer=None) -> None:
        self._settings = settings
        self.loading: str | None = None  # the runtime being loaded to take over, if any
        if colorizer is not None:
            self.photos = colorizer
            return
        s = settings
        self.photos = load_colorizer(s.weights, Work(photos=1, size=s.default_size), s.runtime, s.device,
                                     s.precision, options=s.options)
        if hasattr(self.photos, "session"):  # on onnxruntime: does PyTorch serve a long run faster?
            steady = choose_runtime(s.weights, Work(photos=None, size=s.default_size), s.runtime, s.device)
            if steady == "torch":
                self.loading = "torch"
                threading.Thread(target=self._take_over, name="dlnet-load-torch", daemon=True).start()

    def _take_over(self) -> None:
        s = self._settings
        try:
            self.photos = load_colorizer(s.weights, Work(photos=None, size=s.default_size), "torch", s.device,
                                         s.precision, options=s.options)
        except Exception:  # keep serving with onnxruntime
            log.exception("could not load the PyTorch model; photos stay on onnxruntime")
        finally:
            self.loading = None

    def describe(self) -> dict:
        """What ``/healthz`` says about the colorizer answering photos now."""
        c = self.photos
        model = getattr(c, "model", None)
        config = getattr(model, "config", None) or getattr(c, "config", None)
        encoder = config.get("encoder") if isinstance(config, dict) else getattr(config, "encoder", None)
        return {"runtime": "onnx" if hasattr(c, "session") else "torch", "encoder": encoder,
                "device": str(getattr(c, "device", "cpu")), "precision": c.precision, "loading": self.loading}
