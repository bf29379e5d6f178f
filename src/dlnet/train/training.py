"""Training DL-Net with Lightning: the LightningModule, the run's config, the Trainer.

Read top to bottom: :class:`TrainConfig` (:mod:`dlnet.train.config`) is everything a run needs
(saved as ``config.yaml`` in the run folder, its training part inside every checkpoint);
:class:`ColorizationModule` turns a batch of RGB photos into (L, a*b*) on the device and applies
the paper's global or local loss;
:func:`fit` builds the data, the model and the Trainer, and runs (or resumes) the training.
The ``rebalanced`` and ``classification`` losses weight colours by the training photos' a*b*
prior (:mod:`dlnet.color.abbins`), computed once before training from up to ``prior_photos`` of them
and saved as ``RUN/ab_prior.json`` and in every checkpoint (hyper-parameter ``ab_prior``).

Photos come from image folders (``--data``, decoded per step by loader workers) or from a
``.pack`` made by ``dlnet pack`` (``--packed``: decoded once, kept on the device, augmented
there; see :mod:`dlnet.train.packed`). ``--init`` starts from trained weights (a shipped model's name
or a file) with a fresh optimiser: fine-tuning, or a new decoder on a trained encoder.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar, Timer, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dlnet.color.abbins import ABPrior, ab_prior
from dlnet.color.hints import simulate_hints
from dlnet.io.atomic import atomic_path
from dlnet.color.lab import merge_l_ab, rgb_to_lab
from dlnet.train.data import ColorDataModule, PhotoDataset, collate, make_split, write_split
from dlnet.train.losses import classification_loss, global_loss, local_loss, rebalanced_loss
from dlnet.model.fast import native_bf16
from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import init_from
from dlnet.train.config import LOSSES, TrainConfig
from dlnet.train.packed import PackedDataModule, sample_packed
from dlnet.train.precision import depthwise_in_float32

__all__ = ["TrainConfig", "ColorizationModule", "fit", "LOSSES"]

_PRIOR_LOSSES = ("rebalanced", "classification")  # the losses that need the a*b* prior
_GLOBAL_WEIGHTED = ("local", "local-sqrt", "rebalanced")  # the losses --global-weight adds to
# The TrainConfig fields a checkpoint's hyper-parameters hold, between the model's config and
# the a*b* prior, flat and in this order, as every dlnet checkpoint has held them: load_model
# reads "model", a resumed run rebuilds the module from its config.yaml.
HPARAMS = ("loss", "clusters", "cluster_weights", "lr", "schedule", "global_weight", "encoder_lr_scale", "warmup_steps")


class ColorizationModule(L.LightningModule):
    """DL-Net + the chosen loss. Batches arrive as uint8 RGB; Lab is computed on the device.

    Args:
        model: the network's :class:`ModelConfig` (or its dict).
        config: the run's :class:`TrainConfig`; the module takes its loss, clusters and their
            weights, global weight, learning rate, encoder scale, schedule and warm-up
            (:data:`HPARAMS`). Default: ``TrainConfig()``.
        ab_prior: the training photos' a*b* prior (:class:`ABPrior` or its dict), for the
            rebalanced and classification losses.
        **hparams: instead of ``config``, those fields by name, as a checkpoint's
            hyper-parameters hold them (Lightning's ``load_from_checkpoint`` passes them so).

    Example (a sketch: a model and a prior built first)::

        module = ColorizationModule(ModelConfig(encoder="efficientnet_lite0"), TrainConfig(loss="global", lr=1e-4))
    """

    def __init__(self, model: ModelConfig | dict, config: TrainConfig | None = None,
                 ab_prior: ABPrior | dict | None = None, **hparams) -> None:
        super().__init__()
        if config is not None and hparams:
            raise TypeError("give a TrainConfig or its fields, not both")
        config = config if config is not None else TrainConfig(**hparams)
        model = model.to_dict() if isinstance(model, ModelConfig) else model
        ab_prior = ab_prior.to_dict() if isinstance(ab_prior, ABPrior) else ab_prior
        # Plain values, flat, as every dlnet checkpoint holds them: "model" rebuilds the network
        # (load_model reads checkpoints with weights_only, which refuses a TrainConfig object).
        self.save_hyperparameters({"model": model, **{k: getattr(config, k) for k in HPARAMS}, "ab_prior": ab_prior})
        self.model = DLNet(ModelConfig.from_dict(model)).to(memory_format=torch.channels_last)
        depthwise_in_float32(self.model)  # bf16 depthwise backward is 3-18x slower on a CPU
        loss = config.loss
        if (loss == "classification") != (self.model.config.head == "classification"):
            raise ValueError("the classification loss and a classification head go together")
        if loss in _PRIOR_LOSSES:
            if ab_prior is None:
                raise ValueError(f"the {loss} loss needs the training photos' a*b* prior")
            prior = ABPrior.from_dict(ab_prior)
            self.register_buffer("ab_bins", prior.bins, persistent=False)
            self.register_buffer("ab_weights", prior.weights, persistent=False)
        self._t_last: float | None = None
        # Training images this model has seen, over every run it came from (--init carries the
        # source's count): the budget a shipped model reports. Saved in every checkpoint.
        self.images_seen = 0
        self._run_images, self._run_start = 0, None

    def forward(self, l: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(l.contiguous(memory_format=torch.channels_last), hints=hints)

    def _lab(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        lab = rgb_to_lab(batch["rgb"].float() / 255.0)
        return lab[:, :1], lab[:, 1:]

    def _output(self, l: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """What the loss takes: bin logits for a classification head, a*b* otherwise."""
        if self.model.config.head == "classification":
            return self.model.forward_logits(l.contiguous(memory_format=torch.channels_last), hints)
        return self(l, hints)

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        name = self.hparams.loss
        if name == "global":
            return global_loss(pred, target)
        if name == "classification":
            return classification_loss(pred, target, self.ab_bins, self.ab_weights)
        if name == "rebalanced":
            loss = rebalanced_loss(pred, target, self.ab_bins, self.ab_weights)
        else:  # a new k-means seed each step, reproducible from the step number
            loss = local_loss(pred, target, self.hparams.clusters, self.hparams.cluster_weights, seed=self.global_step,
                              balance=0.5 if name == "local-sqrt" else 1.0)
        if self.hparams.get("global_weight"):
            # The local and rebalanced losses up-weight rare saturated colours and let the mean
            # colour drift (and PSNR fall); a global term anchors them to the pixel average.
            loss = loss + self.hparams.global_weight * global_loss(pred, target)
        return loss

    def training_step(self, batch: dict, batch_idx: int):
        n = batch["rgb"].shape[0]
        if n == 0:
            return None  # every photo of this batch was skipped
        l, ab = self._lab(batch)
        # a hint model sees hints drawn from the truth on some photos, none on the others
        hints = simulate_hints(ab) if self.model.config.hints else None
        loss = self._loss(self._output(l, hints), ab)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        seen = n * self.trainer.world_size
        self.images_seen += seen
        self._run_images += seen
        now = time.perf_counter()
        if self._t_last is not None:
            self.log("train/img_per_s", n / (now - self._t_last), prog_bar=True, batch_size=n)
        self._t_last = now
        skipped = batch["skipped_bad"] + batch["skipped_grey"]
        if skipped:
            self.log("train/skipped", float(skipped), reduce_fx="sum", batch_size=n)
        return loss


    @property
    def trained_this_run(self) -> bool:
        return self._run_images > 0

    def on_train_start(self) -> None:
        self._run_start = time.perf_counter()

    def on_train_end(self) -> None:
        if self._run_start is None or not self.trainer.is_global_zero:
            return
        elapsed = time.perf_counter() - self._run_start
        print(f"trained {self._run_images} images in {elapsed:.0f} s: {self._run_images / max(elapsed, 1e-9):.1f} images/s "
              f"(all devices, validation included); the model has seen {self.images_seen} in all", file=sys.stderr)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["images_seen"] = self.images_seen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.images_seen = int(checkpoint.get("images_seen", 0))

    def on_train_epoch_start(self) -> None:
        self._t_last = None  # don't count the data-loader start-up as a slow step

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        from dlnet.color.metrics import psnr, ssim

        n = batch["rgb"].shape[0]
        if n == 0:
            return
        l, ab = self._lab(batch)
        out = self._output(l)
        self.log("val/loss", self._loss(out, ab), prog_bar=True, batch_size=n, sync_dist=True)
        pred = self._ab(out)
        self.log("val/mse_ab", global_loss(pred, ab), batch_size=n, sync_dist=True)
        out, truth = merge_l_ab(l, pred), batch["rgb"].float() / 255.0
        self.log("val/psnr", psnr(out, truth).mean(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/ssim", ssim(out, truth).mean(), batch_size=n, sync_dist=True)
        if self.model.config.hints:  # the same 10 points per photo at every validation
            hints = simulate_hints(ab, torch.Generator(ab.device).manual_seed(batch_idx), points=10, side=3)
            pred = self._ab(self._output(l, hints))
            self.log("val/psnr_hints10", psnr(merge_l_ab(l, pred), truth).mean(), batch_size=n, sync_dist=True)

    def _ab(self, out: torch.Tensor) -> torch.Tensor:
        """:meth:`_output` as float a*b* (a classification head's logits decoded)."""
        return self.model.logits_to_ab(out) if self.model.config.head == "classification" else out.float()

    def configure_optimizers(self):
        lr, scale = self.hparams.lr, self.hparams.get("encoder_lr_scale", 1.0)
        # A hint model's hint weights start at zero in the input conv: it learns at the decoder's
        # rate (a tenth of it would leave the hints unused for thousands of steps; Adam's step does
        # not grow with the gradient), the rest of the encoder at its own.
        fast = [self.model.encoder.input_conv().weight] if self.model.config.hints else []
        fast += list(self.model.hint_convs.parameters()) if self.model.config.hint_skips else []
        opt = torch.optim.Adam([
            {"params": [p for p in self.model.encoder.parameters() if all(p is not f for f in fast)], "lr": lr * scale},
            {"params": [*self.model.decoder.parameters(), *fast], "lr": lr},
        ])
        warmup = self.hparams.get("warmup_steps", 0)
        if self.hparams.schedule == "constant" and not warmup:
            return opt
        total = int(self.trainer.estimated_stepping_batches) if self.hparams.schedule == "cosine" else 0
        # With --max-time the run may end on the clock before its steps run out (a GPU call's
        # only limit): the cosine then follows the clock, so that the run still ends near rate 0.
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None) if total else None
        left = timer.time_remaining() if timer is not None else None  # None: no --max-time
        limit = None if left is None else timer.time_elapsed() + left  # the --max-time, seconds

        def factor(step: int) -> float:
            if limit is None:
                return lr_factor(step, warmup, total)
            return lr_factor(step, warmup, total, timer.time_elapsed() / limit if limit > 0 else 1.0)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lr_factor(step: int, warmup: int, total: int, clock: float = 0.0) -> float:
    """The learning-rate multiplier at optimiser ``step``: a linear warm-up over ``warmup`` steps,
    then 1 (``total`` 0: constant) or a cosine to 0 at whichever end comes first, ``total`` steps or
    the clock (``clock``: the share of ``--max-time`` used, 0..1; 0 without one).

    >>> [round(lr_factor(s, 2, 10), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    >>> lr_factor(3, 2, 10, clock=0.5), lr_factor(9, 2, 10, clock=1.0)
    (0.5, 0.0)
    """
    if step < warmup:
        return (step + 1) / warmup
    if not total:
        return 1.0
    done = max(min(1.0, (step - warmup) / max(1, total - warmup)), min(1.0, max(0.0, clock)))
    return 0.5 * (1 + math.cos(math.pi * done))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file and rename it: a crash or a full disk never
    leaves a truncated ``last.ckpt`` where the previous good one was."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        get_filesystem(path).makedirs(str(path.parent), exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def _loggers(out: Path) -> list:
    # CSV: a new logs/version_N per (re)start, because CSVLogger deletes an existing metrics.csv.
    loggers = [CSVLogger(out, name="logs")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    return loggers  # a bare GPU machine may lack TensorBoard: CSV is enough


def _progress_bar():
    if importlib.util.find_spec("rich") and sys.stderr.isatty():
        return RichProgressBar()
    return TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else 100)  # a log file: a line per 100 steps


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def _precision(cfg: TrainConfig) -> str:
    """``cfg.precision``, with ``auto`` resolved for the device the run will use: bf16 autocast
    where it is native, float32 elsewhere (on an AVX2 CPU bf16 is ~10x slower)."""
    if cfg.precision != "auto":
        return cfg.precision
    gpu = cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if native_bf16("cuda" if gpu else "cpu") else "32-true"


def run_prior(cfg: TrainConfig, out: Path, train_files: list[Path] | None = None, write: bool = True) -> ABPrior:
    """The a*b* prior of the run's training photos: ``OUT/ab_prior.json`` when resuming, else
    computed from up to ``cfg.prior_photos`` training photos drawn with the run's seed (from the
    pack, or ``train_files`` centre-cropped at ``cfg.size``) and written there when ``write``."""
    path = out / "ab_prior.json"
    if cfg.resume and path.is_file():
        return ABPrior.load(path)
    start = time.perf_counter()
    if cfg.packed:
        photos = sample_packed(cfg.packed, "train", cfg.prior_photos, cfg.seed)
    else:
        pick = torch.randperm(len(train_files), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.prior_photos]
        files = [train_files[i] for i in sorted(pick.tolist())]
        loader = torch.utils.data.DataLoader(PhotoDataset(files, cfg.size, train=False), batch_size=64,
                                             num_workers=cfg.workers, collate_fn=collate)
        photos = (batch["rgb"] for batch in loader)
    prior = ab_prior(photos)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        prior.save(path)
    print(f"a*b* prior of {prior.photos} training photos in {time.perf_counter() - start:.0f} s: {path}", file=sys.stderr)
    return prior


def fit(cfg: TrainConfig) -> Path:
    """Run (or resume) a training run; returns the run folder."""
    cfg.validate()
    out = Path(cfg.out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    rank0 = int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
    train_files = None
    if cfg.packed:  # the split was made (and written beside the photos) by `dlnet pack`
        data = PackedDataModule(cfg.packed, cfg.size, cfg.batch_size, cfg.seed)
    else:
        split = make_split(cfg.data, cfg.test_fraction, cfg.val_fraction, cfg.seed, cfg.extra_train)
        if rank0:
            write_split(split, out / "split")
        data = ColorDataModule(split, cfg.size, cfg.batch_size, cfg.workers)
        train_files = split.train
    if rank0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    prior = run_prior(cfg, out, train_files, write=rank0) if cfg.loss in _PRIOR_LOSSES else None
    head = {"head": "classification", "bins": prior.bins.tolist()} if cfg.loss == "classification" else {}
    model_cfg = ModelConfig(encoder=cfg.encoder, decoder=cfg.decoder, pretrained=cfg.pretrained and not cfg.init,
                            hints=cfg.hints, hint_skips=cfg.hint_skips, **head)
    if cfg.global_weight and cfg.loss not in _GLOBAL_WEIGHTED:
        print(f"note: --global-weight adds to the {', '.join(_GLOBAL_WEIGHTED)} losses only; --loss {cfg.loss} ignores it",
              file=sys.stderr)
    module = ColorizationModule(model_cfg, cfg, prior)
    if cfg.init and not cfg.resume:
        loaded, total, module.images_seen = init_from(module.model, cfg.init)
        print(f"init: {loaded}/{total} tensors from {cfg.init} (trained on {module.images_seen} images)", file=sys.stderr)
    # Two callbacks, because ModelCheckpoint(save_last=True) refreshes last.ckpt only when the
    # monitored score improves: a run whose validation loss stalls would resume from far back.
    best = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min",
                           save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           every_n_train_steps=cfg.val_every_steps, enable_version_counter=False,
                           save_on_train_epoch_end=True)
    # And by the clock: a run whose validations are far apart (or a --max-time run on a slow
    # machine) that is killed without warning (SIGKILL, a lost machine) keeps all but the last minutes.
    timed = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None, save_top_k=1,
                            train_time_interval=timedelta(minutes=cfg.save_every_minutes), enable_version_counter=False)
    trainer = L.Trainer(
        default_root_dir=out, max_epochs=cfg.epochs, max_steps=cfg.max_steps, precision=_precision(cfg),
        accelerator=cfg.accelerator, devices=_devices(cfg.devices), num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        logger=_loggers(out), callbacks=[best, last, timed, _progress_bar(), LearningRateMonitor("step")],
        plugins=[AtomicCheckpointIO()], val_check_interval=cfg.val_every_steps,
        check_val_every_n_epoch=None if cfg.val_every_steps else 1, limit_val_batches=cfg.limit_val_batches,
        log_every_n_steps=10, deterministic=False, max_time=cfg.max_time,
    )
    resume = cfg.resume
    if resume == "last":
        resume = str(out / "checkpoints" / "last.ckpt")
    if resume and not Path(resume).is_file():
        raise FileNotFoundError(f"{resume}: no checkpoint to resume from")
    last_ckpt = out / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(module, datamodule=data, ckpt_path=resume)
    except SystemExit as stop:
        # Ctrl-C (Lightning ends it with sys.exit(1)) or SIGTERM (Lightning's SIGTERMException, a
        # SystemExit whose code would be 0): keep what this run trained, but only once it has
        # trained: an interrupt during the restore of a resumed run must not replace the good
        # last.ckpt with an unrestored model. Exit 143/130, as a shell reports a process ended by
        # SIGTERM/SIGINT, so a script can tell a stopped run from a finished one.
        sigterm = isinstance(stop, SIGTERMException)
        code = 143 if sigterm else 130 if stop.code == 1 else stop.code
        if module.trained_this_run:
            trainer.save_checkpoint(last_ckpt, weights_only=False)  # (all of it: --resume continues from it)
            print(f"stopped ({'SIGTERM' if sigterm else 'interrupted'}) at step {trainer.global_step}, "
                  f"{module.images_seen} images seen: {last_ckpt} saved; continue with --resume", file=sys.stderr)
        raise SystemExit(code) from stop
    # The final state, whatever the periodic checkpoints last caught: --resume continues here.
    trainer.save_checkpoint(last_ckpt, weights_only=False)
    return out
