"""ULMFiT's slanted triangular learning rates, as a torch LR scheduler.

Why: fine-tuning wants the model to converge quickly to a suitable region of parameter space early in training and
then to refine its parameters there. A slanted triangular schedule does this with a short linear warm-up from
``lr_max / ratio`` to ``lr_max`` followed by a long linear decay back to ``lr_max / ratio``.

Source: Jeremy Howard and Sebastian Ruder, "Universal Language Model Fine-tuning for Text Classification", ACL 2018,
section 3.2 (https://arxiv.org/abs/1801.06146).

The formula, for optimizer step ``t`` (0-based) of ``T`` steps in all::

    cut  = floor(T * cut_frac)
    p    = t / cut                                       if t < cut
           1 - (t - cut) / (cut * (1 / cut_frac - 1))    otherwise
    lr_t = lr_max * (1 + p * (ratio - 1)) / ratio

``cut_frac`` is the fraction of the steps spent increasing the lr (paper's default 0.1) and ``ratio`` how much smaller
the lowest lr is than the highest (default 32). ``lr_max`` is each parameter group's base lr (its ``initial_lr``), so
groups with different base lrs (discriminative fine-tuning) all follow the same shape, scaled by their own base.

Three choices the paper leaves open: a run shorter than ``1 / cut_frac`` steps (a debug run) warms up for one
step, with a warning, rather than not at all; ``p`` is clamped at 0, so steps past the end of the decay (past ``T``,
or the few steps before ``T`` when ``T * cut_frac`` is not a whole number and the decay, of length
``cut * (1 / cut_frac - 1)``, ends early) stay at ``lr_max / ratio`` and the lr is never negative; and ``floor``
forgives float rounding, so that ``T * cut_frac`` that is a whole number in exact arithmetic (``100 * 0.29`` = 29,
not 28.999...) gives that number.
"""

from __future__ import annotations

import math
import warnings
from numbers import Real

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["SlantedTriangularLR", "total_steps_for"]


def _check_count(name: str, value: object) -> int:
    """``value`` as a step or epoch count: an int >= 1 (bools and floats, even ``10.0``, are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= 1, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _cut(total_steps: int, cut_frac: float) -> int:
    """``floor(total_steps * cut_frac)``, taking a product within float rounding of a whole number as that number."""
    product = total_steps * cut_frac
    nearest = round(product)
    return nearest if math.isclose(product, nearest, rel_tol=1e-9, abs_tol=1e-12) else math.floor(product)


def _min_total_steps(cut_frac: float) -> int:
    """The smallest ``total_steps`` whose warm-up has at least one step, ``floor(total_steps * cut_frac) >= 1``."""
    steps = max(1, math.ceil(1 / cut_frac))
    while _cut(steps, cut_frac) < 1:
        steps += 1
    while steps > 1 and _cut(steps - 1, cut_frac) >= 1:
        steps -= 1
    return steps


def total_steps_for(epochs: int, steps_per_epoch: int) -> int:
    """The ``total_steps`` of a run of ``epochs`` epochs, each of ``steps_per_epoch`` optimizer steps.

    ``steps_per_epoch`` counts optimizer steps, not batches: with gradient accumulation over ``k`` batches it is
    ``ceil(batches_per_epoch / k)``.

    In a Lightning module, stepping the scheduler once per optimizer step (``"interval": "step"`` in the scheduler
    config returned by ``configure_optimizers``), ``self.trainer.estimated_stepping_batches`` is this number already
    worked out for the whole run: it takes ``max_epochs``/``max_steps``, ``limit_train_batches``,
    ``accumulate_grad_batches`` and the number of devices into account. Pass it as ``total_steps`` directly. It is
    ``float("inf")`` when the run has no bound (``max_epochs=-1`` and ``max_steps=-1``), which the scheduler
    refuses, as it refuses any non-int. With ``"interval": "epoch"`` the schedule counts epochs, and
    ``total_steps`` is ``max_epochs``.
    """
    return _check_count("epochs", epochs) * _check_count("steps_per_epoch", steps_per_epoch)


class SlantedTriangularLR(LRScheduler):
    """Slanted triangular learning rates (ULMFiT, Howard & Ruder 2018, section 3.2); see the module docstring.

    Args:
        optimizer: the optimizer whose groups' lrs are scheduled; each group's ``initial_lr`` (its ``lr`` when the
            scheduler is built fresh) is its ``lr_max``.
        total_steps: ``T``, the number of times :meth:`step` will be called over the run (usually optimizer steps;
            see :func:`total_steps_for`). An int >= 1, large enough that ``floor(T * cut_frac) >= 1``.
        cut_frac: fraction of ``total_steps`` spent increasing the lr, in (0, 1).
        ratio: ``lr_max`` over the lowest lr, >= 1 (1 keeps the lr constant).
        last_epoch: torch's resume index; leave it at -1 and restore with :meth:`load_state_dict`.

    A group added to the optimizer after construction is scheduled once its ``initial_lr`` is appended to
    :attr:`base_lrs` (ftexp's phase transitions do this): it follows the same factor as every other group from the
    next :meth:`step` on.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None,
        cut_frac: float = 0.1,
        ratio: float = 32.0,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None:  # allowed in a config: ftexp.models.SequenceClassifier fills it from the trainer
            raise ValueError(
                "total_steps is None: give the number of scheduler steps of the run (with ftexp's SequenceClassifier, "
                "total_steps: null in the config is filled from trainer.estimated_stepping_batches)"
            )
        total_steps = _check_count("total_steps", total_steps)
        if isinstance(cut_frac, bool) or not isinstance(cut_frac, Real) or not 0 < cut_frac < 1:
            raise ValueError(f"cut_frac must be a number strictly between 0 and 1, got {cut_frac!r}")
        if isinstance(ratio, bool) or not isinstance(ratio, Real) or not 1 <= ratio < math.inf:
            raise ValueError(f"ratio must be a finite number >= 1, got {ratio!r}")
        cut = _cut(total_steps, cut_frac)
        if cut < 1:
            # a run shorter than 1 / cut_frac steps (a debug run, fast_dev_run): the paper's warm-up would be empty;
            # one step of it keeps the schedule's shape, and the warning says what a real run needs
            warnings.warn(
                f"SlantedTriangularLR: total_steps={total_steps} with cut_frac={cut_frac} gives floor({total_steps} "
                f"* {cut_frac}) = 0 warm-up steps; warming up for one step instead (total_steps must be at least "
                f"{_min_total_steps(cut_frac)} for this cut_frac to follow the paper)",
                stacklevel=2,
            )
            cut = 1
        self.total_steps = total_steps
        self.cut_frac = float(cut_frac)
        self.ratio = float(ratio)
        self.cut = cut
        self.decay_steps = cut * (1 / self.cut_frac - 1)  # the paper's length of the decay, cut * (1/cut_frac - 1)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of every group's base lr at ``step`` (0-based): from ``1 / ratio`` up to 1 at ``cut``,
        then down to ``1 / ratio``, where it stays."""
        if step < self.cut:  # warm-up
            p = max(step, 0) / self.cut
            return (1 + p * (self.ratio - 1)) / self.ratio
        p = max(0.0, 1 - (step - self.cut) / self.decay_steps)  # decay, then the floor
        return (1 + p * (self.ratio - 1)) / self.ratio

    def get_lr(self) -> list[float | Tensor]:
        """Each group's lr at step :attr:`last_epoch`, in closed form: its base lr times :meth:`factor`."""
        scale = self.factor(self.last_epoch)
        return [base_lr * scale for base_lr in self.base_lrs]
