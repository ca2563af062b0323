"""Gradient clipping by global norm, and the Adam optimizer."""

from __future__ import annotations

import math

import numpy as np

from .model import Params


def global_norm(grads: Params) -> float:
    """The L2 norm of all gradients taken together as one vector."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_by_global_norm_(grads: Params, max_norm: float) -> float:
    """Scale all gradients in place so their global norm is at most ``max_norm``.

    Returns the norm before clipping (NaN or inf if the gradients are not finite).
    """
    norm = global_norm(grads)
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm


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

    def update_(self, params: Params, grads: Params, lr: float | None = None) -> None:
        """One update of every parameter in place; ``lr`` overrides the base rate."""
        self.step += 1
        lr = self.lr if lr is None else lr
        # Fold both bias corrections into the step size.
        step_size = lr * math.sqrt(1 - self.beta2 ** self.step) / (1 - self.beta1 ** self.step)
        for name, param in params.items():
            grad, m, v = grads[name], self.first_moment[name], self.second_moment[name]
            scratch = self._scratch[name]
            # m = beta1 m + (1 - beta1) grad
            m *= self.beta1
            np.multiply(grad, 1 - self.beta1, out=scratch)
            m += scratch
            # v = beta2 v + (1 - beta2) grad^2
            v *= self.beta2
            np.multiply(grad, grad, out=scratch)
            scratch *= 1 - self.beta2
            v += scratch
            # param -= step_size m / (sqrt(v) + eps)
            np.sqrt(v, out=scratch)
            scratch += self.eps
            np.divide(m, scratch, out=scratch)
            scratch *= step_size
            param -= scratch
