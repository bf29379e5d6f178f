"""The photo half of the inference path, without torch: what every colorizer shares.

:class:`PhotoPipeline` turns photos into colour photos around one abstract step, the model call
``_predict_batch`` (working-size L* of photos of one shape -> their a*b*):
:class:`~dlnet.infer.colorizer.Colorizer` runs it with PyTorch, :class:`~dlnet.infer.onnxrun.OnnxColorizer`
with onnxruntime. Everything else (grouping photos by working shape, batching, the full-resolution
L* in and colour out of :mod:`dlnet.color.fullres`, keeping alpha, ICC profile and EXIF, streaming with
per-photo failures) is written once here, in NumPy, so the torch-free path gives the same photos.

The model sees each photo at its working shape (:func:`dlnet.infer.options.working_shape`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

from dlnet.color.fullres import lightness, merge_rgb8, resize_l
from dlnet.color.propagate import hint_map, propagate
from dlnet.io.hints import Hint
from dlnet.io.imageio import Photo, read_image
from dlnet.infer.options import DEFAULT_HINT_METHOD, InferenceOptions, OptionError, working_shape

__all__ = ["PhotoPipeline", "without_gain"]

Key = TypeVar("Key")


def without_gain(model):
    """``(model computing a*b* at gain 1, the gain it was saved with)``: the gain (its config's
    ``saturation``, a setting of the shipped model) is applied by the pipeline, once, as
    ``options.saturation`` or this one (:meth:`PhotoPipeline._saturate`).

    A :class:`~dlnet.model.net.DLNet` saved with a gain comes back as a shallow copy sharing its
    weights, with its own config at gain 1 (the caller's model is left as it is); anything else
    (an exported graph, which runs at gain 1) comes back as it is.
    """
    config = getattr(model, "config", None)
    if isinstance(config, dict):  # an exported graph's recorded config
        return model, float(config.get("saturation", 1.0))
    gain = float(getattr(config, "saturation", 1.0))
    if gain != 1.0:
        model = copy.copy(model)
        model.config = dataclasses.replace(config, saturation=1.0)
    return model, gain


class PhotoPipeline:
    """Photos in, colour photos out, around :meth:`_predict_batch`. Subclasses set ``options``
    (an :class:`InferenceOptions`) and ``batch_size`` (most photos per model call)."""

    options: InferenceOptions
    batch_size: int
    model_saturation: float = 1.0  # the a*b* gain the model was saved with (its ModelConfig's)
    takes_hints: bool = False  # the model has hint inputs (ModelConfig.hints): the learned hint method

    def _gain(self, options: InferenceOptions) -> float:
        return self.model_saturation if options.saturation is None else options.saturation

    def _saturate(self, ab, options: InferenceOptions):
        """The network's a*b* (array or tensor, at gain 1) times the gain: ``options.saturation``,
        else the model's own. The one place a gain is applied (see :func:`without_gain`)."""
        gain = self._gain(options)
        return ab if gain == 1.0 else ab * gain

    def _network_hints(self, maps: list[np.ndarray], options: InferenceOptions) -> np.ndarray:
        """Hint maps ``(3, h, w)`` as the network takes them ``(B, 3, h, w)``: in its own units.
        The network predicts at gain 1 and :meth:`_saturate` multiplies by the gain after it, so a
        hint's colour ``c`` is given as ``c / gain``: the network, trained to carry a hint's colour
        into its region, then puts ``c`` there after the gain, not the gain times ``c`` (at the
        shipped gain of 0.8, a fifth less than the colour the user chose)."""
        stack = np.stack(maps)
        gain = self._gain(options)
        if gain > 0 and gain != 1.0:
            stack[:, :2] /= gain
        return stack

    def check_options(self, options: InferenceOptions) -> None:
        """Raise :class:`~dlnet.infer.options.OptionError` for options this model cannot honour
        (checked before a batch starts); runtimes extend it with their own limits."""
        self.hint_method(options)

    def hint_method(self, options: InferenceOptions) -> str | None:
        """How ``options.hints`` are honoured: ``"propagate"`` (the default, any model; a hint
        model's prediction it starts from has seen the hints too), ``"learned"`` (the model's
        hint inputs alone), None without hints."""
        if not options.hints:
            return None
        method = options.hint_method or DEFAULT_HINT_METHOD
        if method == "learned" and not self.takes_hints:
            raise OptionError("hint_method", "learned needs a model with hint inputs, and this one has none "
                                             "(use propagate, or a hint model)")
        return method

    def _predict_batch(self, ls: list[np.ndarray], shape: tuple[int, int], options: InferenceOptions,
                       hints: np.ndarray | None = None):
        """Full-resolution L* ``(H, W)`` of photos with working shape ``shape`` -> their a*b*
        ``(B, 2, *shape)`` (an array or tensor), post-processed as ``options`` say. ``hints``:
        their hint maps ``(B, 3, *shape)`` for a model with hint inputs (None: no hints)."""
        raise NotImplementedError

    @property
    def size(self) -> int | None:
        """The default working size (``options.size``)."""
        return self.options.size

    def colorize(self, image, options: InferenceOptions | None = None, side_by_side: bool = False):
        """Colorize one photo: a path, PIL image, numpy array or :class:`Photo` -> an 8-bit PIL
        image of the same size, ``RGBA`` when the photo has transparency, its ICC profile and
        EXIF in ``info`` (:func:`dlnet.io.imageio.save_image` writes them, as ``dlnet colorize`` does).

        Arrays may be ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` of uint8, uint16 or float 0..1
        (see :func:`dlnet.io.imageio.read_image`); EXIF orientation of files is applied. With
        ``side_by_side`` the result is twice as wide: grey input | colour output (no alpha).
        ``options`` override the colorizer's own for this call only.

        Example:
            >>> Colorizer.from_pretrained().colorize("grandma.jpg").save("grandma-colour.png")  # doctest: +SKIP
        """
        return self.colorize_batch([image], options, side_by_side)[0]

    def colorize_batch(self, images, options: InferenceOptions | None = None, side_by_side: bool = False) -> list:
        """Colorize several photos (as :meth:`colorize`); results keep the input order."""
        options = options or self.options
        photos = [read_image(im, max_pixels=options.max_pixels) for im in images]
        return [p.to_image() for p in self.colorize_photos(photos, options, side_by_side)]

    def colorize_video(self, src, dst, options: InferenceOptions | None = None, **kwargs):
        """Colorize a video (path or file object) into ``dst`` (``.mp4``, ``.mkv``, ...): every
        frame as a photo with ``options`` (default: the colorizer's), colour smoothed over time
        (``temporal``, 0 = off), audio copied, frames streamed; on either runtime (onnxruntime's
        never imports torch). The other arguments and the result: :func:`dlnet.infer.video.colorize_video`.

        Example:
            >>> Colorizer.from_pretrained().colorize_video("film.avi", "film-colour.mp4")  # doctest: +SKIP
        """
        from dlnet.infer.video import colorize_video  # (PyAV: loaded only for a video)

        return colorize_video(self, src, dst, options, **kwargs)

    def colorize_photos(self, photos: list[Photo], options: InferenceOptions | None = None,
                        side_by_side: bool = False) -> list[Photo]:
        """Colorize photos: Photo in, Photo out (8-bit sRGB of the same size, with the input's
        alpha, format, ICC profile and EXIF; no alpha when ``side_by_side``). Photos of the same
        working shape go through the model together, up to ``batch_size`` at a time.

        The full-resolution work (L* in, colour out) runs on the CPU in small strips, through
        lookup tables where the source is 8-bit (:mod:`dlnet.color.fullres`): a 12-MP photo never
        needs a full-size float RGB or a*b* copy, and only the working-size L* goes to the model.
        The L* of all given photos are held at once (48 MB per 12-MP photo): pass large photos a
        few at a time, or through :meth:`colorize_stream`.
        """
        options = options or self.options
        method = self.hint_method(options)
        for p in photos:  # before any work: a hint off one photo fails the call
            _check_inside(options.hints, p.rgb.shape[:2])
        ls = [lightness(p.rgb) if p.lightness is None else p.lightness for p in photos]  # (H, W) float32 L*
        groups: dict[tuple[int, int], list[int]] = {}
        for i, l in enumerate(ls):
            groups.setdefault(working_shape(*l.shape, options.size), []).append(i)
        out: list[Photo | None] = [None] * len(ls)
        for shape, idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                maps = [hint_map(options.hints, ls[i].shape, shape) for i in chunk] if method else None
                model_hints = {"hints": self._network_hints(maps, options)} if method and self.takes_hints else {}
                ab = self._predict_batch([ls[i] for i in chunk], shape, options, **model_hints)
                if method == "propagate":  # at the working size, as the model predicts
                    ab = [propagate(resize_l(ls[i], shape), _numpy(ab[j]), maps[j]) for j, i in enumerate(chunk)]
                for j, i in enumerate(chunk):
                    l, ls[i] = ls[i], None  # free each full-res L as soon as it is used
                    colour = merge_rgb8(l, ab[j])  # a*b* upsampled strip by strip
                    if side_by_side:
                        colour = np.concatenate([merge_rgb8(l, None), colour], axis=1)
                    src = photos[i]
                    out[i] = Photo(colour, None if side_by_side else src.alpha, src.format, src.icc_profile, src.exif)
        return out

    def colorize_stream(self, items: Iterable[tuple[Key, Photo]], options: InferenceOptions | None = None,
                        side_by_side: bool = False) -> Iterator[tuple[Key, Photo | Exception]]:
        """Colorize ``(key, photo)`` pairs as they arrive, yielding ``(key, result)`` pairs.

        Photos wait, grouped by working shape, until ``batch_size`` of them are pending; then the
        largest group goes through the model, so memory stays bounded for any number of photos of
        mixed sizes. A batch that fails is retried photo by photo, so one bad photo costs only
        itself: its result is then the exception it raised. Results come in batch order.
        """
        options = options or self.options
        pending: dict[tuple[int, int], list[tuple[Key, Photo]]] = {}
        waiting = 0
        for key, photo in items:
            pending.setdefault(working_shape(*photo.rgb.shape[:2], options.size), []).append((key, photo))
            waiting += 1
            if waiting >= self.batch_size:
                group = pending.pop(max(pending, key=lambda shape: len(pending[shape])))
                waiting -= len(group)
                yield from self._group(group, options, side_by_side)
        for group in pending.values():
            yield from self._group(group, options, side_by_side)

    def _group(self, group: list, options: InferenceOptions, side_by_side: bool) -> Iterator[tuple]:
        try:
            results = self.colorize_photos([photo for _, photo in group], options, side_by_side)
        except Exception as e:
            if len(group) == 1:
                yield group[0][0], e
            else:
                for item in group:
                    yield from self._group([item], options, side_by_side)
            return
        yield from zip((key for key, _ in group), results)


def _check_inside(hints: tuple[Hint, ...], hw: tuple[int, int]) -> None:
    """:class:`OptionError` naming the first hint outside an ``hw`` photo (as displayed)."""
    h, w = hw
    for n, hint in enumerate(hints, 1):
        if not (0 <= hint.x <= w and 0 <= hint.y <= h):
            raise OptionError("hints", f"hint {n} at ({hint.x:g}, {hint.y:g}) is outside the {w}x{h} photo")


def _numpy(ab) -> np.ndarray:
    """One photo's a*b* as a float32 array, from an array or a (CPU or GPU) tensor."""
    return ab.detach().float().cpu().numpy() if hasattr(ab, "detach") else np.asarray(ab, np.float32)
