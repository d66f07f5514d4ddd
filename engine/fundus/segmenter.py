"""The disc/cup segmentation network: a MONAI 2D U-Net on square disc-region crops.

Input: a crop of ``spec["inputs"]["size"]`` px whose side is ``crop_scale`` x the disc diameter (the second,
fine pass) or a wider crop around a localiser candidate (the first pass), ``(S, S, 3)`` uint8 RGB with black
(0) where the crop left the photo. Each crop is standardised per channel over its non-black pixels
(:func:`normalise_crops`), so camera colour and exposure differences matter less.

Output: ``(B, 3, S, S)`` softmax probabilities of the classes :data:`CLASSES` (background, neuro-retinal rim,
cup); the disc is rim + cup, so the cup can never leave the disc.

Checkpoints use :mod:`engine.models.checkpoint` with ``spec = {"task": "disc-cup", "architecture":
"monai.UNet", "kwargs": {...}, "inputs": {"size": S, "crop_scale": ..., "normalisation": ...}, "classes":
[...]}``; the spec alone rebuilds the network (no code is loaded from the file). A spec with ``"members": K``
holds K networks of that architecture trained separately (:func:`combine_members`); the segmenter averages
their probabilities. A spec with ``"fine": {...}`` (a spec of its own, weights under ``fine.*``) also holds
fine-pass networks (:func:`attach_fine`): the analysis finds the disc with the first networks and draws the final
disc and cup masks with these (networks trained on disc-centred crops only). A spec with ``"grey": {...}``
(weights under ``grey.*``, fine-pass networks of its own allowed) holds a second model for photos without colour
(:func:`attach_grey`): the analysis uses it in place of the first on a grey or red-free photo
(:func:`engine.fundus.localize.is_monochrome`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

TASK = "disc-cup"
CLASSES = ("background", "rim", "cup")
DEFAULT_WEIGHTS = "disc_cup.pt"
FINE = "fine"
"""The spec key (and weight prefix ``fine.``) of a checkpoint's fine-pass networks."""
FINE_PASS = "fine_pass"
"""The card key of what the fine-pass networks were trained on (``data``, ``pseudo_labels``, ``members``)."""
GREY = "grey"
"""The spec key (and weight prefix ``grey.``) of a checkpoint's model for photos without colour."""
GREY_NETWORKS = "grey_networks"
"""The card key of what the networks for photos without colour were trained on and how they did held out."""
NORMALISATION = "per-crop, per-channel z-score over non-black pixels"


def default_spec(size: int = 128, channels: tuple[int, ...] = (16, 32, 64, 128), num_res_units: int = 1,
                 dropout: float = 0.0, crop_scale: float = 2.0) -> dict[str, Any]:
    """The spec of a MONAI UNet disc/cup segmenter (JSON-able); defaults = the shipped recipe
    (engine/train/configs/disc_cup.toml)."""
    return {
        "task": TASK,
        "architecture": "monai.UNet",
        "kwargs": {
            "spatial_dims": 2,
            "in_channels": 3,
            "out_channels": len(CLASSES),
            "channels": list(channels),
            "strides": [2] * (len(channels) - 1),
            "num_res_units": num_res_units,
            "norm": "batch",
            "dropout": dropout,
        },
        "inputs": {"size": int(size), "crop_scale": float(crop_scale), "normalisation": NORMALISATION},
        "classes": list(CLASSES),
        "cam_target_layers": [],
    }


def build_network(spec: Mapping[str, Any]) -> Any:
    """A randomly initialised network from ``spec`` (only the architectures listed here are accepted); a
    :class:`engine.fundus.member_mean.MemberMean` of ``spec["members"]`` of them when that is above 1."""
    from monai.networks.nets import UNet

    arch = spec.get("architecture")
    if arch != "monai.UNet":
        raise ValueError(f"unknown disc/cup architecture {arch!r} (expected 'monai.UNet')")
    kw = dict(spec["kwargs"])
    kw["channels"] = tuple(kw["channels"])
    kw["strides"] = tuple(kw["strides"])
    members = int(spec.get("members", 1))
    if members > 1:
        from engine.fundus.member_mean import MemberMean

        return MemberMean([UNet(**kw) for _ in range(members)])
    return UNet(**kw)


def combine_members(specs: list[Mapping[str, Any]], state_dicts: list[Mapping[str, Any]]
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Several single-network checkpoints of one spec -> the spec and state dict of their mean
    (:class:`engine.fundus.member_mean.MemberMean`).

    Raises:
        ValueError: the specs differ or one is already a combination.
    """
    base = dict(specs[0])
    for spec in specs:
        if int(spec.get("members", 1)) != 1 or FINE in spec or GREY in spec:
            raise ValueError("a checkpoint that already combines several networks cannot be a member")
        if spec != specs[0]:
            raise ValueError("the checkpoints have different architectures or inputs; they cannot be averaged")
    if len(specs) == 1:
        return dict(base), dict(state_dicts[0])
    base["members"] = len(specs)
    state = {f"members.{i}.{k}": v for i, sd in enumerate(state_dicts) for k, v in sd.items()}
    return base, state


def attach_fine(spec: Mapping[str, Any], state: Mapping[str, Any], fine_spec: Mapping[str, Any],
                fine_state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's spec and state dict with ``fine_spec`` / ``fine_state`` (one network or a
    :func:`combine_members` mean) as its fine-pass networks, stored under :data:`FINE`.

    Raises:
        ValueError: either side already has fine-pass networks.
    """
    if FINE in spec or FINE in fine_spec:
        raise ValueError("a checkpoint that already has fine-pass networks cannot take others")
    return {**spec, FINE: dict(fine_spec)}, {**state, **{f"{FINE}.{k}": v for k, v in fine_state.items()}}


def attach_grey(spec: Mapping[str, Any], state: Mapping[str, Any], grey_spec: Mapping[str, Any],
                grey_state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's spec and state dict with ``grey_spec`` / ``grey_state`` (a model of its own, with or without
    fine-pass networks) as its model for photos without colour, stored under :data:`GREY`.

    Raises:
        ValueError: either side already has a model for photos without colour.
    """
    if GREY in spec or GREY in grey_spec:
        raise ValueError("a checkpoint that already has networks for photos without colour cannot take others")
    return {**spec, GREY: dict(grey_spec)}, {**state, **{f"{GREY}.{k}": v for k, v in grey_state.items()}}


def normalise_crops(crops: np.ndarray) -> np.ndarray:
    """``(B, S, S, 3)`` (or one ``(S, S, 3)``) uint8 -> ``(B, 3, S, S)`` float32, per-crop per-channel z-score
    over the pixels that are not black in every channel (black = outside the photo / FOV); black stays 0."""
    a = np.asarray(crops)
    if a.ndim == 3:
        a = a[None]
    x = a.astype(np.float32)
    valid = a.max(axis=3) > 4  # (B, S, S)
    out = np.zeros((a.shape[0], 3, a.shape[1], a.shape[2]), np.float32)
    for b in range(a.shape[0]):
        m = valid[b]
        if m.sum() < 16:
            continue
        for c in range(3):
            ch = x[b, :, :, c]
            v = ch[m]
            mu, sd = float(v.mean()), float(v.std())
            out[b, c] = np.where(m, (ch - mu) / max(sd, 4.0), 0.0)
    return out


@dataclass
class Segmenter:
    """A loaded disc/cup network with its spec and card. Thread-safe ``predict`` (one call at a time).
    ``fine``: the networks that draw the final masks (:func:`attach_fine`), or None (these networks do); ``grey``:
    the model the analysis uses on photos without colour (:func:`attach_grey`), or None (this one)."""

    module: Any
    spec: dict[str, Any]
    card: dict[str, Any]
    device: Any = "cpu"
    sha256: str = ""
    fine: Optional["Segmenter"] = None
    grey: Optional["Segmenter"] = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.module.eval()

    @property
    def size(self) -> int:
        return int(self.spec["inputs"]["size"])

    @property
    def crop_scale(self) -> float:
        return float(self.spec["inputs"].get("crop_scale", 2.0))

    def predict(self, crops: np.ndarray, flip_tta: bool = True) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 crops -> ``(B, 3, S, S)`` float32 class probabilities (softmax).

        ``flip_tta`` averages with the left-right mirrored prediction (the disc is left-right symmetric
        between eyes, not top-bottom).
        """
        import torch

        x = torch.from_numpy(normalise_crops(crops))
        with self._lock, torch.inference_mode():
            x = x.to(self.device)
            if flip_tta:
                both = torch.cat([x, torch.flip(x, dims=(3,))], dim=0)
                logits = self.module(both).float()
                n = x.shape[0]
                probs = torch.softmax(logits[:n], 1) + torch.flip(torch.softmax(logits[n:], 1), dims=(3,))
                probs = probs / 2
            else:
                probs = torch.softmax(self.module(x).float(), 1)
        return probs.cpu().numpy()


_CACHE: dict[tuple[str, str], Segmenter] = {}
_CACHE_LOCK = threading.Lock()


def default_weights_path() -> Path:
    from engine.resources import models_dir

    return models_dir() / DEFAULT_WEIGHTS


def _segmenter(spec: Mapping[str, Any], state: Mapping[str, Any], card: dict[str, Any], sha256: str,
               device: str) -> Segmenter:
    """A :class:`Segmenter` from a checkpoint's spec and weights (with its fine-pass networks and its model for
    photos without colour), on ``device``."""
    import torch

    own = {k: v for k, v in spec.items() if k not in (FINE, GREY)}
    module = build_network(own)
    module.load_state_dict({k: v for k, v in state.items() if not k.startswith((FINE + ".", GREY + "."))})
    dev = torch.device(device)
    module.to(dev)
    parts = {}
    for key in (FINE, GREY):
        if key in spec:
            prefix = key + "."
            part_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            parts[key] = _segmenter(spec[key], part_state, card, sha256, device)
    return Segmenter(module, own, card, dev, sha256, parts.get(FINE), parts.get(GREY))


def combine_checkpoints(ckpts: Sequence[Any], fine: Sequence[Any] = (), grey: Sequence[Any] = (),
                        grey_fine: Sequence[Any] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Loaded single-network checkpoints (:class:`engine.models.checkpoint.Checkpoint`) -> the spec and state dict of
    their mean (:func:`combine_members`), with the ``fine`` checkpoints' mean as its fine-pass networks when given,
    and the ``grey`` checkpoints (with ``grey_fine`` as theirs) as its model for photos without colour.

    Raises:
        ValueError: as :func:`combine_members`, :func:`attach_fine` and :func:`attach_grey`; ``grey_fine`` without
            ``grey``.
    """
    spec, state = combine_members([c.spec for c in ckpts], [c.state_dict for c in ckpts])
    if fine:
        spec, state = attach_fine(spec, state, *combine_members([c.spec for c in fine], [c.state_dict for c in fine]))
    if grey_fine and not grey:
        raise ValueError("fine-pass networks for photos without colour need their finding networks")
    if grey:
        spec, state = attach_grey(spec, state, *combine_checkpoints(grey, grey_fine))
    return spec, state


def _members_and_cards(paths: Sequence[Union[str, Path]], device: str, fine: Sequence[Union[str, Path]]
                       ) -> tuple[Segmenter, list[dict[str, Any]]]:
    """:func:`load_members` and the card of every checkpoint it read (each file read and verified once)."""
    import hashlib

    from engine.models.checkpoint import load_checkpoint

    ckpts = [load_checkpoint(Path(p), expected_task=TASK, map_location="cpu") for p in paths]
    fine_ckpts = [load_checkpoint(Path(p), expected_task=TASK, map_location="cpu") for p in fine]
    spec, state = combine_checkpoints(ckpts, fine_ckpts)
    every = ckpts + fine_ckpts
    digest = hashlib.sha256("".join(c.sha256 for c in every).encode()).hexdigest()
    seg = _segmenter(spec, state, ckpts[0].card, every[0].sha256 if len(every) == 1 else digest, device)
    return seg, [c.card for c in every]


def load_members(paths: Sequence[Union[str, Path]], device: str = "cpu",
                 fine: Sequence[Union[str, Path]] = ()) -> Segmenter:
    """Several verified single-network checkpoints as one averaging :class:`Segmenter` (not cached; its
    ``sha256`` is the SHA-256 of the members' SHA-256 digests in order, its card the first member's), with the
    checkpoints ``fine`` (averaged likewise) as its fine-pass networks when given.

    Raises:
        engine.models.checkpoint.CheckpointError: a member is missing, tampered or not a disc-cup checkpoint.
        ValueError: the members cannot be averaged (:func:`combine_members`).
    """
    return _members_and_cards(paths, device, fine)[0]


def load_cli_segmenter(paths: Optional[Sequence[Union[str, Path]]], fine: Sequence[Union[str, Path]] = ()
                       ) -> tuple[Segmenter, list[dict[str, Any]]]:
    """The segmenter a command line names (``--checkpoint`` ``paths``, default the shipped weights;
    ``--fine-checkpoint`` ``fine``) and the card of every checkpoint in it.

    Raises:
        engine.models.checkpoint.CheckpointError, ValueError: as :func:`load_members`; ``fine`` without ``paths``.
    """
    if fine and not paths:
        raise ValueError("fine-pass networks need the networks that find the disc (--checkpoint)")
    if not paths:
        seg = load_segmenter()
        return seg, [seg.card]
    return _members_and_cards(paths, "cpu", fine)


def training_data(cards: Sequence[Mapping[str, Any]], with_labellers: bool = False) -> str:
    """The cards' training-data lines, each once, joined by ``"; "``; ``with_labellers`` adds the lines of the
    networks that labelled their pseudo-labelled photos (card ``pseudo_labels``, which carry their own labellers'
    lines in turn), so that what every network up a chain of self-training rounds saw is kept; a card's
    fine-pass networks (:data:`FINE_PASS`) add theirs."""
    lines = [str(c.get("data", "")) for c in cards]
    if with_labellers:
        lines += [line for c in cards if c.get("pseudo_labels")
                  for line in str((c["pseudo_labels"].get("labeller") or {}).get("trained_on", "")).split("; ")]
    lines += [line for c in cards for key in (FINE_PASS, GREY_NETWORKS) if c.get(key)
              for line in training_data([c[key]], with_labellers).split("; ")]
    return "; ".join(dict.fromkeys(lines))


def load_segmenter(path: Optional[Union[str, Path]] = None, device: str = "cpu") -> Segmenter:
    """Load (and cache) a disc/cup checkpoint; default: the shipped ``resources/models/disc_cup.pt``.

    Raises:
        engine.models.checkpoint.CheckpointError: missing, tampered or not a disc-cup checkpoint.
    """
    from engine.models.checkpoint import load_checkpoint

    path = Path(path) if path is not None else default_weights_path()
    key = (str(path.resolve()), str(device))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        ckpt = load_checkpoint(path, expected_task=TASK, map_location="cpu")
        seg = _segmenter(ckpt.spec, ckpt.state_dict, ckpt.card, ckpt.sha256, device)
        _CACHE[key] = seg
        return seg
