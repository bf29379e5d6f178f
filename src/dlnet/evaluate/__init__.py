"""Evaluation: the 8-bit photos a user gets, scored against the ground truth, with the grey baseline.

:mod:`dlnet.evaluate.config` is what an evaluation is asked to do (every ``dlnet evaluate``
flag); :mod:`dlnet.evaluate.protocol` finds the truth photos, colorizes them through the inference path
(:mod:`dlnet.infer`) and scores every method; :mod:`dlnet.color.metrics` holds the per-image
metrics (PSNR, SSIM, MSE, colourfulness, hue spread, colour bias) and
:mod:`dlnet.evaluate.report` the bootstrap intervals, the CSV, the Markdown report and the grid.
This ``__init__`` imports nothing.
"""
