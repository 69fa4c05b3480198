"""Training code for truepix's models (needs the ``train`` extra: torch, onnx)."""
