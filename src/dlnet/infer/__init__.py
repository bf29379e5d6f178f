"""The one inference path: photos and films in, 8-bit colour out, for every app and the evaluation.

:mod:`dlnet.infer.options` says what a call does; :mod:`dlnet.infer.pipeline` (torch-free) groups
photos by working shape and, with :mod:`dlnet.color.fullres`, turns full-resolution L* and the
model's working-size a*b* into 8-bit sRGB; the model step runs in PyTorch
(:mod:`dlnet.infer.colorizer`) or onnxruntime (:mod:`dlnet.infer.onnxrun`, the ONNX graph made by
:mod:`dlnet.infer.export`); films go frame by frame (:mod:`dlnet.infer.video`) with colour
smoothed over time (:mod:`dlnet.infer.temporal`). This ``__init__`` imports nothing, so the
ONNX path never loads torch.
"""
