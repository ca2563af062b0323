"""Gradient clipping by global norm, and the Adam optimizer."""

from __future__ import annotations

import math

import numpy as np

from charrnn.nn.model import Params


def global_norm(grads: Params) -> float:
    """The L2 norm of all gradients taken together as one vector."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_scale(norm: float, max_norm: float) -> float:
    """What scales gradients of global norm ``norm`` down to ``max_norm`` (1 if they are
    within it, or ``max_norm`` is 0: no clipping)."""
    return max_norm / norm if 0 < max_norm < norm else 1.0


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction.

    ``first_moment`` and ``second_moment`` have the keys of the parameters;
    ``step`` counts the updates made so far.
    """

    def __init__(self, params: Params, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.first_moment = {name: np.zeros_like(p) for name, p in params.items()}
        self.second_moment = {name: np.zeros_like(p) for name, p in params.items()}
        self.step = 0
        self._scratch = {name: np.empty_like(p) for name, p in params.items()}  # work arrays

    def update_(self, params: Params, grads: Params, lr: float | None = None,
                grad_scale: float = 1.0) -> None:
        """One update of every parameter in place; ``lr`` overrides the base rate, and the
        gradients count as multiplied by ``grad_scale`` (see ``clip_scale``)."""
        step_size = self.next_step_size(lr)
        for name, param in params.items():
            self.update_arrays_(param, grads[name], self.first_moment[name],
                                self.second_moment[name], self._scratch[name], step_size,
                                grad_scale)

    def next_step_size(self, lr: float | None = None) -> float:
        """Count one more update and return its step size, with both bias corrections
        folded in; ``update_arrays_`` then updates the parameters with it."""
        self.step += 1
        lr = self.lr if lr is None else lr
        return lr * math.sqrt(1 - self.beta2 ** self.step) / (1 - self.beta1 ** self.step)

    def update_arrays_(self, param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
                       scratch: np.ndarray, step_size: float, grad_scale: float = 1.0) -> None:
        """Update ``param`` and its moments ``m`` and ``v`` in place from its gradient; all
        of one shape, the whole of a parameter or any part of it. ``scratch`` is a work
        array of that shape."""
        # m = beta1 m + (1 - beta1) grad
        m *= self.beta1
        np.multiply(grad, (1 - self.beta1) * grad_scale, out=scratch)
        m += scratch
        # v = beta2 v + (1 - beta2) grad^2
        v *= self.beta2
        np.multiply(grad, grad, out=scratch)
        scratch *= (1 - self.beta2) * grad_scale ** 2
        v += scratch
        # param -= step_size m / (sqrt(v) + eps)
        np.sqrt(v, out=scratch)
        scratch += self.eps
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        param -= scratch
