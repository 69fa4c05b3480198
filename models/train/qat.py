"""Quantisation-aware fine-tuning: teach a float network the int8 file it will become.

``models.train.quantize`` makes an int8 twin by ONNX Runtime static quantisation (QDQ): every
convolution's weights int8 per output channel (symmetric), every activation entering a quantised
operator uint8 per tensor (asymmetric, its range the min/max over calibration patches), the tail
(the last convolution, the anchor's add, the pixel shuffle) float.  A network trained in float
has never seen those 8-bit steps; where its output should be flat (a defocused background, a
smooth sky) they come out as grain.

``prepare`` swaps each ``nn.Conv2d`` and ``nn.ReLU`` for a module that rounds as that file will
(``torch.fake_quantize_*``: a straight-through gradient inside the range, none outside), so the
fine-tune learns weights whose rounded network is the good one.  The tail convolution and the
anchor stay float, as the int8 file keeps them (``quantize.float_inputs``).  Activation ranges are
measured as the quantiser measures them, min/max over the patches it calibrates on, and measured
again every ``every`` iterations as the weights move (``Rounding``).  The modules keep their
parameter names and store nothing else, so a checkpoint loads into the plain network and exports
as usual; the int8 file is then made from it by ``models.train.quantize --source``.
"""

from __future__ import annotations

import torch
from torch import nn


class _Range(nn.Module):
    """An 8-bit rounding point: min/max measured while ``observing``, else uint8 steps over that range."""

    def setup_range(self) -> None:
        self.register_buffer("lo", torch.zeros(()), persistent=False)
        self.register_buffer("hi", torch.zeros(()), persistent=False)
        self.observing = False

    def rounded(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:  # calibration: the range, as ONNX Runtime's MinMax calibrator takes it
            self.lo = torch.minimum(self.lo, x.detach().min())
            self.hi = torch.maximum(self.hi, x.detach().max())
            return x
        lo, hi = float(self.lo.clamp(max=0.0)), float(self.hi.clamp(min=0.0))
        if hi - lo <= 0:
            return x
        scale = (hi - lo) / 255.0
        return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-lo / scale)), 0, 255)


class QReLU(nn.ReLU, _Range):
    """A ReLU whose output is rounded (ONNX Runtime folds the ReLU into the convolution before it and
    quantises the result over [0, max])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rounded(torch.relu(x))


class QConv2d(nn.Conv2d, _Range):
    """``nn.Conv2d`` whose input is rounded to uint8 steps over its measured range, whose weights are
    rounded to int8 per output channel, and whose output is rounded too when a quantised operator
    other than a ReLU takes it (an add, the next block); the float tail rounds nothing."""

    def setup(self, quantise_weights: bool, quantise_output: bool) -> None:
        self.quantise_weights = self.quantise_input = quantise_weights
        self.setup_range()
        self.out = _Range() if quantise_output else None
        if self.out is not None:
            self.out.setup_range()

    def _weight(self) -> torch.Tensor:
        w = self.weight
        if not self.quantise_weights or self.observing:
            return w
        scale = (w.detach().abs().amax(dim=(1, 2, 3)) / 127.5).clamp_min(1e-12).float()
        zero = torch.zeros(w.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -128, 127)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(self.rounded(x) if self.quantise_input else x, self._weight(), self.bias)
        return self.out.rounded(y) if self.out is not None else y


def prepare(model: nn.Module, float_output: bool = True, float_input: bool = False) -> list[QConv2d]:
    """Turn ``model``'s ``nn.Conv2d`` and ``nn.ReLU`` modules into ``QConv2d`` and ``QReLU`` in place
    (the same parameters): the rounding points of the int8 file.  ``float_output``: the convolutions
    that write the output pixels (the architecture's ``output_convs``: the tail, and the demosaic's
    Malvar anchor) stay float, input, weights and output, as ``models.train.quantize`` leaves them
    (``tail_nodes``, ``float_inputs``); so does an anchor no convolution module computes.
    ``float_input``: the convolutions that take the image in (``input_convs``) keep float weights
    and an unrounded input, their output rounded (``quantize --float-head``).  A convolution a ReLU
    follows leaves the rounding to the ReLU."""
    named = dict(model.named_modules())
    kept = [named[n] for n in getattr(model, "output_convs", ())] if float_output else []
    heads = [named[n] for n in getattr(model, "input_convs", ())] if float_input else []
    convs = []
    for module in list(model.modules()):
        children = list(module.children())
        for i, child in enumerate(children):
            if type(child) is nn.ReLU:
                child.__class__ = QReLU
                child.setup_range()
            elif type(child) is nn.Conv2d:
                relu_next = i + 1 < len(children) and type(children[i + 1]) in (nn.ReLU, QReLU)
                child.__class__ = QConv2d
                child.setup(quantise_weights=True, quantise_output=not relu_next)
                convs.append(child)
    for conv in kept + heads:
        conv.quantise_weights = conv.quantise_input = False
    for conv in kept:
        conv.out = None
    return convs


class Rounding:
    """A trainer's quantisation-aware mode: ``model`` prepared (``prepare``) and its ranges measured on
    ``calib``; ``tick()`` before each training step measures them again every ``every`` steps, as
    the weights move."""

    def __init__(self, model: nn.Module, calib: list[torch.Tensor], every: int, float_input: bool = False):
        self.model, self.calib, self.every, self.count = model, calib, every, 0
        convs = prepare(model, float_input=float_input)
        calibrate(model, calib)
        kept = len(getattr(model, "output_convs", ())) + (len(getattr(model, "input_convs", ())) if float_input else 0)
        print(f"quantisation-aware: {len(convs)} convolutions ({kept} float) and their activations, "
              f"ranges from {sum(len(b) for b in calib)} patches every {every} iterations", flush=True)

    def tick(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            calibrate(self.model, self.calib)


def calibration_batches(model_name: str | None, data: list, pairs, scale: int, patch: int, seed: int,
                        count: int = 48) -> list[torch.Tensor]:
    """The patches the ranges are measured on: with ``model_name``, those ``models.train.quantize``
    will calibrate that model's int8 file on (its defaults: ``count`` crops of 96 input pixels from
    the training folders ``data``, fed as the engine feeds them), so the fine-tune rounds as the file
    will; else ``count`` training patches of the run itself."""
    if model_name:
        from models.train.quantize import _images, calibration_inputs
        from truepix.engine import models

        inputs = calibration_inputs(models.get_model(model_name), _images(list(data)), count, 96)
        return [torch.from_numpy(x) for x in inputs]
    from models.train.data import PatchSampler

    sampler = PatchSampler(pairs, scale, patch, seed=seed + 7919)
    return [torch.from_numpy(sampler.batch(count)[0])]


def _points(model: nn.Module) -> list[_Range]:
    return [m for m in model.modules() if isinstance(m, _Range)]


@torch.no_grad()
def calibrate(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Measure every rounding point's range (min/max over ``batches``), the network run in float."""
    points = _points(model)
    was_training = model.training
    model.eval()
    for m in points:
        m.lo = torch.full((), float("inf"))
        m.hi = torch.full((), float("-inf"))
        m.observing = True
    try:
        for x in batches:
            model(x)
    finally:
        for m in points:
            m.observing = False
    model.train(was_training)
