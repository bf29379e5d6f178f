"""Colour: sRGB <-> CIE L*a*b*, the a*b* bins and prior, k-means, and rebalancing after prediction.

The model sees L* and predicts a*b*; :mod:`dlnet.color.lab` converts batched tensors (kornia),
:mod:`dlnet.color.fullres` full-resolution photos in NumPy (L* in, 8-bit sRGB out, torch-free),
:mod:`dlnet.color.metrics` scores colour photos against the truth (PSNR, SSIM, colourfulness, hue
spread; for evaluation and training's validation),
:mod:`dlnet.color.abbins` quantises a*b* (the colour prior, rebalancing weights, the annealed
mean), :mod:`dlnet.color.kmeans` clusters them (the local loss, rebalancing) and
:mod:`dlnet.color.rebalance` saturates washed-out predictions (its parameters, torch-free, in
:mod:`dlnet.color.rebalance_config`). This ``__init__`` imports nothing, so torch is loaded only
by the modules that need it.
"""
