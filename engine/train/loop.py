"""The one training loop every task uses: ``fit(model, train_ds, val_ds, config=..., ...) -> FitResult``.

What it does, so tasks do not have to:

- AdamW with linear warm-up then cosine decay (per optimiser step), gradient clipping and accumulation.
- Deterministic seeding (re-seeded at the start of every epoch, so a resumed run repeats the same batches).
- Mixed precision on CUDA (bfloat16 where supported, else float16 + GradScaler); full precision on CPU.
- DDP when launched under ``torchrun`` (``WORLD_SIZE > 1``): gloo on CPU, NCCL on CUDA, a DistributedSampler
  for training, validation sharded without padding and gathered on every rank; only rank 0 writes files.
- Resume from ``out_dir/last.pt`` after a crash (a plain-data dict, loaded with ``weights_only=True``).
- Outputs in ``out_dir``: ``metrics.csv`` (one row per epoch), ``learning_curves.png``, ``config.toml``
  (the resolved config), ``best.pt`` + ``best.card.json`` (engine.models.checkpoint format; the card merges
  the caller's card with the measured metrics, the command line and the config), ``last.pt`` (resume state).
- tqdm progress on the console (rank 0, only when stderr is a terminal), plus the engine's
  ``progress(fraction, message)`` / ``cancel`` convention (a cancelled run raises ``engine.progress.Cancelled``
  between batches; ``last.pt`` of the completed epochs stays, so the run can be resumed).

The contract with a task (all four are plain callables; the task module owns them):

- Dataset items are dicts (``{"image": (C, H, W) float tensor, "label": int, "id": str, ...}``); the
  default collate makes batches = dicts of tensors (strings become lists).
- ``forward(model, batch) -> outputs`` (any tensor / tuple / dict of tensors). Default:
  ``model(batch["image"])``. ``batch`` is already on the training device.
- ``loss_fn(outputs, batch) -> scalar tensor``.
- ``metrics_fn(outputs, batch) -> dict[str, float]`` is called once per epoch on the *whole* validation set:
  ``outputs`` and ``batch`` are the per-batch values concatenated along dim 0 (tensors on CPU, float32;
  lists of strings joined). ``val_loss`` is always added (the mean of ``loss_fn`` over the validation
  batches); ``train_loss`` and ``lr`` too. ``monitor`` names one of those keys; ``mode`` is "max" or "min".
  A ``metrics_fn`` may instead be an object with ``reset()``, ``update(outputs, batch)`` and
  ``compute() -> dict`` to stream over large validation sets (then, under DDP, rank 0 validates alone).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import math
import os
import platform
import random
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from engine.models.checkpoint import atomic_write_bytes, save_checkpoint
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.resources import is_frozen
from engine.train.config import TrainConfig, write_config

log = logging.getLogger(__name__)

STATE_FORMAT = "glaucoma-viewer-train-state/1"
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
METRICS_NAME = "metrics.csv"
CURVES_NAME = "learning_curves.png"
CURVES_EVERY_S = 60.0
CONFIG_NAME = "config.toml"

Batch = dict[str, Any]
ForwardFn = Callable[[nn.Module, Batch], Any]
LossFn = Callable[[Any, Batch], torch.Tensor]
MetricsFn = Callable[[Any, Batch], Mapping[str, float]]


class TrainingError(RuntimeError):
    """A run cannot start or continue (bad monitor, incompatible resume state, non-finite loss). User-readable."""


@dataclass
class FitResult:
    """What ``fit`` returns (identical on every DDP rank).

    Attributes:
        best_epoch: 1-based epoch whose validation ``monitor`` was best.
        best_metrics: all metrics of that epoch (``val_loss``, ``train_loss``, ``lr`` and the task's own).
        checkpoint_path: ``out_dir/best.pt`` (its card is ``best.card.json``).
        history: one dict per completed epoch: ``epoch``, ``train_loss``, ``val_loss``, ``lr``,
            ``epoch_time_s``, ``samples_per_s`` and the task metrics.
        stopped_early: True when ``patience`` ended the run before ``config.epochs``.
    """

    best_epoch: int
    best_metrics: dict[str, float]
    checkpoint_path: Path
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


# ---------------------------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    """Rank layout of this process. ``world_size == 1`` means plain single-process training."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    created_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; otherwise ``torch.device(name)``."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("device 'cuda' requested but CUDA is not available (use --device cpu)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
    return device


def setup_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=_dt.timedelta(minutes=30))
        created = True
    return DistInfo(rank=dist.get_rank(), local_rank=local, world_size=dist.get_world_size(), created_group=created)


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def _broadcast_object(info: DistInfo, obj: Any) -> Any:
    if not info.enabled:
        return obj
    import torch.distributed as dist

    holder = [obj if info.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def _all_gather_object(info: DistInfo, obj: Any) -> list[Any]:
    if not info.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def _all_reduce_sum(info: DistInfo, values: Sequence[float], device: torch.device) -> list[float]:
    if not info.enabled:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


class _ShardSampler(torch.utils.data.Sampler[int]):
    """Every ``world``-th index from ``rank`` on: validation without the padding DistributedSampler adds."""

    def __init__(self, length: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, length, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# ---------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices); optionally ask for deterministic kernels (warn-only)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True


def seed_transforms(dataset: Any, seed: int) -> None:
    """Re-seed every MONAI random transform reachable from ``dataset`` (MONAI transforms keep their own
    ``RandomState``, which ``torch.manual_seed`` does not touch). No-op without MONAI."""
    try:
        from monai.data.utils import set_rnd
    except ImportError:  # pragma: no cover - MONAI is a dependency
        return
    set_rnd(dataset, seed % (2**32))


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % (2**32)  # base seed (from the epoch-seeded generator) + worker id
    random.seed(seed)
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        seed_transforms(info.dataset, seed)


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts / lists / tuples to ``device`` (others are returned as is)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj


def _detach_cpu(obj: Any) -> Any:
    """Detached float32 CPU copies of every tensor (floating point only is cast), recursively."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if hasattr(t, "as_tensor"):  # MONAI MetaTensor -> plain tensor
            t = t.as_tensor()
        if t.is_floating_point():
            t = t.float()
        return t.cpu()
    if isinstance(obj, Mapping):
        return {k: _detach_cpu(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_detach_cpu(v) for v in obj)
    if isinstance(obj, list):
        return [_detach_cpu(v) for v in obj]
    return obj


def concat_batches(parts: Sequence[Any]) -> Any:
    """Join per-batch values along dim 0: tensors by ``torch.cat`` (0-d ones stacked), lists concatenated,
    dicts / tuples element-wise; anything else is kept as the list of per-batch values."""
    if not parts:
        return None
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if first.dim() == 0:
            return torch.stack(list(parts))
        return torch.cat(list(parts), dim=0)
    if isinstance(first, Mapping):
        return {k: concat_batches([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple):
        return tuple(concat_batches([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, list):
        return [x for p in parts for x in p]
    return list(parts)


def cosine_warmup_lambda(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear 1/(w)..1 over ``warmup_steps``, then cosine from 1 to ``min_ratio`` at ``total_steps``."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps - 1) if total_steps > 1 else 0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(1.0, progress)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _amp_dtype(device: torch.device, enabled: bool) -> Optional[torch.dtype]:
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _is_streaming(metrics_fn: Any) -> bool:
    return all(hasattr(metrics_fn, name) for name in ("reset", "update", "compute"))


def _better(value: float, best: Optional[float], mode: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _tqdm(iterable: Any, *, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None, leave=False, dynamic_ncols=True, **kwargs)


def command_line() -> str:
    """The command that started this process, shell-quoted (``python -m engine train ...`` or a script)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("engine", "__main__.py")):
        argv = [Path(sys.executable).name, "-m", "engine", *argv[1:]]
    return shlex.join(argv)


# ---------------------------------------------------------------------------------------------- outputs
def write_metrics_csv(history: Sequence[Mapping[str, float]], path: Path) -> None:
    """One row per epoch; columns: epoch, losses, lr, timing, then the task metrics in first-seen order."""
    import io

    columns: list[str] = []
    for row in history:
        for key in row:
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def plot_learning_curves(history: Sequence[Mapping[str, float]], path: Path, monitor: str) -> None:
    """Loss curves (left) and the monitored metric (right) against epoch, as a PNG (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_metric = fig.subplots(1, 2)
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        ys = [row.get(key, float("nan")) for row in history]
        if any(math.isfinite(y) for y in ys):
            ax_loss.plot(epochs, ys, style, label=key, markersize=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="best")
    ax_loss.grid(alpha=0.3)
    if monitor not in ("train_loss", "val_loss"):
        ys = [row.get(monitor, float("nan")) for row in history]
        ax_metric.plot(epochs, ys, "-o", color="tab:green", label=monitor, markersize=3)
    lrs = [row.get("lr", float("nan")) for row in history]
    ax_lr = ax_metric.twinx()
    ax_lr.plot(epochs, lrs, ":", color="tab:gray", label="lr")
    ax_lr.set_ylabel("lr")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(monitor)
    ax_metric.grid(alpha=0.3)
    handles = ax_metric.get_legend_handles_labels()
    more = ax_lr.get_legend_handles_labels()
    ax_metric.legend(handles[0] + more[0], handles[1] + more[1], loc="best")
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def _save_state(path: Path, state: dict[str, Any]) -> None:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    """Read a ``last.pt`` resume state safely (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainingError(
            f"{path}: cannot read the resume state ({type(err).__name__}: {err}); delete it to start afresh"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path}: not a training state written by this engine (expected {STATE_FORMAT})")
    return state


def _plain(obj: Any) -> Any:
    """Coerce metric values to JSON-able Python scalars."""
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------- the loop
def _default_forward(model: nn.Module, batch: Batch) -> Any:
    if "image" not in batch:
        raise TrainingError(
            f"batch has no 'image' key (keys: {sorted(batch)}); pass forward=... to fit() for this task"
        )
    return model(batch["image"])


def fit(
    model: nn.Module,
    train_ds: torch.utils.data.Dataset,
    val_ds: Optional[torch.utils.data.Dataset],
    *,
    config: TrainConfig,
    loss_fn: LossFn,
    metrics_fn: Optional[MetricsFn],
    monitor: str,
    mode: str,
    spec: Mapping[str, Any],
    card: Mapping[str, Any],
    out_dir: Union[str, Path],
    forward: Optional[ForwardFn] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
) -> FitResult:
    """Train ``model`` on ``train_ds``, validate on ``val_ds`` each epoch, keep the best by ``monitor``.

    Args:
        model: an ``nn.Module`` built from ``spec`` (fit moves it to the device and, under DDP, wraps it).
            On return it holds the *best* weights (on the training device, unwrapped).
        train_ds, val_ds: map-style datasets of dict items. ``val_ds`` may be None: then the monitor must be
            ``train_loss`` (mode "min") and the last epoch's weights are kept.
        config: every hyper-parameter (engine.train.config.TrainConfig).
        loss_fn: ``(outputs, batch) -> scalar tensor``.
        metrics_fn: ``(outputs, batch) -> {name: float}`` over the whole validation set, or a streaming
            object with reset/update/compute, or None (only the losses are tracked).
        monitor, mode: the key of the metrics dict that picks the best epoch and whether higher ("max") or
            lower ("min") is better.
        spec: how to rebuild the network (saved in ``best.pt``; see engine.models.checkpoint).
        card: the caller's model card (name, task, data description ...); fit adds ``metrics``, ``training``.
        out_dir: created if needed; holds every output (see the module docstring). Resumed from when it
            holds ``last.pt`` and ``config.resume`` is true.
        forward: ``(model, batch) -> outputs``; default ``model(batch["image"])``.
        progress, cancel: the engine convention (engine.progress).
        on_epoch: optional hook called on every rank with each finished epoch's metrics row, after the
            epoch's files are written (Optuna pruning raises ``optuna.TrialPruned`` from it).

    Returns:
        FitResult (the same on every rank).

    Raises:
        TrainingError: unknown monitor / mode, non-finite training loss, incompatible resume state.
        engine.progress.Cancelled: ``cancel`` was set (between batches).
    """
    if mode not in ("max", "min"):
        raise TrainingError(f"mode must be 'max' or 'min', got {mode!r}")
    config = config.validate()
    if val_ds is None and monitor != "train_loss":
        raise TrainingError(f"no validation set: monitor must be 'train_loss' (got {monitor!r})")
    if val_ds is not None and len(val_ds) == 0:
        raise TrainingError("the validation set is empty")
    if len(train_ds) == 0:
        raise TrainingError("the training set is empty")
    forward = forward or _default_forward
    out_dir = Path(out_dir)

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    info = setup_distributed(device)
    try:
        return _fit(
            model, train_ds, val_ds, config=config, loss_fn=loss_fn, metrics_fn=metrics_fn, monitor=monitor,
            mode=mode, spec=spec, card=card, out_dir=out_dir, forward=forward, progress=progress,
            cancel=cancel, device=device, info=info, on_epoch=on_epoch,
        )
    finally:
        if info.created_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _fit(
    model: nn.Module,
    train_ds: Any,
    val_ds: Any,
    *,
    config: TrainConfig,
    loss_fn: LossFn,
    metrics_fn: Any,
    monitor: str,
    mode: str,
    spec: Mapping[str, Any],
    card: Mapping[str, Any],
    out_dir: Path,
    forward: ForwardFn,
    progress: Optional[ProgressCallback],
    cancel: Optional[CancelToken],
    device: torch.device,
    info: DistInfo,
    on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
) -> FitResult:
    from torch.utils.data import DataLoader, DistributedSampler

    started = time.perf_counter()
    curves_drawn = started
    seed_everything(config.seed, config.deterministic)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, out_dir / CONFIG_NAME, header=f"resolved config of: {command_line()}")
    _barrier(info)

    # ---- model, optimiser, schedule
    model = model.to(device)
    if info.enabled and config.sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.find_unused_parameters,
        )
        net: nn.Module = ddp
    else:
        net = model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the model has no trainable parameters")
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # biases and norm scales: no weight decay
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=tuple(config.betas),
    )

    # ---- data
    generator = torch.Generator()
    generator.manual_seed(config.seed)
    pin = device.type == "cuda"
    num_workers = 0 if is_frozen() else config.num_workers  # no worker processes inside a frozen app
    workers = dict(
        num_workers=num_workers,
        pin_memory=pin,
        worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=False,  # fresh workers each epoch: re-seeded, so a resumed run repeats its batches
    )
    if info.enabled:
        train_sampler: Any = DistributedSampler(
            train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=config.seed
        )
        train_loader = DataLoader(
            train_ds, batch_size=config.batch_size, sampler=train_sampler, drop_last=False, **workers
        )
    else:
        train_sampler = None
        train_loader = DataLoader(
            train_ds, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False, **workers
        )
    streaming = metrics_fn is not None and _is_streaming(metrics_fn)
    val_loader = None
    validate_here = True
    if val_ds is not None:
        if info.enabled and not streaming:
            val_sampler: Any = _ShardSampler(len(val_ds), info.rank, info.world_size)
        elif info.enabled:  # streaming metrics: rank 0 validates the whole set alone
            validate_here = info.is_main
            val_sampler = None
        else:
            val_sampler = None
        val_loader = DataLoader(
            val_ds, batch_size=config.val_batch_size or config.batch_size, sampler=val_sampler, shuffle=False,
            **workers,
        )

    steps_per_epoch = max(1, math.ceil(len(train_loader) / config.accumulate))
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_warmup_lambda(total_steps, warmup_steps, config.min_lr_ratio)
    )
    amp_dtype = _amp_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    # ---- resume
    history: list[dict[str, float]] = []
    best_value: Optional[float] = None
    best_epoch = 0
    best_metrics: dict[str, float] = {}
    bad_epochs = 0
    start_epoch = 0
    stopped_early_before = False
    last_path = out_dir / LAST_NAME
    best_path = out_dir / BEST_NAME
    if config.resume and last_path.is_file():
        state = load_state(last_path)
        if state.get("stopped_early"):
            stopped_early_before = True
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise TrainingError(
                f"{last_path}: the saved state does not fit this model/optimiser ({str(err).splitlines()[0]}); "
                "use another --out folder or delete last.pt"
            ) from None
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = [dict(row) for row in state.get("history", [])]
        best_value = state.get("best_value")
        best_epoch = int(state.get("best_epoch", 0))
        best_metrics = dict(state.get("best_metrics", {}))
        bad_epochs = int(state.get("bad_epochs", 0))
        start_epoch = int(state["epoch"])
        # the schedule is a pure function of the step: rebuild it for the (possibly changed) epoch count
        for group in optimizer.param_groups:
            group["lr"] = config.lr
            group["initial_lr"] = config.lr
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, cosine_warmup_lambda(total_steps, warmup_steps, config.min_lr_ratio),
            last_epoch=start_epoch * steps_per_epoch - 1,
        )
        # LambdaLR(last_epoch=k) does not apply factor(k+1) to the groups itself: set it
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * scheduler.lr_lambdas[0](start_epoch * steps_per_epoch)
        if info.is_main:
            log.info("resuming %s from epoch %d of %d", out_dir, start_epoch, config.epochs)
    if stopped_early_before:
        start_epoch = config.epochs  # an early-stopped run is finished

    def _state(epoch: int, stopped: bool) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "epoch": epoch,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "history": history,
            "best_value": best_value,
            "best_epoch": best_epoch,
            "best_metrics": best_metrics,
            "bad_epochs": bad_epochs,
            "stopped_early": stopped,
            "config": config.to_dict(),
        }

    total_batches = max(1, len(train_loader) + (len(val_loader) if val_loader is not None else 0))
    total_units = max(1, (config.epochs - start_epoch) * total_batches)
    units_done = 0
    stopped_early = False
    show_bar = info.is_main

    for epoch in range(start_epoch, config.epochs):
        check(cancel)
        epoch_start = time.perf_counter()
        seed_everything(config.seed + epoch, config.deterministic)
        generator.manual_seed(config.seed + epoch)
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        if num_workers == 0:
            seed_transforms(train_ds, (config.seed + epoch) * 1000 + info.rank)

        # ---- train
        net.train()
        loss_sum = 0.0
        sample_count = 0
        optimizer.zero_grad(set_to_none=True)
        last_lr = optimizer.param_groups[0]["lr"]
        bar = _tqdm(train_loader, enabled=show_bar, desc=f"epoch {epoch + 1}/{config.epochs} train")
        n_batches = len(train_loader)
        for i, batch in enumerate(bar):
            check(cancel)
            batch = to_device(batch, device)
            last_micro = (i + 1) % config.accumulate == 0 or (i + 1) == n_batches
            sync_ctx = net.no_sync() if (info.enabled and not last_micro) else _nullcontext()
            with sync_ctx:
                with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    outputs = forward(net, batch)
                    loss = loss_fn(outputs, batch)
                if not torch.isfinite(loss.detach()):
                    raise TrainingError(
                        f"epoch {epoch + 1}, batch {i + 1}: the training loss is {loss.item()}; "
                        "lower lr, check the labels or disable amp"
                    )
                scaler.scale(loss / config.accumulate).backward()
            if last_micro:
                if config.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                last_lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
            n = _batch_len(batch)
            loss_sum += float(loss.detach()) * n
            sample_count += n
            units_done += 1
            if show_bar and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / max(1, sample_count):.4f}", refresh=False)
            report(progress, units_done / total_units, f"epoch {epoch + 1}/{config.epochs}: training")
        loss_sum, sample_count = _all_reduce_sum(info, [loss_sum, sample_count], device)
        train_time = time.perf_counter() - epoch_start
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(1, sample_count),
            "lr": last_lr,
        }

        # ---- validate
        if val_loader is not None:
            metrics = _validate(
                model, val_loader, forward=forward, loss_fn=loss_fn, metrics_fn=metrics_fn, streaming=streaming,
                validate_here=validate_here, device=device, amp_dtype=amp_dtype, info=info, cancel=cancel,
                show_bar=show_bar, desc=f"epoch {epoch + 1}/{config.epochs} val",
            )
            units_done += len(val_loader)
            report(progress, units_done / total_units, f"epoch {epoch + 1}/{config.epochs}: validated")
            row.update(metrics)
        epoch_time = time.perf_counter() - epoch_start
        row["epoch_time_s"] = epoch_time
        row["train_samples_per_s"] = sample_count / max(train_time, 1e-9)
        if monitor not in row:
            raise TrainingError(
                f"monitor {monitor!r} is not among the metrics ({', '.join(k for k in row if k != 'epoch')})"
            )
        history.append(row)

        # ---- best / early stopping (same decision on every rank: the metrics were gathered)
        value = float(row[monitor])
        # no finite monitor value yet (e.g. AUC with one class in a tiny validation set): keep the latest
        improved = _better(value, best_value, mode) or best_value is None or val_loader is None
        if improved:
            best_value = value if math.isfinite(value) else None
            best_epoch, bad_epochs = epoch + 1, 0
            best_metrics = {k: v for k, v in row.items() if k != "epoch"}
        else:
            bad_epochs += 1
        if config.patience and bad_epochs >= config.patience and epoch + 1 < config.epochs:
            stopped_early = True

        if info.is_main:
            if improved:
                _write_best(best_path, model, spec, card, best_metrics, best_epoch, config, history, info, device,
                            started)
            write_metrics_csv(history, out_dir / METRICS_NAME)
            # drawing costs ~0.5 s: every CURVES_EVERY_S while training, and always after the last epoch
            last_epoch = stopped_early or epoch + 1 >= config.epochs
            if last_epoch or time.perf_counter() - curves_drawn >= CURVES_EVERY_S:
                try:
                    plot_learning_curves(history, out_dir / CURVES_NAME, monitor)
                except Exception as err:  # a plotting failure must never lose a training run
                    log.warning("learning curves not drawn: %s", err)
                curves_drawn = time.perf_counter()
            _save_state(last_path, _state(epoch + 1, stopped_early))
            _epoch_line(row, monitor, improved)
        _barrier(info)
        if on_epoch is not None:
            on_epoch(dict(row))
        if stopped_early:
            if info.is_main:
                log.info("early stop: %s did not improve for %d epochs", monitor, config.patience)
            break

    report(progress, 1.0, "training finished")
    if not history:
        raise TrainingError(f"{out_dir}: nothing to train (the run already finished and left no history)")
    if not best_path.is_file() and info.is_main:  # e.g. a resumed, already-finished run whose best.pt was lost
        _write_best(best_path, model, spec, card, best_metrics, best_epoch, config, history, info, device, started)
    _barrier(info)
    # hand the best weights back in the caller's model
    from engine.models.checkpoint import load_checkpoint

    best = load_checkpoint(best_path, map_location=str(device))
    model.load_state_dict(best.state_dict)
    return FitResult(
        best_epoch=best_epoch,
        best_metrics=best_metrics,
        checkpoint_path=best_path,
        history=history,
        stopped_early=stopped_early or len(history) < config.epochs,
    )


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


def _batch_len(batch: Any) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return int(value.shape[0])
            if isinstance(value, (list, tuple)):
                return len(value)
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return 1


@torch.no_grad()
def _validate(
    model: nn.Module,
    loader: Any,
    *,
    forward: ForwardFn,
    loss_fn: LossFn,
    metrics_fn: Any,
    streaming: bool,
    validate_here: bool,
    device: torch.device,
    amp_dtype: Optional[torch.dtype],
    info: DistInfo,
    cancel: Optional[CancelToken],
    show_bar: bool,
    desc: str,
) -> dict[str, float]:
    """Loss and metrics over the whole validation set (the unwrapped module: no DDP syncs in eval)."""
    model.eval()
    loss_sum = 0.0
    count = 0
    outputs_parts: list[Any] = []
    batch_parts: list[Any] = []
    if streaming and validate_here:
        metrics_fn.reset()
    if validate_here:
        for batch in _tqdm(loader, enabled=show_bar, desc=desc):
            check(cancel)
            batch = to_device(batch, device)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                outputs = forward(model, batch)
                loss = loss_fn(outputs, batch)
            n = _batch_len(batch)
            loss_sum += float(loss.detach().float()) * n
            count += n
            if metrics_fn is not None:
                out_cpu, batch_cpu = _detach_cpu(outputs), _detach_cpu(batch)
                if streaming:
                    metrics_fn.update(out_cpu, batch_cpu)
                else:
                    outputs_parts.append(out_cpu)
                    batch_parts.append(batch_cpu)
    metrics: dict[str, float] = {}
    if streaming:
        if validate_here:
            metrics = dict(_plain(metrics_fn.compute()))
        metrics = _broadcast_object(info, metrics) if info.enabled else metrics
        loss_sum, count = _all_reduce_sum(info, [loss_sum, count], device)
    else:
        if info.enabled:
            gathered = _all_gather_object(info, (loss_sum, count, outputs_parts, batch_parts))
            loss_sum = sum(g[0] for g in gathered)
            count = sum(g[1] for g in gathered)
            outputs_parts = [p for g in gathered for p in g[2]]
            batch_parts = [p for g in gathered for p in g[3]]
        if metrics_fn is not None and outputs_parts:
            metrics = dict(_plain(metrics_fn(concat_batches(outputs_parts), concat_batches(batch_parts))))
    result = {"val_loss": loss_sum / max(1, count)}
    for key, value in metrics.items():
        result[key] = value
    return result


def _epoch_line(row: Mapping[str, float], monitor: str, improved: bool) -> None:
    parts = [f"epoch {int(row['epoch'])}", f"train_loss {row['train_loss']:.4f}"]
    if "val_loss" in row:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if monitor not in ("train_loss", "val_loss"):
        value = row[monitor]
        parts.append(f"{monitor} {value:.4f}" if isinstance(value, float) else f"{monitor} {value}")
    parts.append(f"{row['epoch_time_s']:.1f}s")
    if improved:
        parts.append("* best")
    log.info(" | ".join(parts))  # the CLI shows INFO on stderr; library callers decide themselves


_NOT_CARD_METRICS = ("lr", "epoch_time_s", "train_samples_per_s")


def _write_best(
    path: Path,
    model: nn.Module,
    spec: Mapping[str, Any],
    card: Mapping[str, Any],
    best_metrics: Mapping[str, float],
    best_epoch: int,
    config: TrainConfig,
    history: Sequence[Mapping[str, float]],
    info: DistInfo,
    device: torch.device,
    started: float,
) -> None:
    merged = dict(_plain(dict(card)))
    measured = {k: v for k, v in _plain(dict(best_metrics)).items() if k not in _NOT_CARD_METRICS}
    merged["metrics"] = {**dict(merged.get("metrics", {})), **measured}
    merged.setdefault("metrics_split", "validation (best epoch)")
    training = dict(merged.get("training", {}))
    training.update(
        {
            "command": command_line(),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "epochs_planned": config.epochs,
            "config": config.to_dict(),
            "world_size": info.world_size,
            "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
            "amp": _amp_dtype(device, config.amp) is not None,
            "seed": config.seed,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "wall_time_s": round(time.perf_counter() - started, 2),
        }
    )
    try:
        from engine import __version__

        training["engine"] = __version__
    except ImportError:  # pragma: no cover
        pass
    merged["training"] = training
    merged.setdefault("name", path.stem)
    save_checkpoint(path, spec, model.state_dict(), json.loads(json.dumps(merged, default=str)))
