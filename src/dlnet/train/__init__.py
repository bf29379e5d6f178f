"""Training: photos split and loaded, the paper's losses, and the Lightning run around them.

:mod:`dlnet.train.data` splits photo folders 80/20 per category and loads photos through the one
reader (:mod:`dlnet.io.imageio`); :mod:`dlnet.train.packed` packs them into one file decoded once
and augmented on the device; :mod:`dlnet.train.losses` holds the global, local, rebalanced and
classification losses; :mod:`dlnet.train.config` is the run's config (every ``dlnet train`` flag,
torch-free); :mod:`dlnet.train.training` is the LightningModule and the Trainer. This ``__init__`` imports nothing (Lightning and torch load with the modules).
"""
