"""Reverse-engineer an unknown trigger, as Neural Cleanse does (which CARE uses).

Pipeline position: when the repair is not given the trigger, this recovers a
candidate (mask, pattern) from the network and clean images alone; the repair
then removes the backdoor against it.

Method (Wang et al., S&P 2019): for a candidate target ``t``, minimise over
``m = sigmoid(a)`` and ``p = sigmoid(b)`` (so both stay in ``[0, 1]``)

    CE(f((1 - m) x + m p), t)  +  lam * ||m||_1

on clean images ``x`` not of class ``t``, with Adam.  ``lam`` adapts as in
Neural Cleanse: it grows (x ``lam_step``) while the stamped images reach the
target at least ``success_goal`` of the time, and shrinks otherwise; the
smallest-norm mask that reached the goal is kept.  A real backdoor shows as a
target whose mask is much smaller than the others': the anomaly index of the
smallest norm is ``(median - min) / (1.4826 * MAD)`` over the candidates
(Neural Cleanse flags > 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.network.torch_export import to_torch
from verirepair.tasks.backdoor.trigger import Trigger


@dataclass(frozen=True, slots=True)
class ReverseConfig:
    """Settings of the trigger optimisation.

    Parameters
    ----------
    steps : int
        Adam steps per candidate target.
    lr : float
    lam : float
        Initial weight of the mask's L1 norm.
    lam_step : float
        Factor by which ``lam`` grows or shrinks every ``patience`` steps.
    patience : int
    success_goal : float
        Share of stamped images that must reach the target for a mask to count.
    max_images : int
        Clean images used (a seeded subset when there are more).
    seed : int
    """

    steps: int = 600
    lr: float = 0.1
    lam: float = 1e-3
    lam_step: float = 1.5
    patience: int = 10
    success_goal: float = 0.99
    max_images: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.patience < 1 or self.max_images < 1:
            raise ValueError("steps, patience and max_images must be at least 1")
        if not (self.lr > 0 and self.lam > 0 and self.lam_step > 1):
            raise ValueError("lr and lam must be positive and lam_step above 1")
        if not 0 < self.success_goal <= 1:
            raise ValueError("success_goal must lie in (0, 1]")


@dataclass(frozen=True, slots=True)
class ReversedTrigger:
    """The recovered trigger for one target.

    Attributes
    ----------
    target : int
    trigger : Trigger
    mask_l1 : float
        ``sum(mask)``: how many pixels' worth the trigger overwrites.
    success : float
        Share of the clean images (not of the target) that the recovered
        trigger sends to the target, on the network it was recovered from.
    reached_goal : bool
        Whether some mask reached ``success_goal`` (else the last one is kept).
    """

    target: int
    trigger: Trigger
    mask_l1: float
    success: float
    reached_goal: bool


def reverse_trigger(network: Network, x: np.ndarray, y: np.ndarray, target: int,
                    config: ReverseConfig = ReverseConfig()) -> ReversedTrigger:
    """Recover a small trigger that sends clean images to ``target``.

    Parameters
    ----------
    network : Network
    x : array, shape (n, n_inputs), values in [0, 1] -- clean images
    y : int array, shape (n,) -- their classes (images of ``target`` are left out)
    target : int
    config : ReverseConfig

    Returns
    -------
    ReversedTrigger

    Raises
    ------
    ValueError
        No image of another class, or ``target`` not an output of the network.
    """
    import torch

    if not 0 <= target < network.n_outputs:
        raise ValueError(f"target {target} is not an output of the network (0..{network.n_outputs - 1})")
    images = np.asarray(x, dtype=np.float64)[np.asarray(y) != target]
    if images.shape[0] == 0:
        raise ValueError("reverse_trigger needs clean images of classes other than the target")
    rng = np.random.default_rng(config.seed)
    if images.shape[0] > config.max_images:
        images = images[np.sort(rng.choice(images.shape[0], config.max_images, replace=False))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config.seed)
        model = to_torch(network, torch.float32)
        for param in model.parameters():
            param.requires_grad_(False)
        xt = torch.from_numpy(images.astype(np.float32))
        labels = torch.full((xt.shape[0],), target, dtype=torch.long)
        # Random starts, as Neural Cleanse (mask and pattern uniform in [0, 1]): a mask
        # starting near 0 leaves a trigger neuron with a high threshold dead, without gradient.
        start = rng.uniform(0.05, 0.95, (2, network.n_inputs))
        a = torch.tensor(np.log(start[0] / (1 - start[0])), dtype=torch.float32, requires_grad=True)
        b = torch.tensor(np.log(start[1] / (1 - start[1])), dtype=torch.float32, requires_grad=True)
        opt = torch.optim.Adam([a, b], lr=config.lr)
        lam = config.lam
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        hits_in_window = 0
        for step in range(1, config.steps + 1):
            mask, pattern = torch.sigmoid(a), torch.sigmoid(b)
            logits = model((1 - mask) * xt + mask * pattern)
            loss = torch.nn.functional.cross_entropy(logits, labels) + lam * mask.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            success = float((logits.argmax(dim=1) == target).float().mean())
            if success >= config.success_goal:
                hits_in_window += 1
                l1 = float(mask.detach().sum())
                if best is None or l1 < best[0]:
                    best = (l1, mask.detach().double().numpy().copy(), pattern.detach().double().numpy().copy())
            if step % config.patience == 0:
                lam = lam * config.lam_step if hits_in_window == config.patience else lam / config.lam_step
                hits_in_window = 0
        reached = best is not None
        if best is None:
            final_mask, final_pattern = torch.sigmoid(a).detach().double().numpy(), \
                torch.sigmoid(b).detach().double().numpy()
            best = (float(final_mask.sum()), final_mask, final_pattern)
    finally:
        torch.set_num_threads(threads)
    trigger = Trigger(np.clip(best[1], 0, 1), np.clip(best[2], 0, 1), f"reversed-t{target}")
    from verirepair.tasks.classifier import predict

    success = float(np.mean(predict(network, trigger.stamp(images)) == target))
    return ReversedTrigger(target, trigger, best[0], success, reached)


def anomaly_index(norms: np.ndarray) -> np.ndarray:
    """Neural Cleanse's anomaly index of each candidate's mask norm: ``(median - norm) / (1.4826 MAD)``.

    Positive values are smaller than the median; a backdoor target typically exceeds 2.
    """
    norms = np.asarray(norms, dtype=np.float64)
    median = np.median(norms)
    mad = 1.4826 * np.median(np.abs(norms - median))
    return (median - norms) / max(mad, 1e-12)


def scan_targets(network: Network, x: np.ndarray, y: np.ndarray, targets: list[int] | None = None,
                 config: ReverseConfig = ReverseConfig()) -> list[ReversedTrigger]:
    """:func:`reverse_trigger` for each candidate target (all outputs by default)."""
    targets = list(range(network.n_outputs)) if targets is None else targets
    return [reverse_trigger(network, x, y, t, config) for t in targets]


def recovered_region(trigger: Trigger, max_pixels: int = 9, floor: float = 0.5) -> np.ndarray:
    """Pixels taken as a recovered trigger's region: mask ``>= floor * max(mask)``, the ``max_pixels`` largest at most.

    Returns
    -------
    int array, sorted pixel indices
    """
    mask = trigger.mask
    order = np.argsort(-mask, kind="stable")[:max_pixels]
    keep = order[mask[order] >= floor * mask.max()]
    return np.sort(keep)


@dataclass(frozen=True, slots=True)
class TriggerCloseness:
    """How close a recovered trigger is to the true one.

    Attributes
    ----------
    region_iou : float
        Intersection over union of the true region (mask > 0) and the recovered
        region (:func:`recovered_region`).
    mask_l1_true, mask_l1_recovered : float
    mask_overlap : float
        Share of the recovered mask's mass lying on true trigger pixels.
    effect_cosine : float
        Cosine similarity of ``m * p`` (what each stamp writes) between the two.
    """

    region_iou: float
    mask_l1_true: float
    mask_l1_recovered: float
    mask_overlap: float
    effect_cosine: float

    def to_json_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return {"region_iou": self.region_iou, "mask_l1_true": self.mask_l1_true,
                "mask_l1_recovered": self.mask_l1_recovered, "mask_overlap": self.mask_overlap,
                "effect_cosine": self.effect_cosine}


def trigger_closeness(true: Trigger, recovered: Trigger) -> TriggerCloseness:
    """Compare a recovered trigger with the true one (see :class:`TriggerCloseness`)."""
    t_region = set(true.region.tolist())
    r_region = set(recovered_region(recovered).tolist())
    union = t_region | r_region
    iou = len(t_region & r_region) / len(union) if union else 1.0
    on_true = float(recovered.mask[true.region].sum() / max(recovered.mask.sum(), 1e-12))
    e_true, e_rec = true.mask * true.pattern, recovered.mask * recovered.pattern
    denom = float(np.linalg.norm(e_true) * np.linalg.norm(e_rec))
    cosine = float(e_true @ e_rec / denom) if denom > 0 else 0.0
    return TriggerCloseness(iou, float(true.mask.sum()), float(recovered.mask.sum()), on_true, cosine)
