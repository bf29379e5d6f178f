"""Saving and loading trained models: safetensors + ModelConfig, shipped models by name.

A model file is a ``.safetensors`` whose metadata holds ``{"dlnet_config": <ModelConfig JSON>}``,
so it rebuilds itself. Shipped models live in ``dlnet/model/weights/`` as ``NAME.safetensors`` with a
``NAME.json`` beside it giving the SHA-256 of the file, checked at every load. Lightning
training checkpoints (``.ckpt``) load too: they carry the same config in their hyper-parameters.

No model file can run code: safetensors holds tensors and JSON only, and checkpoints are read
with ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and dicts; pickled
objects of any other type are refused with a :class:`WeightsError`, never built).

Example:
    >>> model = load_model()            # the default shipped model, offline
    >>> save_model(model, "my.safetensors", dtype=torch.float16)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from dlnet.errors import DLNetError
from dlnet.io.atomic import atomic_path

if TYPE_CHECKING:  # torch and the model are imported where a model is built (names stay torch-free)
    import torch

    from dlnet.model.net import DLNet

__all__ = ["DEFAULT_MODEL", "WEIGHTS_DIR", "WeightsError", "available_models", "images_seen", "init_from", "load_model",
           "model_digest", "resolve", "save_model", "sha256_file"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "dlnet-effnet-unet"


class WeightsError(DLNetError, RuntimeError):
    """A model file that is missing, corrupt or does not match its recorded checksum."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def available_models() -> list[str]:
    """Names of the models shipped inside the package."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def save_model(model: DLNet, path: str | Path, dtype: torch.dtype | None = None, extra: dict | None = None) -> Path:
    """Write ``model`` as safetensors with its config in the metadata; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    meta = {"dlnet_config": json.dumps(model.config.to_dict())}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    with atomic_path(path) as tmp:  # a crash never leaves half a model under the real name
        save_file(state, str(tmp), metadata=meta)
    return path


def _from_state(config: dict, state: dict[str, torch.Tensor]) -> DLNet:
    from dlnet.model.net import DLNet, ModelConfig

    cfg = ModelConfig.from_dict(config)
    cfg.pretrained = False  # the weights come from the file, never from a download
    model = DLNet(cfg)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def _load_safetensors(path: Path) -> DLNet:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "dlnet_config" not in meta:
        raise WeightsError(f"{path}: not a dlnet model (no dlnet_config in its metadata)")
    return _from_state(json.loads(meta["dlnet_config"]), load_file(str(path)))


def _read_checkpoint(path: Path) -> dict:
    """A ``.ckpt`` file's contents, unpickled safely: ``weights_only=True`` builds tensors and
    plain Python values only, so a crafted file cannot run code (a pickle runs whatever its
    ``__reduce__`` names). dlnet's own checkpoints need nothing more."""
    import pickle

    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # an object of a type it does not allow: refused, not run
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: refused: this checkpoint holds Python objects other than tensors and plain "
                           f"values, which could run code ({first[:160]})") from None
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path}: not a dlnet training checkpoint")
    return ckpt


def _load_checkpoint(path: Path) -> DLNet:
    ckpt = _read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters", {})
    if "model" not in hparams:
        raise WeightsError(f"{path}: not a dlnet training checkpoint (no model config)")
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return _from_state(hparams["model"], state)


def resolve(name_or_path: str | Path | None) -> Path:
    """The file behind a shipped model's name (default model when None) or a path, as given."""
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    path = Path(name)
    if not path.suffix and not path.exists():  # a shipped model's name
        path = WEIGHTS_DIR / f"{name}.safetensors"
    return path


def images_seen(name_or_path: str | Path | None = None) -> int:
    """How many training images a model has seen (0 when its file does not say).

    Read from a shipped model's record (``NAME.json``), a model file's metadata, or a
    training checkpoint, so a fine-tuned model can report its whole budget.
    """
    path = resolve(name_or_path)
    record = path.with_suffix(".json")
    if path.parent == WEIGHTS_DIR and record.is_file():
        return int(json.loads(record.read_text()).get("images_seen", 0))
    if path.suffix == ".ckpt":
        return int(_read_checkpoint(path).get("images_seen", 0))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return int(json.loads((f.metadata() or {}).get("images_seen", "0")))


def load_model(name_or_path: str | Path | None = None) -> DLNet:
    """Load a shipped model by name (default :data:`DEFAULT_MODEL`) or a file by path.

    Accepts ``.safetensors`` model files and Lightning ``.ckpt`` training checkpoints.
    Raises :class:`WeightsError` with a one-line reason if the file cannot be used.
    """
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    path = _existing(name)
    if path.parent == WEIGHTS_DIR and not Path(name).suffix:  # a shipped model's name
        record = json.loads(path.with_suffix(".json").read_text())
        digest = sha256_file(path)
        if digest != record["sha256"]:
            raise WeightsError(f"{path}: SHA-256 {digest[:12]}... does not match the recorded {record['sha256'][:12]}...")
    try:
        return _load_checkpoint(path) if path.suffix == ".ckpt" else _load_safetensors(path)
    except WeightsError:
        raise
    except Exception as e:  # corrupt or foreign file: one clear line, not a traceback
        raise WeightsError(f"{path}: cannot load model ({type(e).__name__}: {e})") from e


def model_digest(name_or_path: str | Path | None = None) -> str:
    """The SHA-256 of a model's weights: a shipped model's recorded one (not re-hashed), else the
    file's. Raises :class:`WeightsError` for a missing file."""
    path = resolve(name_or_path)
    record = path.with_suffix(".json")
    if path.parent == WEIGHTS_DIR and record.is_file():
        return json.loads(record.read_text())["sha256"]
    return sha256_file(_existing(str(name_or_path) if name_or_path is not None else DEFAULT_MODEL))


def _existing(name: str) -> Path:
    """The model file ``name`` stands for, or the one-line :class:`WeightsError`: an unknown
    shipped name (with the names there are), or a missing file."""
    path = resolve(name)
    if path.is_file():
        return path
    if path.parent == WEIGHTS_DIR and not Path(name).suffix:
        raise WeightsError(f"unknown model {name!r}; shipped: {', '.join(available_models()) or 'none'}")
    raise WeightsError(f"{path}: no such model file")


def init_from(model: DLNet, source: str) -> tuple[int, int, int]:
    """Copy into ``model`` every tensor of ``source`` (a shipped model's name, a ``.safetensors``
    or a ``.ckpt``) whose name and shape match; returns (copied, tensors in model, images the
    source was trained on).

    Nothing matching at all is an error (a different encoder); a new decoder on a trained
    encoder is the intended partial case. A convolution with more input channels than the
    source's (a hint model made from an automatic one) takes the source's weights for the first
    channels and zero for the rest: it starts out computing exactly what the source did.
    """
    import torch

    src = load_model(source).state_dict()
    dst = model.state_dict()
    same = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    for k, v in src.items():
        d = dst.get(k)
        if d is not None and v.dim() == 4 and d.shape[1] > v.shape[1] and d.shape[0] == v.shape[0] \
                and d.shape[2:] == v.shape[2:]:
            same[k] = torch.cat([v.to(d.dtype), d.new_zeros(d.shape[0], d.shape[1] - v.shape[1], *d.shape[2:])], 1)
    if not any(k.startswith("encoder.") for k in same):  # decoder shapes alone can match by chance
        raise ValueError(f"--init {source}: no encoder tensor fits this model (a different encoder?)")
    model.load_state_dict(same, strict=False)
    return len(same), len(dst), images_seen(source)
