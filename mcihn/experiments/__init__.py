"""Experiments beyond one training run: the paper's tables re-run, robustness to missing data, tuning.

    tables.py       Table 2 (baselines) and Table 3 (ablations): every row on the same data and seeds
    robustness.py   a dropped modality, and a curve over the rate of masked time steps
"""
