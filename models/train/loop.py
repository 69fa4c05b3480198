"""The training loop every trainer shares: cosine-decayed Adam, checkpoints, resume, best-so-far.

A run lives in ``runs/<name>/``: ``last.pt`` (model, optimiser, iteration, best score: re-running
the same command resumes from it), ``best.pt`` (the weights with the best first validation score),
``log.tsv`` (iteration, mean loss, learning rate, the validation scores) and, at the end,
``config.json``.  Checkpoints are written to a temporary name and renamed, so a run killed while
saving keeps its previous ``last.pt``.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Schedule:
    iters: int
    lr: float
    lr_min: float
    ckpt_every: int

    def lr_at(self, it: int) -> float:
        """Cosine decay from ``lr`` at iteration 0 to ``lr_min`` at ``iters``."""
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * it / self.iters))


def run_config(args) -> dict:
    """The command's arguments as JSON-able values (paths as strings), stored in every checkpoint."""
    def plain(v):
        if isinstance(v, pathlib.Path):
            return str(v)
        return [plain(x) for x in v] if isinstance(v, list | tuple) else v

    return {k: plain(v) for k, v in vars(args).items()}


def start_run(args, tool: str, list_images: Callable) -> tuple[pathlib.Path, dict, list[pathlib.Path]]:
    """What every trainer does first: threads and seed set, ``runs/<name>`` made, the config
    recorded, and the images listed (more than ``--val-count`` of them, or exit with why)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = args.runs / args.name
    run.mkdir(parents=True, exist_ok=True)
    files = list_images(args.data)
    if len(files) <= args.val_count:
        sys.exit(f"{tool}: only {len(files)} images under {args.data}; need more than --val-count")
    return run, run_config(args), files


def resume(run: pathlib.Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """Load ``run/last.pt`` into ``model`` and ``opt`` if it exists: (start iteration, best score)."""
    last = run / "last.pt"
    if not last.exists():
        return 0, -math.inf
    state = torch.load(last, map_location="cpu")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    return state["iter"], state["best"]


def load_weights(checkpoint: pathlib.Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors by name; from a shipped ONNX model, its initialisers (the exporter keeps
    the module's parameter names), so a fine-tune can start from a model whose run is gone."""
    if checkpoint.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(checkpoint).graph
        return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    return torch.load(checkpoint, map_location="cpu")["model"]


def begin(run: pathlib.Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sampler, seed: int,
          init: pathlib.Path | None = None) -> tuple[int, float]:
    """Resume ``run`` where it stopped (the sampler reseeded for that iteration), or, for a new run
    with ``init``, start from another run's weights or a shipped ONNX file of the same network (a
    fine-tune: not its optimizer or count).
    Returns (start iteration, best score so far)."""
    start, best = resume(run, model, opt)
    if start:
        reseed(sampler, seed, start)
        print(f"resumed at iteration {start} (best val {best:.3f} dB)", flush=True)
    elif init is not None:
        model.load_state_dict(load_weights(init))
        print(f"initialised from {init}", flush=True)
    return start, best


def fit(model: torch.nn.Module, opt: torch.optim.Optimizer, step: Callable[[], torch.Tensor],
        validate: Callable[[], list[tuple[str, str, float]]], run: pathlib.Path, schedule: Schedule,
        state: dict, start: int = 0, best: float = -math.inf) -> float:
    """Train from iteration ``start`` to ``schedule.iters``; returns the best first validation score.

    step: one batch's loss (the loop does backward and the optimiser step).
    validate: [(checkpoint key, label printed, score in dB), ...], called every ``ckpt_every``
        iterations and at the end; the first score picks ``best.pt``.
    state: what every checkpoint carries besides the weights (arch, arch_kwargs, config).
    """
    log = open(run / "log.tsv", "a")
    t0, running = time.time(), 0.0
    for it in range(start, schedule.iters):
        lr = schedule.lr_at(it)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = step()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.item()
        done = it + 1
        if done % schedule.ckpt_every == 0 or done == schedule.iters:
            model.eval()
            with torch.no_grad():
                scores = validate()
            model.train()
            rate = schedule.ckpt_every / (time.time() - t0)
            shown = " ".join(f"{label} {value:.3f} dB" for _, label, value in scores)
            print(f"iter {done} loss {running / schedule.ckpt_every:.5f} lr {lr:.2e} {shown} ({rate:.2f} it/s)",
                  flush=True)
            log.write("\t".join([str(done), f"{running / schedule.ckpt_every:.6f}", f"{lr:.3e}"]
                                + [f"{v:.4f}" for _, _, v in scores]) + "\n")
            log.flush()
            ckpt = {"model": model.state_dict(), **state, "iter": done, **{k: v for k, _, v in scores}}
            if scores[0][2] > best:
                best = scores[0][2]
                torch.save(ckpt, run / "best.pt")
            ckpt.update(opt=opt.state_dict(), best=best)
            torch.save(ckpt, run / "tmp.pt")
            (run / "tmp.pt").replace(run / "last.pt")
            running, t0 = 0.0, time.time()
    (run / "config.json").write_text(json.dumps(state["config"], indent=2))
    return best


def reseed(sampler, seed: int, start: int) -> None:
    """A resumed run draws new batches, not the ones it already trained on."""
    sampler.rng = np.random.default_rng(seed + start)
