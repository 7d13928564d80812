"""Loss terms of teacher, student and baseline training — pure tensor functions.

Shapes: ``logits (B, K, H, W)``; ``target (B, H, W)`` int64 class ids with
:data:`~floodnb.bands.IGNORE_INDEX` for pixels without a label; ``probs (B, K, H, W)`` class
probabilities (NaN where undefined); ``valid (B, H, W)`` bool; ``pixel_weights (B, H, W)``
float >= 0. Every loss is a weighted mean over the pixels that count and returns an exact
``0.0`` (still attached to the graph) when no pixel counts, never NaN.

* :func:`masked_cross_entropy` — cross-entropy with class weights, ignore index and optional
  per-pixel weights (the hook for CromSS pixel weights, Liu et al., TGRS 2025, and for edge weights).
* :func:`kl_distillation` — Hinton et al. (2015) knowledge distillation: ``T^2 KL(p_T || q_T)``
  between the teacher's probabilities softened at temperature ``T`` and the student's
  ``softmax(logits / T)``, masked on valid pixels (cross-modal distillation, Garg et al. 2023,
  arXiv 2302.08180).
* :func:`hand_pool_loss` — the student objective: hand cross-entropy and pool distillation
  combined per pixel in one weighted mean with explicit ``hand_weight`` / ``distill_weight``
  (built from the per-pixel forms :func:`pixel_cross_entropy` and :func:`pixel_kl_distillation`).
* :func:`confident_pseudo_labels` — hard labels from teacher probabilities where the top
  probability reaches a threshold, IGNORE_INDEX elsewhere.
* :func:`edge_weights` — extra weight on the bands just inside and just outside water edges
  (Garg et al. 2023, "edge-weighted" loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from floodnb.bands import DRY, IGNORE_INDEX, WATER

#: Probabilities are clamped to this before logs (teacher outputs are stored as float16).
PROB_EPS: float = 1e-6


def _zero(logits: torch.Tensor) -> torch.Tensor:
    return logits.sum() * 0.0


def _check_pixel_weights(w: torch.Tensor | None, shape: torch.Size, name: str = "pixel_weights") -> None:
    if w is None:
        return
    if tuple(w.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (B, H, W), got {tuple(w.shape)}")


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                        ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel cross-entropy and its base weight: ``(ce (B,H,W), w (B,H,W))``.

    ``w`` is 0 where ``target == ignore_index`` and ``class_weights[y_i]`` (or 1) elsewhere;
    ``ce`` is 0 where ``w`` is 0. The building block of :func:`masked_cross_entropy` and
    :func:`hand_pool_loss`.
    """
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits (B,K,H,W) and target (B,H,W) expected, got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    labelled = target != ignore_index
    safe_t = torch.where(labelled, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits, safe_t, reduction="none")
    w = labelled.to(logits.dtype)
    if class_weights is not None:
        cw = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        if cw.shape != (logits.shape[1],):
            raise ValueError(f"class_weights must have shape ({logits.shape[1]},), got {tuple(cw.shape)}")
        w = w * cw[safe_t]
    return torch.where(labelled, ce, torch.zeros_like(ce)), w


def _apply_pixel_weights(w: torch.Tensor, pixel_weights: torch.Tensor | None) -> torch.Tensor:
    if pixel_weights is None:
        return w
    return w * torch.nan_to_num(pixel_weights.to(w.dtype), nan=0.0).clamp_min(0.0)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                         pixel_weights: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Weighted mean cross-entropy over labelled pixels.

    ``loss = sum_i w_c(y_i) * w_i * CE_i / sum_i w_c(y_i) * w_i`` over pixels with
    ``y_i != ignore_index`` (and finite, positive total weight). ``class_weights (K,)`` as in
    ``torch.nn.functional.cross_entropy``; ``pixel_weights (B, H, W)`` >= 0 (NaN weights count as 0).
    """
    _check_pixel_weights(pixel_weights, target.shape)
    ce, w = pixel_cross_entropy(logits, target, class_weights=class_weights, ignore_index=ignore_index)
    w = _apply_pixel_weights(w, pixel_weights)
    total = w.sum()
    if total <= 0:
        return _zero(logits)
    return (w * ce).sum() / total


def _valid_probs(probs: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    ok = torch.isfinite(probs).all(dim=1)
    return ok if valid is None else ok & valid.bool()


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities at temperature ``T``: ``softmax(log(p) / T)`` over dim 1.

    Equals ``softmax(z/T)`` for ``p = softmax(z)``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logp = torch.log(torch.nan_to_num(probs.float(), nan=1.0).clamp_min(PROB_EPS))
    return torch.softmax(logp / temperature, dim=1)


def pixel_kl_distillation(student_logits: torch.Tensor, teacher_probs: torch.Tensor, *, temperature: float = 2.0,
                          valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel Hinton term and its mask: ``(T^2 KL(p_T || softmax(s/T)) (B,H,W), m (B,H,W))``.

    ``m`` is 1 where ``valid`` (if given) and every teacher probability is finite, else 0 (the
    KL is 0 there). The building block of :func:`kl_distillation` and :func:`hand_pool_loss`.
    """
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher probs "
                         f"{tuple(teacher_probs.shape)} differ in shape")
    mask = _valid_probs(teacher_probs, valid)
    p_t = soften(teacher_probs, temperature).to(student_logits.dtype)
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    kl = (p_t * (torch.log(p_t.clamp_min(PROB_EPS)) - log_q)).sum(dim=1)  # (B, H, W)
    kl = torch.where(mask, kl, torch.zeros_like(kl))
    return temperature ** 2 * kl, mask.to(student_logits.dtype)


def kl_distillation(student_logits: torch.Tensor, teacher_probs: torch.Tensor, *, temperature: float = 2.0,
                    valid: torch.Tensor | None = None, pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Hinton distillation: ``T^2 * KL(p_T || softmax(s / T))`` averaged over valid pixels.

    ``teacher_probs (B, K, H, W)`` at temperature 1 (as stored by ``label_pool``), softened here
    to ``p_T``. Pixels count where ``valid`` is true and every teacher probability is finite;
    ``pixel_weights (B, H, W)`` weight them (weighted mean). The ``T^2`` factor keeps gradient
    magnitudes comparable across temperatures (Hinton et al. 2015).
    """
    kl, w = pixel_kl_distillation(student_logits, teacher_probs, temperature=temperature, valid=valid)
    _check_pixel_weights(pixel_weights, w.shape)
    w = _apply_pixel_weights(w, pixel_weights)
    total = w.sum()
    if total <= 0:
        return _zero(student_logits)
    return (w * kl).sum() / total


def hand_pool_loss(hand_loss: torch.Tensor, hand_w: torch.Tensor, pool_loss: torch.Tensor, pool_w: torch.Tensor, *,
                   hand_weight: float = 1.0, distill_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """The student objective: hand and pool terms combined *per pixel* in one weighted mean.

    ``L = sum_i (a h_i CE_i + b p_i D_i) / sum_i (a h_i + b p_i)`` with ``a = hand_weight``,
    ``b = distill_weight``, per-pixel losses ``CE_i = hand_loss`` (cross-entropy on the hand
    label) and ``D_i = pool_loss`` (distillation), and per-pixel weights ``h_i = hand_w`` (0
    off hand-labelled pixels; class and edge weights multiplied in) and ``p_i = pool_w`` (0
    where the pool target is missing; edge, CromSS/confidence and per-sample ``soft_weight``
    multiplied in). All ``(B, H, W)``. A hand pixel therefore weighs ``a h_i`` against a pool
    pixel's ``b p_i`` whatever the batch mix: unlike adding two separately normalised means,
    the weight of one hand pixel does not grow when a batch holds fewer hand pixels.

    Returns ``(loss, terms)``: ``terms`` (detached, for the log) holds ``ce`` and ``distill``
    (each term's own weighted mean, 0 when it has no pixel) and ``hand_share`` (the hand
    pixels' share of the total weight). An exact 0 (attached) when no pixel has weight.
    """
    if hand_weight < 0 or distill_weight < 0:
        raise ValueError(f"hand_weight and distill_weight must be >= 0, got {hand_weight} and {distill_weight}")
    shapes = {tuple(t.shape) for t in (hand_loss, hand_w, pool_loss, pool_w)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"hand_pool_loss: hand/pool losses and weights must share one (B, H, W) shape, got {shapes}")
    wh, wp = hand_weight * hand_w, distill_weight * pool_w
    sum_h, sum_p = wh.sum(), wp.sum()
    total = sum_h + sum_p
    with torch.no_grad():
        terms = {"ce": (hand_w * hand_loss).sum() / hand_w.sum() if hand_w.sum() > 0 else hand_loss.new_zeros(()),
                 "distill": (pool_w * pool_loss).sum() / pool_w.sum() if pool_w.sum() > 0 else pool_loss.new_zeros(()),
                 "hand_share": sum_h / total if total > 0 else hand_loss.new_zeros(())}
    if total <= 0:
        return (hand_loss.sum() + pool_loss.sum()) * 0.0, terms
    return ((wh * hand_loss).sum() + (wp * pool_loss).sum()) / total, terms


def confident_pseudo_labels(teacher_probs: torch.Tensor, *, threshold: float = 0.9,
                            valid: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Hard labels ``argmax_k p`` where ``max_k p >= threshold`` (and valid), ``ignore_index`` elsewhere.

    ``teacher_probs (B, K, H, W)`` -> int64 ``(B, H, W)``. ``threshold`` in [0, 1].
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    mask = _valid_probs(teacher_probs, valid)
    conf, cls = torch.nan_to_num(teacher_probs.float(), nan=0.0).max(dim=1)
    keep = mask & (conf >= threshold)
    return torch.where(keep, cls, torch.full_like(cls, ignore_index))


def edge_weights(label: torch.Tensor, *, width: int = 2, inner: float = 1.0, outer: float = 1.0,
                 ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-pixel weights ``(B, H, W)``: 1 everywhere, ``1 + inner`` on water pixels within ``width``
    pixels (Chebyshev distance) of a dry pixel, ``1 + outer`` on dry pixels within ``width`` of water.

    Garg et al. 2023 weight the bands just inside and just outside water edges, where weak and
    hand labels disagree most. Unlabelled pixels (``ignore_index`` or anything not dry/water)
    keep weight 1 and never count as a neighbour. ``label`` is int ``(B, H, W)``.
    """
    if label.ndim != 3:
        raise ValueError(f"label must have shape (B, H, W), got {tuple(label.shape)}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    water = (label == WATER).float()[:, None]
    dry = (label == DRY).float()[:, None]
    k = 2 * width + 1
    near_water = F.max_pool2d(water, k, stride=1, padding=width)[:, 0] > 0
    near_dry = F.max_pool2d(dry, k, stride=1, padding=width)[:, 0] > 0
    w = torch.ones(label.shape, dtype=torch.float32, device=label.device)
    w = w + inner * ((label == WATER) & near_dry).float() + outer * ((label == DRY) & near_water).float()
    return w


def class_weights_from_counts(counts, *, eps: float = 1.0) -> torch.Tensor:
    """Inverse-frequency class weights ``(K,)`` normalised to mean 1 from pixel counts per class."""
    c = torch.as_tensor(counts, dtype=torch.float64) + eps
    w = c.sum() / (len(c) * c)
    return (w / w.mean()).float()


__all__ = [
    "IGNORE_INDEX", "class_weights_from_counts", "confident_pseudo_labels", "edge_weights", "hand_pool_loss",
    "kl_distillation", "masked_cross_entropy", "pixel_cross_entropy", "pixel_kl_distillation", "soften",
]
