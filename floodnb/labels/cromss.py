"""CromSS confidence measures, class-balanced pixel selection and cross-sensor consistency weights.

CromSS (Liu, Albrecht, Wang, Zhu: "CromSS: Cross-modal pre-training with noisy labels for remote
sensing image segmentation", IEEE TGRS 2025) trains one network per sensor ``d`` (here
Sentinel-1 and Sentinel-2) on noisy labels and uses the two sensors' predictions to decide
which label pixels to trust:

* **label confidence** ``l_d = P_d(y)`` — probability sensor ``d`` gives the (noisy) label ``y``;
* **prediction confidence** ``q_d = 1 - H(P_d) / log K`` — one minus the normalised entropy;
* **entangled** across sensors: ``m_d' = (m_d + m_1 * m_2) / 2`` for ``m`` in {l, q}: a pixel is
  trusted by sensor ``d`` when ``d`` is confident *and* both agree on it;
* **class-balanced selection**: per class, keep the ``ratio`` most confident labelled pixels,
  ``ratio`` ramping linearly from 1 (all) to 0.5 over training (:func:`selection_ratio`);
* **cross-sensor consistency**: each sensor's prediction is pulled towards the other's, pixel by
  pixel weighted by the *other* sensor's (entangled) confidence.

The same maps double as label-noise heat maps: :func:`cromss_noise_score` = ``1 - confidence``.

Arrays: ``probs (B, K, H, W)`` class probabilities (softmax; NaN = nodata), ``labels (B, H, W)``
integer in ``[0, K)`` with ``-1`` (:data:`~floodnb.bands.LABEL_NODATA`) or ``-100``
(:data:`~floodnb.bands.IGNORE_INDEX`) for pixels without a label. Single chips ``(K, H, W)`` /
``(H, W)`` work too.

**numpy or torch**: every function accepts either. Torch tensors in -> torch tensors out (same
device and dtype, computed under ``torch.no_grad()`` except :func:`consistency_loss`, which keeps
the gradient of ``logits``); numpy in -> numpy out. Ignored pixels get confidence 0 and weight 0
(:func:`cromss_noise_score` gives NaN there instead, for maps and rankings).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from floodnb.bands import IGNORE_INDEX, LABEL_NODATA

PROB_ATOL = 1e-3
MEASURES: tuple[str, ...] = ("label", "prediction")


# ---------------------------------------------------------------- conversion and checks
def _to_torch(x, name: str) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    arr = np.asarray(x)
    if arr.dtype.kind == "f" and arr.dtype != np.float64:
        arr = arr.astype(np.float32, copy=False)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a numeric numpy array or torch tensor, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)), True


def _back(t: torch.Tensor, was_numpy: bool):
    return t.detach().cpu().numpy() if was_numpy else t


def _check_probs(p: torch.Tensor, name: str, atol: float) -> torch.Tensor:
    if p.ndim < 3:
        raise ValueError(f"{name} must have shape (B, K, H, W) or (K, H, W), got {tuple(p.shape)}")
    if not p.is_floating_point():
        raise ValueError(f"{name} must be floating-point probabilities, got {p.dtype}")
    finite = torch.isfinite(p)
    if bool((finite.any(dim=-3) & ~finite.all(dim=-3)).any()):
        raise ValueError(f"{name}: some pixels are NaN in some classes only; nodata must be NaN in all classes")
    valid = finite.all(dim=-3)
    pv = torch.where(finite, p, torch.zeros((), dtype=p.dtype, device=p.device))
    if bool(((pv < -atol) | (pv > 1 + atol)).any()):
        raise ValueError(f"{name}: values outside [0, 1]; pass softmax probabilities, not logits")
    dev = (pv.sum(dim=-3) - 1).abs() * valid
    if bool((dev > atol).any()):
        raise ValueError(
            f"{name}: {int((dev > atol).sum())} pixels whose probabilities do not sum to one "
            f"(worst |sum - 1| = {float(dev.max()):.4g} > atol={atol})")
    return valid


def _check_labels(y: torch.Tensor, num_classes: int, name: str = "labels") -> torch.Tensor:
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer array, got {y.dtype}")
    ignored = (y == LABEL_NODATA) | (y == IGNORE_INDEX)
    bad = ~ignored & ((y < 0) | (y >= num_classes))
    if bool(bad.any()):
        vals = torch.unique(y[bad])[:5].tolist()
        raise ValueError(
            f"{name} holds values outside [0, {num_classes}) and the nodata codes "
            f"{LABEL_NODATA}/{IGNORE_INDEX}, e.g. {vals}")
    return ~ignored


def _pair_shapes(p: torch.Tensor, y: torch.Tensor, p_name: str) -> None:
    if tuple(p.shape[:-3]) + tuple(p.shape[-2:]) != tuple(y.shape):
        raise ValueError(f"{p_name} shape {tuple(p.shape)} does not match labels shape {tuple(y.shape)}: "
                         "expected probs (B, K, H, W) for labels (B, H, W)")


# ---------------------------------------------------------------- measures
def label_confidence(probs, labels, *, atol: float = PROB_ATOL):
    """``l = P(y)``: probability of the given label, ``(B, H, W)``; 0 at ignored or nodata pixels."""
    p, was_np = _to_torch(probs, "probs")
    y, _ = _to_torch(labels, "labels")
    y = y.to(p.device)
    with torch.no_grad():
        valid_p = _check_probs(p, "probs", atol)
        valid_y = _check_labels(y, p.shape[-3])
        _pair_shapes(p, y, "probs")
        idx = torch.where(valid_y, y, torch.zeros_like(y)).long().unsqueeze(-3)
        conf = torch.gather(torch.nan_to_num(p, nan=0.0), -3, idx).squeeze(-3)
        conf = torch.where(valid_y & valid_p, conf, torch.zeros_like(conf))
    return _back(conf, was_np)


def prediction_confidence(probs, *, atol: float = PROB_ATOL):
    """``q = 1 - H(P) / log K`` in [0, 1], ``(B, H, W)``; 0 at nodata pixels (NaN probabilities)."""
    p, was_np = _to_torch(probs, "probs")
    with torch.no_grad():
        valid = _check_probs(p, "probs", atol)
        k = p.shape[-3]
        pc = torch.nan_to_num(p, nan=0.0).clamp_min(0)
        ent = -(pc * torch.log(pc.clamp_min(1e-12))).sum(dim=-3)
        q = (1 - ent / math.log(k)).clamp(0, 1)
        q = torch.where(valid, q, torch.zeros_like(q))
    return _back(q, was_np)


def entangle(m1, m2):
    """Entangle two sensors' confidences: returns ``((m1 + m1*m2)/2, (m2 + m1*m2)/2)``."""
    a, was_np = _to_torch(m1, "m1")
    b, _ = _to_torch(m2, "m2")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"m1 shape {tuple(a.shape)} != m2 shape {tuple(b.shape)}")
    b = b.to(a.device)
    prod = a * b
    return _back((a + prod) / 2, was_np), _back((b + prod) / 2, was_np)


def cromss_confidence(probs_1, probs_2, labels, *, measure: str = "label", atol: float = PROB_ATOL):
    """Entangled confidences ``(c_1, c_2)``, each ``(B, H, W)``, of sensors 1 and 2.

    ``measure="label"`` uses ``l_d = P_d(y)`` (needs ``labels``), ``"prediction"`` uses
    ``q_d = 1 - H(P_d)/log K`` (``labels`` only mark ignored pixels, which get 0).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    p1, was_np = _to_torch(probs_1, "probs_1")
    p2, _ = _to_torch(probs_2, "probs_2")
    if tuple(p1.shape) != tuple(p2.shape):
        raise ValueError(f"probs_1 shape {tuple(p1.shape)} != probs_2 shape {tuple(p2.shape)}; both (B, K, H, W)")
    p2 = p2.to(p1.device)
    y, _ = _to_torch(labels, "labels")
    y = y.to(p1.device)
    if measure == "label":
        m1, m2 = label_confidence(p1, y, atol=atol), label_confidence(p2, y, atol=atol)
    else:
        _pair_shapes(p1, y, "probs_1")
        keep = _check_labels(y, p1.shape[-3])
        m1 = prediction_confidence(p1, atol=atol) * keep
        m2 = prediction_confidence(p2, atol=atol) * keep
    c1, c2 = entangle(m1, m2)
    return _back(c1, was_np), _back(c2, was_np)


# ---------------------------------------------------------------- selection
def selection_ratio(epoch: int, *, epochs: int, start: float = 1.0, end: float = 0.5,
                    warmup_epochs: int = 0) -> float:
    """Fraction of labelled pixels kept per class at ``epoch`` (0-based): linear ramp ``start -> end``.

    ``start`` during the first ``warmup_epochs`` epochs, then linear to ``end`` at the last epoch
    (``epochs - 1``). CromSS ramps from 1 (keep all) to 0.5.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch must lie in [0, {epochs}), got {epoch}")
    if not (0 < end <= 1 and 0 < start <= 1):
        raise ValueError(f"start and end must lie in (0, 1], got start={start}, end={end}")
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must lie in [0, {epochs}), got {warmup_epochs}")
    span = epochs - 1 - warmup_epochs
    if span <= 0 or epoch <= warmup_epochs:
        return float(start)
    frac = (epoch - warmup_epochs) / span
    return float(start + (end - start) * frac)


def class_balanced_selection(confidence, labels, *, ratio: float, num_classes: int = 2):
    """Keep the ``ratio`` most confident labelled pixels of each class: bool ``(B, H, W)``.

    ``confidence (B, H, W)``; ``labels (B, H, W)`` (ignored pixels never selected). For each
    class ``c`` with ``n_c`` labelled pixels in the whole batch, exactly ``ceil(ratio * n_c)``
    pixels with the highest confidence are kept (ties broken by position), so a rare class (water)
    keeps the same share as a common one.
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must lie in (0, 1], got {ratio}")
    c, was_np = _to_torch(confidence, "confidence")
    y, _ = _to_torch(labels, "labels")
    y = y.to(c.device)
    if tuple(c.shape) != tuple(y.shape):
        raise ValueError(f"confidence shape {tuple(c.shape)} != labels shape {tuple(y.shape)}")
    with torch.no_grad():
        valid = _check_labels(y, num_classes)
        keep = torch.zeros(c.numel(), dtype=torch.bool, device=c.device)
        cf, yf, vf = c.reshape(-1), y.reshape(-1), valid.reshape(-1)
        for k in range(num_classes):
            idx = torch.nonzero(vf & (yf == k), as_tuple=False).squeeze(1)
            n = idx.numel()
            if n == 0:
                continue
            take = min(n, math.ceil(ratio * n - 1e-9))
            top = torch.topk(torch.nan_to_num(cf[idx].float(), nan=-1.0), take, sorted=False).indices
            keep[idx[top]] = True
    return _back(keep.reshape(c.shape), was_np)


def cromss_pixel_weights(probs_d, probs_other, labels, *, ratio: float, measure: str = "label",
                         soft: bool = False, atol: float = PROB_ATOL):
    """Per-pixel loss weights ``(B, H, W)`` for sensor ``d`` under CromSS selection.

    Entangled confidence of sensor ``d`` with ``probs_other`` (:func:`cromss_confidence`), then
    :func:`class_balanced_selection` at ``ratio`` (see :func:`selection_ratio`). Weights are 1 for
    kept pixels (``soft=True``: the entangled confidence itself) and 0 for dropped or ignored ones.
    Use as ``(w * ce).sum() / w.sum().clamp_min(1)`` with per-pixel cross-entropy ``ce``.
    """
    c_d, _ = cromss_confidence(probs_d, probs_other, labels, measure=measure, atol=atol)
    keep = class_balanced_selection(c_d, labels, ratio=ratio, num_classes=_num_classes(probs_d))
    if isinstance(keep, np.ndarray):
        return np.where(keep, c_d if soft else 1.0, 0.0).astype(np.float32)
    w = c_d if soft else torch.ones_like(c_d)
    return torch.where(keep, w, torch.zeros_like(w))


def _num_classes(probs) -> int:
    return int(probs.shape[-3])


def consistency_weight(probs_other, probs_d, labels, *, measure: str = "prediction",
                       atol: float = PROB_ATOL):
    """Weight ``(B, H, W)`` of the consistency term pulling sensor ``d`` towards the other sensor.

    The *other* sensor's entangled confidence (:func:`cromss_confidence`): pixels where the
    other sensor is sure (and, for ``measure="label"``, agrees with the label) count most.
    """
    c_other, _ = cromss_confidence(probs_other, probs_d, labels, measure=measure, atol=atol)
    return c_other


def consistency_loss(logits_d: torch.Tensor, probs_other, *, weight, valid=None) -> torch.Tensor:
    """Weighted cross-sensor consistency ``KL(P_other || softmax(logits_d))`` averaged over pixels.

    ``logits_d (B, K, H, W)`` (gradient kept), ``probs_other (B, K, H, W)`` (target, detached),
    ``weight (B, H, W)`` from :func:`consistency_weight`, ``valid (B, H, W)`` bool (default:
    finite target). Returns ``sum(weight * KL) / max(1, #valid)``, a scalar tensor.
    """
    if not isinstance(logits_d, torch.Tensor):
        raise ValueError("logits_d must be a torch tensor (the loss needs its gradient)")
    t, _ = _to_torch(probs_other, "probs_other")
    w, _ = _to_torch(weight, "weight")
    t, w = t.to(logits_d.device, logits_d.dtype).detach(), w.to(logits_d.device, logits_d.dtype).detach()
    if tuple(t.shape) != tuple(logits_d.shape):
        raise ValueError(f"probs_other shape {tuple(t.shape)} != logits_d shape {tuple(logits_d.shape)}")
    if tuple(w.shape) != tuple(logits_d.shape[:-3]) + tuple(logits_d.shape[-2:]):
        raise ValueError(f"weight shape {tuple(w.shape)} does not match logits_d {tuple(logits_d.shape)}")
    ok = torch.isfinite(t).all(dim=-3)
    if valid is not None:
        v, _ = _to_torch(valid, "valid")
        ok = ok & v.to(ok.device).bool()
    t = torch.nan_to_num(t, nan=0.0)
    logp = torch.log_softmax(logits_d, dim=-3)
    kl = (t * (torch.log(t.clamp_min(1e-12)) - logp)).sum(dim=-3)
    kl = torch.where(ok, kl * torch.nan_to_num(w, nan=0.0), torch.zeros_like(kl))
    return kl.sum() / ok.sum().clamp_min(1)


# ---------------------------------------------------------------- noise maps
def cromss_noise_score(probs_1, probs_2, labels, *, measure: str = "label", sensor: str = "mean",
                       atol: float = PROB_ATOL) -> np.ndarray:
    """Label-noise heat map ``1 - c`` float32 ``(B, H, W)`` in [0, 1]; NaN where no label or no data.

    ``c`` is the entangled confidence of sensor 1, sensor 2 or their mean (``sensor`` in
    {"1", "2", "mean"}). Always returns numpy (for maps, tables and rankings).
    """
    if sensor not in ("1", "2", "mean"):
        raise ValueError(f"sensor must be '1', '2' or 'mean', got {sensor!r}")
    c1, c2 = cromss_confidence(probs_1, probs_2, labels, measure=measure, atol=atol)
    c1, c2 = (_back(c, True) if isinstance(c, torch.Tensor) else np.asarray(c) for c in (c1, c2))
    c = {"1": c1, "2": c2, "mean": (c1 + c2) / 2}[sensor]
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    p1 = probs_1.detach().cpu().numpy() if isinstance(probs_1, torch.Tensor) else np.asarray(probs_1)
    p2 = probs_2.detach().cpu().numpy() if isinstance(probs_2, torch.Tensor) else np.asarray(probs_2)
    nodata = (y < 0) | ~np.isfinite(p1).all(axis=-3) | ~np.isfinite(p2).all(axis=-3)
    return np.where(nodata, np.nan, 1.0 - c).astype(np.float32)


__all__ = [
    "MEASURES", "class_balanced_selection", "consistency_loss", "consistency_weight", "cromss_confidence",
    "cromss_noise_score", "cromss_pixel_weights", "entangle", "label_confidence", "prediction_confidence",
    "selection_ratio",
]
