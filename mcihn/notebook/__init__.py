"""What the notebooks import: their settings and run cache (``session``), measurements (``analysis``)
and figures (``plots``). ``from mcihn import notebook as nbu`` gives the session helpers."""
from .session import (DATA_SEED, QUICK_BATCH, QUICK_EPOCHS, QUICK_SEEDS, QUICK_SPLITS, QUICK_TUNE, Settings, cached_experiment,
                      cached_seed, cached_tune, data_fingerprint, default_cache_dir, default_data_dir, find_repo_root, load_data,
                      quick_from_env, run_folder, run_table, setup, subsample, write_record)

__all__ = ["DATA_SEED", "QUICK_BATCH", "QUICK_EPOCHS", "QUICK_SEEDS", "QUICK_SPLITS", "QUICK_TUNE", "Settings", "cached_experiment",
           "cached_seed", "cached_tune", "data_fingerprint", "default_cache_dir", "default_data_dir", "find_repo_root", "load_data",
           "quick_from_env", "run_folder", "run_table", "setup", "subsample", "write_record"]
