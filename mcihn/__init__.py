"""MCIHN: a hybrid network based on multi-path cross-modal interaction (Zhang et al., MMAsia '25).

Files follow the paper's sections: ``aae`` (3.3), ``cgmm`` (3.4, Eq. 6-11), ``mmd``
(3.4, Eq. 12-14), ``ffm`` (3.5), ``model`` (Fig. 1), ``train`` (Algorithm 1).
"""
from .config import MCIHNConfig
from .model import MCIHN, MCIHNOutput, main_loss

__version__ = "0.1.0"
__all__ = ["MCIHN", "MCIHNConfig", "MCIHNOutput", "main_loss", "__version__"]
