"""Files in and out, where the data path starts and ends: photos decoded into RGB and written back.

:mod:`dlnet.io.imageio` is the one photo reader (every mode, EXIF orientation, 16-bit, alpha
kept aside, one-line errors) of inference, training, evaluation and packing, and the one writer
(format, ICC profile, EXIF and alpha kept); :mod:`dlnet.io.atomic` is the one atomic write behind
every file dlnet writes whole. Nothing here imports torch.
"""
