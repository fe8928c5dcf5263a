"""Latency: model families, their ONNX graphs, and measuring them with ONNX Runtime (NNLQ-style).

* :mod:`nnformer.latency.families`: ten model families in plain PyTorch (ResNet, VGG, MobileNetV2/V3, MnasNet,
  EfficientNet, AlexNet, SqueezeNet, GoogLeNet, NAS-Bench-201 networks), sampled reproducibly from a seed;
* :mod:`nnformer.latency.onnx_graph`: an ONNX model -> :class:`~nnformer.graph.ArchGraph` with per-node features
  (op names ``onnx:<OpType>``, encoded with :data:`nnformer.vocab.ONNX`);
* :mod:`nnformer.latency.profiler`: ONNX Runtime CPU timing and resumable latency datasets;
* :mod:`nnformer.latency.cli`: the ``nnformer profile`` verb.

Nothing is imported here: torch, onnx and onnxruntime load only with the module that needs them.
"""
