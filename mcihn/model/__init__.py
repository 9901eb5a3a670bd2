"""The paper's model, read in order: one file per section of the paper.

    config.py   every size and switch, with the ``paper`` and ``tiny`` presets
    aae.py      Sec. 3.3, Eq. 4-5: one adversarial autoencoder per modality
    cgmm.py     Sec. 3.4, Eq. 6-11: the cross-modal gate
    mmd.py      Sec. 3.4, Eq. 12-14: the feature-adaptive MMD loss L_Adp
    ffm.py      Sec. 3.5, Eq. 15-17: the multi-head fusion and the regression head
    linear_path.py  an addition: a linear regression on the pooled inputs beside the network (the auto preset's)
    attention.py  scaled dot-product attention, fused or with its weights (``attention_weights``)
    mcihn.py    Fig. 1(a): the wiring, Eq. 18-19, and the training phases of Algorithm 1

Nothing here imports training, data or notebook code.
"""
from .attention import attention_weights
from .config import MCIHNConfig
from .mcihn import MCIHN, MCIHNOutput, main_loss

__all__ = ["attention_weights", "MCIHN", "MCIHNConfig", "MCIHNOutput", "main_loss"]
