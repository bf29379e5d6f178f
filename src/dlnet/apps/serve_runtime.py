"""Which colorizer answers the server's requests, and how it starts fast (``dlnet serve --runtime``).

Importing torch and building the model takes 3-5 s on two cores; the model exported to ONNX and
run by onnxruntime (:mod:`dlnet.infer.onnxrun`, cached per user) loads in 0.2 s, but runs in
fp32: slower than PyTorch's bf16 at working sizes of 224 and above and for batches on a CPU with
AVX-512 (benchmarks/README.md, inference). So the default (``runtime=None``, on a CPU) is both: the server answers at once with
onnxruntime while PyTorch loads in a background thread, then PyTorch takes over. Videos need
PyTorch (their frames are batched in torch) and wait for it. ``"torch"`` or ``"onnx"`` runs that
runtime only (``"onnx"`` still loads PyTorch for a video, on the first one).

Example:
    >>> runtime = ServeRuntime(ServeSettings())   # doctest: +SKIP
    >>> runtime.photos.colorize("old.jpg")         # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
import threading

__all__ = ["ServeRuntime", "RUNTIMES"]

RUNTIMES = ("torch", "onnx")
log = logging.getLogger("dlnet.apps.serve")


class ServeRuntime:
    """The server's colorizers: :attr:`photos` answers photo requests (either runtime),
    :meth:`pytorch` gives the PyTorch one. ``settings`` is a
    :class:`~dlnet.apps.serve.ServeSettings`; ``colorizer``, when given, is used for everything.
    Raises ``WeightsError`` for a model that cannot be loaded."""

    def __init__(self, settings, colorizer=None) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._torch = colorizer
        if colorizer is not None:
            self.photos = colorizer
            return
        runtime = settings.runtime
        cpu = settings.device in (None, "cpu")
        self.photos = None
        if runtime == "onnx" or (runtime is None and cpu and importlib.util.find_spec("onnxruntime")):
            self.photos = self._onnx(required=runtime == "onnx")
        if self.photos is None:
            self.photos = self.pytorch()
        elif runtime is None:  # answer with onnxruntime now, hand over to PyTorch once it is loaded
            threading.Thread(target=self._take_over, name="dlnet-load-torch", daemon=True).start()

    def _onnx(self, required: bool):
        from dlnet.infer.onnxrun import OnnxColorizer
        from dlnet.model.weights import WeightsError

        try:
            return OnnxColorizer.from_pretrained(self._settings.weights, options=self._settings.options)
        except WeightsError:
            raise
        except Exception as e:  # no writable cache, a failed export: PyTorch serves instead
            if required:
                raise
            log.warning("onnxruntime is not available for this model (%s); serving with PyTorch", e)
            return None

    def pytorch(self):
        """The PyTorch :class:`~dlnet.infer.colorizer.Colorizer` (videos need it), loaded on first need, once."""
        with self._lock:
            if self._torch is None:
                from dlnet.infer.colorizer import Colorizer

                s = self._settings
                self._torch = Colorizer.from_pretrained(s.weights, device=s.device, precision=s.precision,
                                                        options=s.options)
            return self._torch

    def _take_over(self) -> None:
        try:
            self.photos = self.pytorch()
        except Exception:  # keep serving with onnxruntime
            log.exception("could not load the PyTorch model; photos stay on onnxruntime")

    def describe(self) -> dict:
        """What ``/healthz`` says about the colorizer answering photos now."""
        c = self.photos
        model = getattr(c, "model", None)
        config = getattr(model, "config", None) or getattr(c, "config", None)
        encoder = config.get("encoder") if isinstance(config, dict) else getattr(config, "encoder", None)
        return {"runtime": "onnx" if hasattr(c, "session") else "torch", "encoder": encoder,
                "device": str(getattr(c, "device", "cpu")), "precision": c.precision}
