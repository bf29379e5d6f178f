"""The network: L* in, a*b* out; its encoders; saved, loaded and shipped weights.

:mod:`dlnet.model.net` is DL-Net (:class:`~dlnet.model.net.DLNet`, ``ModelConfig``, the plain
and U-Net decoders), :mod:`dlnet.model.encoders` the registry of grey-input encoders, and
:mod:`dlnet.model.weights` the model files (safetensors + config) and the shipped models, which
live in ``weights/`` beside it. This ``__init__`` imports nothing (no torch at start-up).
"""
