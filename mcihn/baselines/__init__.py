"""Baselines of Table 2, trained by the same trainer on the same features, splits, seeds and metrics.

One file per model, each written from its paper: ``tfn`` (Zadeh et al. 2017), ``lmf`` (Liu et al.
2018), ``mult`` (Tsai et al. 2019) and ``late`` (decision-level fusion, the floor), ``selfmm`` (Yu et al. 2021), ``emt`` (EMT-DLFR, Sun et al.
2023) and ``cmhfm`` (from the MCIHN paper's description; no released code). ``common``
holds what they share. Build one through :func:`mcihn.training.registry.build_model` or directly::

    from mcihn.baselines import TFN, TFNConfig
    model = TFN(TFNConfig.tiny(), data.dims)
"""
from .cmhfm import CMHFM, CMHFMConfig
from .common import BaselineConfig, BaselineOutput
from .emt import EMT, EMTConfig
from .late import LateFusion, LateFusionConfig
from .lmf import LMF, LMFConfig, LowRankFusion
from .mult import MulT, MulTConfig
from .selfmm import SelfMM, SelfMMConfig
from .tfn import TFN, TFNConfig, tensor_fusion

__all__ = ["BaselineConfig", "BaselineOutput", "CMHFM", "CMHFMConfig", "EMT", "EMTConfig", "SelfMM", "SelfMMConfig", "LateFusion", "LateFusionConfig", "LMF", "LMFConfig",
           "LowRankFusion", "MulT", "MulTConfig", "TFN", "TFNConfig", "tensor_fusion"]
