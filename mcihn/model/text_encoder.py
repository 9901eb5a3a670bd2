"""Sec. 4.3 - a BERT-family text encoder fine-tuned inside the model (Eq. 2 trained end to end).

The paper extracts X_t = BERT(Text) (Eq. 2) and trains BERT with its own learning rate, 2e-5, while
every other module uses 1e-3 (Sec. 4.3). The models of Table 2's best MOSI rows (Self-MM, EMT,
MCIHN) all fine-tune BERT; on frozen BERT features the field lands near 0.9-1.0 MAE.

:class:`WithTextEncoder` puts an encoder in front of any model of the registry (MCIHN or a
baseline, like MMSA's ``use_bert`` + ``use_finetune``): it turns the token ids that MMSA pickles
carry (``text_bert``: (B, 3, L) ids / attention mask / segment ids) into the token states
X_t (B, L, H) that the model reads as its ``text`` input, with ``text_mask`` = the attention mask.

* The encoder joins the optimiser of the model's task phase (key ``"main"``), as its own parameter
  group with learning rate ``text_lr``; the other phases (reconstruction, adversarial) read its
  states without gradients, so Algorithm 1's AAE phases still update only the AAE.
* A checkpoint holds the encoder's weights and its transformers config (``text_encoder`` entry), so
  it can be rebuilt without the original folder (the tokenizer is needed only for raw text).
"""
from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn

from ..utils import from_pretrained

#: Sec. 4.3: "For BERT, we set the learning rate value as 2e-5".
TEXT_LR = 2e-5
#: MMSA's MOSI / SIMS pickles carry 50 text tokens; used when raw text is tokenised here.
TEXT_MAX_LEN = 50


class TextEncoderError(ValueError):
    """The encoder cannot be loaded, or does not fit the data (the message names the file and field)."""


def _is_local(name: str) -> bool:
    return os.path.isdir(os.path.expanduser(name))


def load_pretrained(name_or_path: str, what: str = "model"):
    """AutoModel / AutoTokenizer from a local folder or a hub name, local files first (no network wait
    when the files are there); a clear :class:`TextEncoderError` when neither works."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    cls = {"model": AutoModel, "tokenizer": AutoTokenizer, "config": AutoConfig}[what]
    path = os.path.expanduser(name_or_path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # loading reports and progress bars are noise here; errors still show
    hf_logging.disable_progress_bar()
    try:
        return from_pretrained(cls, path)
    except Exception as e:  # OSError (not found), ValueError (not a model folder), network errors
        where = "folder" if _is_local(path) else "name"
        raise TextEncoderError(
            f"--text-encoder {name_or_path!r}: cannot load the {what} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            f"give a local {where} made with save_pretrained, or a hub name such as bert-base-uncased with the "
            "files in the Hugging Face cache (offline: HF_HUB_OFFLINE=1 and a cached download)") from e
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def encoder_vocab_size(name_or_path: str) -> int:
    """The encoder's vocabulary size, read from its config alone (no weights loaded)."""
    return int(load_pretrained(name_or_path, "config").vocab_size)


def token_ids(tokenizer, texts, max_len: int = TEXT_MAX_LEN) -> np.ndarray:
    """Raw texts -> MMSA's ``text_bert`` layout (N, 3, max_len) int64: ids, attention mask, segment ids."""
    enc = tokenizer([str(t) for t in texts], padding="max_length", truncation=True, max_length=max_len,
                    return_token_type_ids=True, return_attention_mask=True)
    return np.stack([np.asarray(enc["input_ids"]), np.asarray(enc["attention_mask"]),
                     np.asarray(enc["token_type_ids"])], axis=1).astype(np.int64)  # (N, 3, L)


def check_token_ids(text_bert: np.ndarray, vocab_size: int, where: str) -> None:
    """Refuse ids the encoder's embedding table does not have (a tokenizer of another vocabulary)."""
    ids = text_bert[:, 0, :]
    bad = np.flatnonzero((ids >= vocab_size).any(axis=1) | (ids < 0).any(axis=1))
    if bad.size:
        raise TextEncoderError(
            f"{where}, field 'text_bert', sample {bad[0]}: token id {int(ids[bad[0]].max())} is outside the encoder's "
            f"vocabulary of {vocab_size}: the ids were made with another tokenizer; use the encoder they were "
            "made for, or give raw_text and let the encoder's tokenizer make the ids")


class TextEncoder(nn.Module):
    """A transformers encoder: text_bert (B, 3, L) -> token states (B, L, H), zero at padding."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model, self.name = model, name
        self._segments = "token_type_ids" in inspect.signature(model.forward).parameters  # DistilBERT has none

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "TextEncoder":
        return cls(load_pretrained(name_or_path, "model"), name_or_path)

    @classmethod
    def from_spec(cls, spec: dict) -> "TextEncoder":
        """Rebuild the architecture from a checkpoint's ``text_encoder`` entry (weights loaded afterwards)."""
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.for_model(**spec["config"])
        return cls(AutoModel.from_config(config), spec["name"])

    def spec(self) -> dict:
        """Plain-type description for checkpoints: the name it was loaded from and its transformers config."""
        return {"name": self.name, "config": self.model.config.to_dict()}

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    def forward(self, text_bert: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """text_bert (B, 3, L) long -> (states (B, L, H), mask (B, L) bool)."""
        ids, mask, segments = text_bert.long().unbind(dim=1)  # 3 x (B, L)
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if self._segments:
            kwargs["token_type_ids"] = segments
        states = self.model(**kwargs).last_hidden_state  # (B, L, H)
        return states * mask[..., None].to(states.dtype), mask.bool()


class WithTextEncoder(nn.Module):
    """``inner`` (any registry model) reading its ``text`` input from a fine-tuned :class:`TextEncoder`."""

    def __init__(self, inner: nn.Module, encoder: TextEncoder, text_lr: float = TEXT_LR):
        super().__init__()
        self.inner, self.encoder, self.text_lr = inner, encoder, float(text_lr)

    # what the trainer, the runner and the analysis code read from a model
    @property
    def cfg(self):
        return self.inner.cfg

    @property
    def dims(self):
        return self.inner.dims

    @property
    def modalities(self):
        return self.inner.modalities

    def embed(self, batch: dict, grad: bool = True) -> dict:
        """The batch with ``text`` / ``text_mask`` from the encoder (Eq. 2); without ``grad``, no graph."""
        with contextlib.nullcontext() if grad else torch.no_grad():
            states, mask = self.encoder(batch["text_bert"])  # (B, L, H), (B, L)
        return {**batch, "text": states, "text_mask": mask}

    def forward(self, batch: dict, **kwargs):
        return self.inner(self.embed(batch), **kwargs)

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        return self.forward(batch).pred

    def generators(self) -> dict:
        return self.inner.generators() if hasattr(self.inner, "generators") else {}

    def prior_generator(self, device):
        return self.inner.prior_generator(device)

    def training_phases(self):
        """The inner model's phases; the task phase ("main") also fine-tunes the encoder at ``text_lr``."""
        phases = []
        for ph in self.inner.training_phases():
            task = ph.key == "main"
            loss = (lambda b, _f=ph.loss, _g=task: _f(self.embed(b, grad=_g)))
            extra = list(ph.extra_groups) + ([{"params": list(self.encoder.parameters()), "lr": self.text_lr}]
                                             if task else [])
            phases.append(replace(ph, loss=loss, extra_groups=extra))
        return phases
