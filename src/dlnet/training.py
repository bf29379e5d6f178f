"""Training DL-Net with Lightning: the LightningModule, the run's config, the Trainer.

Read top to bottom: :class:`TrainConfig` is everything a run needs (saved as ``config.yaml`` in
the run folder and inside every checkpoint); :class:`ColorizationModule` turns a batch of RGB
photos into (L, a*b*) on the device and applies the paper's global or local loss;
:func:`fit` builds the data, the model and the Trainer, and runs (or resumes) the training.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .color import merge_l_ab, rgb_to_lab
from .data import ColorDataModule, make_split, write_split
from .losses import global_loss, local_loss
from .model import DLNet, ModelConfig

__all__ = ["TrainConfig", "ColorizationModule", "fit"]


@dataclass
class TrainConfig:
    """A training run. Defaults are the paper's: Adam 1e-3, batch 32, 224 px, 40 epochs."""

    data: list[str] = field(default_factory=list)  # folders split 80/20 per category
    extra_train: list[str] = field(default_factory=list)  # folders used for training only
    out: str = "runs/dlnet"
    encoder: str = "densenet121"
    pretrained: bool | str = False
    loss: str = "local"  # "global" (Eq. 1) or "local" (Eq. 2/21)
    clusters: int = 5
    cluster_weights: list[float] | None = None
    size: int = 224
    batch_size: int = 32
    epochs: int = 40
    max_steps: int = -1
    lr: float = 1e-3
    schedule: str = "constant"  # "constant" (the paper) or "cosine"
    precision: str = "bf16-mixed"
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    workers: int = 2
    seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.05
    val_every_steps: int | None = None  # None: validate once per epoch
    limit_val_batches: int | None = None
    resume: str | None = None  # a checkpoint path, or "last" for RUN/checkpoints/last.ckpt

    def validate(self) -> None:
        if not self.data:
            raise ValueError("no training data: give at least one --data folder")
        if self.loss not in ("global", "local"):
            raise ValueError(f"--loss must be global or local, got {self.loss!r}")
        if self.cluster_weights is not None and len(self.cluster_weights) != self.clusters:
            raise ValueError(f"--cluster-weights needs {self.clusters} values (one per cluster)")
        if self.size % 32:
            raise ValueError(f"--size must be a multiple of 32, got {self.size}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"--schedule must be constant or cosine, got {self.schedule!r}")


class ColorizationModule(L.LightningModule):
    """DL-Net + the chosen loss. Batches arrive as uint8 RGB; Lab is computed on the device."""

    def __init__(self, model: dict, loss: str = "local", clusters: int = 5,
                 cluster_weights: list[float] | None = None, lr: float = 1e-3, schedule: str = "constant") -> None:
        super().__init__()
        self.save_hyperparameters()  # "model" holds the ModelConfig: a checkpoint rebuilds itself
        self.model = DLNet(ModelConfig.from_dict(model)).to(memory_format=torch.channels_last)
        self._t_last: float | None = None

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        return self.model(l.contiguous(memory_format=torch.channels_last))

    def _lab(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        lab = rgb_to_lab(batch["rgb"].float() / 255.0)
        return lab[:, :1], lab[:, 1:]

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "global":
            return global_loss(pred, target)
        # A new k-means seed each step, reproducible from the step number.
        return local_loss(pred, target, self.hparams.clusters, self.hparams.cluster_weights, seed=self.global_step)

    def training_step(self, batch: dict, batch_idx: int):
        n = batch["rgb"].shape[0]
        if n == 0:
            return None  # every photo of this batch was skipped
        l, ab = self._lab(batch)
        loss = self._loss(self(l), ab)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        now = time.perf_counter()
        if self._t_last is not None:
            self.log("train/img_per_s", n / (now - self._t_last), prog_bar=True, batch_size=n)
        self._t_last = now
        skipped = batch["skipped_bad"] + batch["skipped_grey"]
        if skipped:
            self.log("train/skipped", float(skipped), reduce_fx="sum", batch_size=n)
        return loss

    def on_train_start(self) -> None:
        # A run resumed with a new --max-steps: bend the cosine schedule to end at the new last
        # step. CosineAnnealingLR updates multiplicatively from the current rate, so this
        # continues smoothly from where the run stopped down to 0 at the new end.
        if self.hparams.schedule == "cosine":
            for config in self.trainer.lr_scheduler_configs:
                config.scheduler.T_max = int(self.trainer.estimated_stepping_batches)

    def on_train_epoch_start(self) -> None:
        self._t_last = None  # don't count the data-loader start-up as a slow step

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        from .metrics import psnr, ssim

        n = batch["rgb"].shape[0]
        if n == 0:
            return
        l, ab = self._lab(batch)
        pred = self(l).float()
        self.log("val/loss", self._loss(pred, ab), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/mse_ab", global_loss(pred, ab), batch_size=n, sync_dist=True)
        out, truth = merge_l_ab(l, pred), batch["rgb"].float() / 255.0
        self.log("val/psnr", psnr(out, truth).mean(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/ssim", ssim(out, truth).mean(), batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        if self.hparams.schedule == "constant":
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file and rename it: a crash or a full disk never
    leaves a truncated ``last.ckpt`` where the previous good one was."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        get_filesystem(path).makedirs(str(path.parent), exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def fit(cfg: TrainConfig) -> Path:
    """Run (or resume) a training run; returns the run folder."""
    cfg.validate()
    out = Path(cfg.out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    split = make_split(cfg.data, cfg.test_fraction, cfg.val_fraction, cfg.seed, cfg.extra_train)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_split(split, out / "split")
        (out / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    data = ColorDataModule(split, cfg.size, cfg.batch_size, cfg.workers)
    model_cfg = ModelConfig(encoder=cfg.encoder, pretrained=cfg.pretrained)
    module = ColorizationModule(model_cfg.to_dict(), cfg.loss, cfg.clusters, cfg.cluster_weights, cfg.lr, cfg.schedule)
    # Two callbacks, because ModelCheckpoint(save_last=True) refreshes last.ckpt only when the
    # monitored score improves: a run whose validation loss stalls would resume from far back.
    best = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min",
                           save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    last = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           every_n_train_steps=cfg.val_every_steps, enable_version_counter=False,
                           save_on_train_epoch_end=True)
    trainer = L.Trainer(
        default_root_dir=out, max_epochs=cfg.epochs, max_steps=cfg.max_steps, precision=cfg.precision,
        accelerator=cfg.accelerator, devices=_devices(cfg.devices), num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        # CSV: a new logs/version_N per (re)start, because CSVLogger deletes an existing metrics.csv.
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tensorboard", version="")],
        callbacks=[best, last, RichProgressBar(), LearningRateMonitor("step")],
        plugins=[AtomicCheckpointIO()], val_check_interval=cfg.val_every_steps,
        check_val_every_n_epoch=None if cfg.val_every_steps else 1, limit_val_batches=cfg.limit_val_batches,
        log_every_n_steps=10, deterministic=False,
    )
    resume = cfg.resume
    if resume == "last":
        resume = str(out / "checkpoints" / "last.ckpt")
    if resume and not Path(resume).is_file():
        raise FileNotFoundError(f"{resume}: no checkpoint to resume from")
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    # The final state, whatever the periodic checkpoints last caught (also after Ctrl-C, which
    # Lightning turns into a clean stop): --resume continues exactly from here.
    trainer.save_checkpoint(out / "checkpoints" / "last.ckpt")
    return out
