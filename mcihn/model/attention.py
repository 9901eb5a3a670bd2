"""Scaled dot-product attention, fused or explicit, and the switch that chooses between them.

Every attention of the package (the FFM, Eq. 15; the AAE's time resampler; MulT) goes through
:func:`attend`. It has two paths that compute the same thing:

* **fused**: ``torch.nn.functional.scaled_dot_product_attention`` (one kernel on CUDA, flash /
  memory-efficient attention; a fused loop on CPU). It never forms the weights as a tensor the
  caller can read, so it returns ``None`` for them.
* **explicit**: ``softmax(Q K^T * scale)`` written out, then ``weights @ V``; returns the weights.

Which one runs, :func:`want_weights`:

* inside ``with attention_weights(True):`` always the explicit path (weights returned, also in
  training mode); inside ``with attention_weights(False):`` always the fused one;
* otherwise (the default) the explicit path in **eval** mode, so ``model.eval()(batch)`` returns
  the attention weights exactly where it always did (``MCIHNOutput.ffm_attention``, MulT's
  ``attention``: notebooks 03 and ``mcihn.notebook.analysis``), and the fused path in **training**
  mode, which is what the trainer's steps run. In training mode the weight fields are then
  empty (``{}``); wrap the call in ``attention_weights(True)`` to get them there too.

Masks: ``mask`` is bool, True = this key takes part, broadcastable to (..., L_q, L_k). A query row
whose mask is all False would give NaN; callers let such rows attend everywhere instead (see
``QueryResampler`` and ``mcihn.baselines.mult.padding_mask``), so both paths see the same mask.
Dropout on the weights: ``dropout_p`` (pass 0 in eval mode); the two paths draw different random
masks, so only their eval-mode outputs are comparable.

Determinism on CUDA: the flash, memory-efficient and cuDNN kernels have non-deterministic backward
passes unless ``torch.use_deterministic_algorithms(True)`` is strict, and ``mcihn.utils.set_seed``
asks for it with ``warn_only=True``. So while deterministic algorithms are on and a gradient is
needed, CUDA attention runs on SDPA's MATH backend (same seed, same result, as the explicit path
always gave); ``set_seed(seed, deterministic=False)`` (``bench`` does) lets torch pick the fastest.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

_FORCE: contextvars.ContextVar = contextvars.ContextVar("mcihn_attention_weights", default=None)


@contextlib.contextmanager
def attention_weights(enabled: bool = True):
    """Within the block, attention modules return their weights (``True``: explicit path) or never do
    (``False``: fused path), whatever the module's train / eval mode. Nests; thread- and task-local."""
    token = _FORCE.set(bool(enabled))
    try:
        yield
    finally:
        _FORCE.reset(token)


def want_weights(module: nn.Module) -> bool:
    """Should ``module`` compute its attention weights explicitly? See the module docstring."""
    forced = _FORCE.get()
    if forced is not None:
        return forced
    return not module.training


def deterministic_backend(*tensors: torch.Tensor):
    """A context in which CUDA SDPA is deterministic: the MATH backend while deterministic algorithms are on
    and a gradient will flow through ``tensors``; otherwise nothing (torch picks its fastest kernel)."""
    if (tensors[0].is_cuda and torch.are_deterministic_algorithms_enabled() and torch.is_grad_enabled()
            and any(t.requires_grad for t in tensors)):
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
           dropout_p: float = 0.0, scale: float | None = None, need_weights: bool = False):
    """softmax(q k^T * scale) v with q (..., L_q, E), k (..., L_k, E), v (..., L_k, E_v).

    ``mask`` bool, True = attend, broadcastable to (..., L_q, L_k). ``scale`` defaults to 1/sqrt(E).
    Returns (output (..., L_q, E_v), weights (..., L_q, L_k) or None on the fused path).
    """
    if not need_weights:
        with deterministic_backend(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale), None
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L_q, L_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    attn = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return attn @ v, weights
