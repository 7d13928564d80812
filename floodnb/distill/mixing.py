"""Hand + pool training data with a fixed number of hand samples in every batch.

The student (:func:`floodnb.distill.student.train_student`) learns from a few hand-labelled
chips and a much larger teacher-labelled pool. Concatenating the two and shuffling leaves the
hand share of a batch to chance (with 10x more pool chips, about 40 % of batches of 8 hold no
hand chip at all). :class:`HandPoolData` instead puts exactly ``hand_per_batch`` hand samples
and ``batch_size - hand_per_batch`` pool samples into every global batch
(:class:`HandMixSampler`, which the engine takes from the dataset's :meth:`HandPoolData.epoch_sampler`).

Order: each source is read as an endless stream of seeded permutations — position ``g`` of a
source with ``N`` chips is chip ``perm_c[g mod N]``, ``c = g // N``, ``perm_c`` seeded by
``(seed, source, c)`` — so over the epochs every chip of a source is drawn equally often, and
sample ``j`` of step ``k`` of epoch ``e`` depends only on ``(seed, e, k, j)``: resuming mid-epoch
(:meth:`~floodnb.distill.engine.EpochSampler.set_start`) reproduces the same batches.

Data-parallel (:mod:`floodnb.distill.ddp`): global batch ``k`` is split like
``DistributedSampler`` splits a permutation — rank ``r`` of ``W`` takes its elements
``r, r + W, ...`` — so the union of the ranks' step-``k`` batches is the 1-process batch ``k``
(each rank holds ``ceil`` or ``floor`` of ``hand_per_batch / W`` hand samples; choose
``hand_per_batch`` divisible by ``W`` for equal shares). Each rank normalises its own per-pixel
loss and DDP averages the ranks' gradients, so the exact per-pixel weighting holds within a rank.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Dataset

from floodnb.distill.engine import EpochSampler
from floodnb.distill.inputs import dataset_len

#: stream ids of the two sources in the permutation seeds
_HAND, _POOL = 0, 1


def hand_count(hand_fraction: float, batch_size: int) -> int:
    """Hand samples per batch for a hand share: ``round(hand_fraction * batch_size)`` in ``[1, batch_size - 1]``."""
    if not 0.0 < hand_fraction < 1.0:
        raise ValueError(f"hand_fraction must lie in (0, 1), got {hand_fraction!r}")
    if batch_size < 2:
        raise ValueError(f"a batch mixing hand and pool samples needs batch_size >= 2, got {batch_size}")
    return min(batch_size - 1, max(1, round(hand_fraction * batch_size)))


class HandMixSampler(EpochSampler):
    """Indices of :class:`HandPoolData`: ``hand_per_batch`` hand indices (``< n_hand``) then pool indices
    (``>= n_hand``) in every global batch of ``batch_size``, ``steps`` batches per epoch, sharded by rank.
    """

    def __init__(self, n_hand: int, n_pool: int, *, hand_per_batch: int, batch_size: int, steps: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if n_hand < 1 or n_pool < 1:
            raise ValueError(f"HandMixSampler needs hand and pool chips, got {n_hand} hand and {n_pool} pool")
        if not 1 <= hand_per_batch < batch_size:
            raise ValueError(f"hand_per_batch must lie in [1, batch_size - 1 = {batch_size - 1}], got {hand_per_batch}")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by the {world_size} data-parallel processes")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        super().__init__(n_hand + n_pool, seed=seed, rank=rank, world_size=world_size)
        self.n_hand, self.n_pool, self.hand_per_batch = n_hand, n_pool, hand_per_batch
        self.batch_size, self.steps = batch_size, steps
        self.num_samples = steps * batch_size // world_size

    def _stream(self, source: int, n: int, start: int, count: int) -> np.ndarray:
        """Positions ``start .. start + count - 1`` of a source's endless permutation stream."""
        g = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        for c in np.unique(g // n):
            perm = np.random.default_rng((self.seed, 104729, source, int(c))).permutation(n)
            sel = g // n == c
            out[sel] = perm[g[sel] % n]
        return out

    def global_batches(self) -> np.ndarray:
        """``(steps, batch_size)`` dataset indices of this epoch's global batches (hand first)."""
        h, p = self.hand_per_batch, self.batch_size - self.hand_per_batch
        hand = self._stream(_HAND, self.n_hand, self.epoch * self.steps * h, self.steps * h).reshape(self.steps, h)
        pool = self._stream(_POOL, self.n_pool, self.epoch * self.steps * p, self.steps * p).reshape(self.steps, p)
        return np.concatenate([hand, pool + self.n_hand], axis=1)

    def indices(self) -> list[int]:
        return self.global_batches()[:, self.rank::self.world_size].reshape(-1).tolist()


class HandPoolData(Dataset):
    """``hand`` and ``pool`` side by side (index ``i < len(hand)``: ``hand[i]``, else ``pool[i - len(hand)]``)
    trained with :class:`HandMixSampler`: ``hand_per_batch`` hand samples in every batch.

    ``steps_per_epoch``: global batches per epoch (default ``ceil((len(hand) + len(pool)) /
    batch_size)``, the steps of one shuffled pass over both; pool chips not drawn in an epoch
    come first in the next, see the module doc). Exposes ``datasets`` (the engine forwards
    ``set_epoch`` to both) and the hand dataset's ``normalizers``.
    """

    def __init__(self, hand: Dataset, pool: Dataset, *, hand_per_batch: int,
                 steps_per_epoch: int | None = None) -> None:
        self.n_hand, self.n_pool = dataset_len(hand), dataset_len(pool)
        if self.n_hand == 0 or self.n_pool == 0:
            raise ValueError(f"HandPoolData: hand ({self.n_hand} chips) and pool ({self.n_pool} chips) must not be "
                             "empty")
        if hand_per_batch < 1:
            raise ValueError(f"hand_per_batch must be >= 1, got {hand_per_batch}")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.datasets = [hand, pool]
        self.hand_per_batch, self.steps_per_epoch = int(hand_per_batch), steps_per_epoch

    @property
    def normalizers(self):
        return self.datasets[0].normalizers  # chip datasets record them

    def __len__(self) -> int:
        return self.n_hand + self.n_pool

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        return self.datasets[0][i] if i < self.n_hand else self.datasets[1][i - self.n_hand]

    def steps(self, batch_size: int) -> int:
        """Global batches per epoch for ``batch_size``."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return math.ceil((self.n_hand + self.n_pool) / batch_size)

    def epoch_sampler(self, *, seed: int, batch_size: int, rank: int = 0, world_size: int = 1) -> HandMixSampler:
        """The sampler :func:`floodnb.distill.engine.fit` uses for this dataset."""
        return HandMixSampler(self.n_hand, self.n_pool, hand_per_batch=self.hand_per_batch, batch_size=batch_size,
                              steps=self.steps(batch_size), seed=seed,
                              rank=rank, world_size=world_size)
