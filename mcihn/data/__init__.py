"""Data: MMSA pickles in (safely), checked field by field; normalisation; the synthetic stand-in.

    pickles.py     the restricted unpickler (numpy arrays and plain values only)
    mmsa.py        the MMSA pickle format: SplitData, MultimodalData, validation, load_mmsa
    normalize.py   per-feature z-scoring with train-split statistics (a real set's text only centred)
    synthetic.py   MOSI/SIMS-shaped synthetic data with planted cross-modal structure (the embedded default)
    planted.py     the development suite's planted sets (linear, interaction, window), each with its Bayes floor
    real.py        the development suite's real CMU-MOSI files (text + audio CSV, transcripts TSV)
"""
from .mmsa import LABEL_RANGE, SPLITS, MultimodalData, SplitData, from_mmsa_dict, load_mmsa
from .normalize import ZSCORE_RULES, Normalizer, fit_normalizer, normalize
from .pickles import DataFormatError, DataWarning, UnsafePickleError, safe_load_pickle
from .planted import PLANTED_KINDS, make_planted, planted_data
from .synthetic import DEFAULT_DIMS, MOSI_SPLITS, PAPER_DIMS, make_synthetic, synthetic_data, write_synthetic

__all__ = ["LABEL_RANGE", "SPLITS", "MultimodalData", "SplitData", "from_mmsa_dict", "load_mmsa", "Normalizer",
           "fit_normalizer", "normalize", "ZSCORE_RULES", "DataFormatError", "DataWarning", "UnsafePickleError", "safe_load_pickle", "DEFAULT_DIMS", "MOSI_SPLITS",
           "PAPER_DIMS", "make_synthetic", "synthetic_data", "write_synthetic", "PLANTED_KINDS", "make_planted",
           "planted_data"]
