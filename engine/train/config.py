"""Training configuration: one dataclass holding every hyper-parameter, read from TOML (or YAML).

A config file is flat keys for the generic training knobs plus three tables the task interprets itself::

    epochs = 40
    batch_size = 8
    lr = 3e-4

    [model]            # backbone, dropout, fusion, levels ... (task-specific)
    backbone = "resnet18"
    [data]             # input_size, augmentation, cache_rate ... (task-specific)
    input_size = 256
    [tune]             # Optuna search space and budget (engine.train.tune)
    n_trials = 20

Precedence, lowest first: dataclass defaults < the task's shipped config (``engine/train/configs/TASK.toml``)
< the user's ``--config FILE`` < command-line overrides (``--epochs``, ``--device``, ``--set key=value``).
Every run writes the resolved result back as ``config.toml`` in its output folder, so it can be re-run as is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union


class ConfigError(ValueError):
    """A config file is unreadable, or names a key / value that does not fit. ``str()`` is user-readable."""


@dataclass
class TrainConfig:
    """Every hyper-parameter of a training run. Units in the field comments; defaults are sane for fine-tuning."""

    task: str = ""
    """Task name in the registry (engine.train.tasks); informational inside fit()."""
    # optimisation
    epochs: int = 30
    batch_size: int = 8
    val_batch_size: Optional[int] = None
    """Batch size for validation; None = batch_size."""
    lr: float = 3e-4
    """Peak learning rate of AdamW (reached after warm-up)."""
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 1.0
    """Linear warm-up length in epochs (fractions allowed), then cosine decay to ``lr * min_lr_ratio``."""
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    """Max global gradient norm; 0 disables clipping."""
    accumulate: int = 1
    """Gradient-accumulation steps (effective batch = batch_size * accumulate * world size)."""
    patience: int = 0
    """Early stopping: stop after this many epochs without improvement of the monitor; 0 disables."""
    # hardware / reproducibility
    device: str = "auto"
    """"auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", "mps"."""
    amp: bool = True
    """Mixed precision on CUDA (bfloat16 where supported, else float16 with a GradScaler); ignored on CPU."""
    seed: int = 0
    deterministic: bool = True
    """Seed everything per epoch and ask torch for deterministic kernels (warn-only)."""
    num_workers: int = 0
    """DataLoader worker processes per rank."""
    sync_bn: bool = False
    """Convert BatchNorm to SyncBatchNorm under multi-GPU DDP."""
    find_unused_parameters: bool = False
    """DDP flag for models whose forward skips some parameters (e.g. an unused fusion branch)."""
    resume: bool = True
    """Continue from ``out_dir/last.pt`` when it exists."""
    # data splitting / cross-validation (used by the train command, not by fit itself)
    folds: int = 1
    """K of K-fold cross-validation; 1 = one stratified hold-out split of ``val_fraction``."""
    fold: int = 0
    """Train only this fold (1..K) of the K-fold split, e.g. one fold per machine or per set of pseudo labels;
    0 = every fold."""
    val_fraction: float = 0.2
    # task-specific tables
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-able plain dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> "TrainConfig":
        return merge(cls(), data, source=source)

    def replace(self, **changes: Any) -> "TrainConfig":
        return merge(self, changes, source="override")

    def validate(self) -> "TrainConfig":
        """Raise :class:`ConfigError` for values that cannot work; return self."""
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.val_batch_size is not None and self.val_batch_size < 1:
            problems.append(f"val_batch_size must be >= 1 (got {self.val_batch_size})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number (got {self.lr})")
        if self.accumulate < 1:
            problems.append(f"accumulate must be >= 1 (got {self.accumulate})")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        if self.warmup_epochs < 0:
            problems.append(f"warmup_epochs must be >= 0 (got {self.warmup_epochs})")
        if self.folds < 1:
            problems.append(f"folds must be >= 1 (got {self.folds})")
        if not 0 <= self.fold <= (self.folds if self.folds > 1 else 0):
            problems.append(f"fold must be 0 (every fold) or 1..folds with folds > 1 (got fold {self.fold}, "
                            f"folds {self.folds})")
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction must be in (0, 1) (got {self.val_fraction})")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0 (got {self.num_workers})")
        if problems:
            raise ConfigError("; ".join(problems))
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TABLES = ("model", "data", "tune")


def _coerce(name: str, value: Any, current: Any, source: str) -> Any:
    """Convert ``value`` to the type of the field ``name`` (whose present value is ``current``)."""
    f = _FIELDS[name]
    annotation = str(f.type)
    if name in _TABLES:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table, got {type(value).__name__}")
        return {**current, **dict(value)}
    if value is None:
        if "Optional" in annotation:
            return None
        raise ConfigError(f"{source}: {name} may not be empty")
    try:
        if annotation.startswith("tuple"):
            seq = tuple(float(v) for v in value)
            if len(seq) != len(f.default):  # type: ignore[arg-type]
                raise ValueError
            return seq
        if "bool" in annotation:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if not isinstance(value, (bool, int)):
                raise ValueError
            return bool(value)
        if "int" in annotation:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if "float" in annotation:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if "str" in annotation:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} = {value!r} is not a valid {annotation}") from None
    return value


def merge(base: TrainConfig, data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """A new config: ``base`` updated with ``data``. Tables merge key by key. Unknown keys raise ConfigError."""
    values = {name: getattr(base, name) for name in _FIELDS}
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    unknown = [k for k in data if k not in _FIELDS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; task-specific settings go in the "
            f"[model], [data] or [tune] tables. Known keys: {', '.join(_FIELDS)}"
        )
    for key, value in data.items():
        values[key] = _coerce(key, value, values[key], source)
    return TrainConfig(**values)


def read_config_file(path: Union[str, Path]) -> dict[str, Any]:
    """Parse a TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML) file into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise ConfigError(
                    f"{path}: YAML configs need PyYAML (pip install pyyaml); or write the same keys as TOML"
                ) from None
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ConfigError(f"{path}: unknown config type {suffix!r}; expected .toml, .yaml/.yml or .json")
    except ConfigError:
        raise
    except Exception as err:  # tomllib.TOMLDecodeError, yaml.YAMLError, JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path}: cannot parse config ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a table of keys, got {type(data).__name__}")
    return data


def load_config(
    *files: Union[str, Path, None], overrides: Optional[Mapping[str, Any]] = None, base: Optional[TrainConfig] = None
) -> TrainConfig:
    """Defaults, then each file in order (None entries skipped), then ``overrides`` (None values skipped)."""
    config = base or TrainConfig()
    for file in files:
        if file is not None:
            config = merge(config, read_config_file(file), source=str(file))
    if overrides:
        flat: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if "." in key:  # "model.backbone" -> {"model": {"backbone": ...}}
                table, sub = key.split(".", 1)
                flat.setdefault(table, {})[sub] = value
            else:
                flat[key] = value
        config = merge(config, flat, source="command line")
    return config.validate()


def parse_set_option(items: Optional[list[str]]) -> dict[str, Any]:
    """``["lr=1e-3", "model.backbone=resnet34"]`` -> typed dict (values parsed as TOML scalars when possible)."""
    result: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        result[key.strip()] = value
    return result


# ------------------------------------------------------------------ writing TOML (tomllib only reads)
def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """Serialise a config dict (scalars, lists, one level of tables, inline tables below) as TOML. None is left out."""
    lines: list[str] = []
    tables = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines.append("")
        lines.append(f"[{_toml_key(key)}]")
        for sub, value in table.items():
            if value is not None:
                lines.append(f"{_toml_key(str(sub))} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(config: TrainConfig, path: Union[str, Path], header: str = "") -> Path:
    """Write the resolved config as TOML (atomically); ``header`` lines become comments."""
    from engine.models.checkpoint import atomic_write_bytes

    path = Path(path)
    comment = "".join(f"# {line}\n" for line in header.splitlines()) if header else ""
    atomic_write_bytes(path, (comment + to_toml(config.to_dict())).encode("utf-8"))
    return path
