"""Tests for mcihn.data.mmsa: MMSA pickle loading, validation, safe unpickling, normalisation, and the per-sample
index that ``to_tensors`` puts in every batch."""
from __future__ import annotations

import builtins
import os
import pickle
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

from _helpers import small  # noqa: F401 (a fixture)
from mcihn.data.normalize import Z_CLIP
from mcihn.data import (LABEL_RANGE, SPLITS, DataFormatError, MultimodalData, Normalizer, SplitData,
                        UnsafePickleError, from_mmsa_dict, load_mmsa, normalize, safe_load_pickle,
                        synthetic_data)

SIZES = {"train": 5, "valid": 3, "test": 4}
TEXT_T, TEXT_D, AUDIO_T, AUDIO_D, VISION_T, VISION_D = 6, 7, 9, 5, 4, 3


def make_split(name: str, n: int, rng: np.random.Generator, sims: bool = False) -> dict:
    """An MMSA-structured split with awkward sizes, -inf in audio and varied lengths."""
    text_len = np.arange(n) % (TEXT_T + 1)                      # 0, 1, 2, ... (a zero length too)
    text_bert = np.zeros((n, 3, TEXT_T), dtype=np.int64)
    text_bert[:, 0] = rng.integers(100, 200, size=(n, TEXT_T))  # token ids
    text_bert[:, 1] = np.arange(TEXT_T)[None, :] < text_len[:, None]
    audio = rng.normal(size=(n, AUDIO_T, AUDIO_D)).astype(np.float32)
    audio[:, -2:, :] = -np.inf                                   # MMSA's padding value
    audio[0, 0, 1] = -np.inf                                     # and one inside a real step
    lo, hi = LABEL_RANGE["sims" if sims else "mosi"]
    split = {
        "id": np.array([f"{name}_{i}$_${i}" for i in range(n)], dtype=object),
        "raw_text": [f"utterance {i}" for i in range(n)],
        "text": rng.normal(size=(n, TEXT_T, TEXT_D)).astype(np.float32),
        "text_bert": text_bert,
        "audio": audio,
        "vision": rng.normal(size=(n, VISION_T, VISION_D)),      # float64 on purpose
        "audio_lengths": [AUDIO_T - 2 - (i % 3) for i in range(n)],  # a list, as MMSA sometimes stores
        "vision_lengths": np.array([VISION_T - (i % 2) for i in range(n)]),
        "regression_labels": rng.uniform(lo, hi, size=n).astype(np.float32),
        "classification_labels": np.zeros(n),                    # ignored
    }
    if sims:
        for k in "TAV":
            split[f"regression_labels_{k}"] = rng.uniform(lo, hi, size=n).astype(np.float32)
    return split


def make_mmsa(sims: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {s: make_split(s, n, rng, sims) for s, n in SIZES.items()}


def expected_features(raw: np.ndarray, lengths) -> np.ndarray:
    """Slow, obviously-correct reference: -inf -> 0, then zero every step t >= length."""
    out = np.array(raw, dtype=np.float32)
    for i in range(out.shape[0]):
        for t in range(out.shape[1]):
            for d in range(out.shape[2]):
                if np.isneginf(out[i, t, d]) or t >= lengths[i]:
                    out[i, t, d] = 0.0
    return out


def dump(obj, tmp_path, name="data.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


# ----------------------------------------------------------------------------- loading
def test_round_trip_matches_arrays(tmp_path):
    raw = make_mmsa()
    data = load_mmsa(dump(raw, tmp_path))
    assert data.dataset == "mosi" and not data.synthetic and data.meta == {}
    assert data.dims == {"text": (TEXT_T, TEXT_D), "audio": (AUDIO_T, AUDIO_D), "vision": (VISION_T, VISION_D)}
    for s in SPLITS:
        sd, r = data[s], raw[s]
        assert len(sd) == SIZES[s] and sd.name == s
        text_len = r["text_bert"][:, 1].sum(-1)
        np.testing.assert_array_equal(sd.lengths["text"], text_len)
        np.testing.assert_array_equal(sd.lengths["audio"], r["audio_lengths"])
        np.testing.assert_array_equal(sd.lengths["vision"], r["vision_lengths"])
        for m, lens in (("text", text_len), ("audio", r["audio_lengths"]), ("vision", r["vision_lengths"])):
            assert sd.features[m].dtype == np.float32 and sd.lengths[m].dtype == np.int64
            np.testing.assert_array_equal(sd.features[m], expected_features(r[m], lens))
        np.testing.assert_array_equal(sd.labels, r["regression_labels"])
        assert sd.ids == list(r["id"]) and sd.raw_text == r["raw_text"]
        assert sd.unimodal_labels == {}
    assert np.isfinite(data["train"].features["audio"]).all()


def test_text_length_is_full_without_text_bert_and_av_full_without_lengths():
    raw = make_mmsa()
    for s in SPLITS:
        for k in ("text_bert", "audio_lengths", "vision_lengths"):
            del raw[s][k]
    data = from_mmsa_dict(raw, "aligned")
    assert (data["valid"].lengths["text"] == TEXT_T).all()
    assert (data["valid"].lengths["audio"] == AUDIO_T).all()
    assert (data["valid"].lengths["vision"] == VISION_T).all()


def test_from_dict_does_not_modify_input():
    raw = make_mmsa()
    before = raw["train"]["audio"].copy()
    from_mmsa_dict(raw, "memory")
    np.testing.assert_array_equal(raw["train"]["audio"], before)  # -inf still there


def test_masks_and_tensors():
    sd = from_mmsa_dict(make_mmsa(), "memory")["test"]
    for m in ("text", "audio", "vision"):
        T = sd.features[m].shape[1]
        ref = np.array([[t < sd.lengths[m][i] for t in range(T)] for i in range(len(sd))])
        np.testing.assert_array_equal(sd.mask(m), ref)
    tens = sd.to_tensors("ta")
    assert set(tens) == {"text", "text_mask", "audio", "audio_mask", "label", "index"}
    assert tens["text"].shape == (4, TEXT_T, TEXT_D) and tens["text"].dtype == torch.float32
    assert tens["audio_mask"].shape == (4, AUDIO_T) and tens["audio_mask"].dtype == torch.bool
    assert tens["label"].shape == (4,) and tens["label"].dtype == torch.float32
    assert set(sd.to_tensors(("vision",))) == {"vision", "vision_mask", "label", "index"}


@pytest.mark.parametrize("sims, meta, arg, expected", [
    (False, None, None, "mosi"),
    (True, None, None, "sims"),
    (False, {"dataset": "sims"}, None, "sims"),
    (True, {"dataset": "sims"}, "mosi", "mosi"),  # explicit argument wins
])
def test_dataset_inference(sims, meta, arg, expected):
    raw = make_mmsa(sims=sims)
    if sims is False and expected == "sims":  # MOSI-shaped labels must fit SIMS' range
        for s in SPLITS:
            raw[s]["regression_labels"] = raw[s]["regression_labels"] / 3
    if meta is not None:
        raw["meta"] = meta
    raw["extra_top_level_key"] = 123  # ignored
    data = from_mmsa_dict(raw, "memory", dataset=arg)
    assert data.dataset == expected
    assert data.meta == (meta or {})


def test_sims_unimodal_labels(tmp_path):
    raw = make_mmsa(sims=True)
    data = load_mmsa(dump(raw, tmp_path))
    assert set(data["valid"].unimodal_labels) == {"T", "A", "V"}
    np.testing.assert_array_equal(data["valid"].unimodal_labels["A"], raw["valid"]["regression_labels_A"])


def test_label_tolerance_and_minus_inf_are_accepted():
    raw = make_mmsa()
    raw["train"]["regression_labels"][0] = 3.0 + 5e-7
    raw["train"]["audio"][1, 0, :] = -np.inf
    data = from_mmsa_dict(raw, "memory")
    assert (data["train"].features["audio"][1, 0] == 0).all()


# ----------------------------------------------------------------------------- bad input
def _set(split, key, fn):
    def mutate(raw):
        raw[split][key] = fn(raw[split][key])
    return mutate


def _item(split, key, index, value):
    def mutate(raw):
        raw[split][key] = np.array(raw[split][key], dtype=np.float64 if key != "text_bert" else None)
        raw[split][key][index] = value
    return mutate


def _delete(split, key):
    def mutate(raw):
        del raw[split][key]
    return mutate


# (mutation, sims, split, field, sample index or None)
BAD = {
    "missing key": (_delete("valid", "vision"), False, "valid", "vision", None),
    "missing unimodal label": (_delete("test", "regression_labels_A"), True, "test", "regression_labels_A", None),
    "N differs": (_set("train", "vision", lambda x: x[:-1]), False, "train", "vision", None),
    "features 2-D": (_set("valid", "text", lambda x: x[:, :, 0]), False, "valid", "text", None),
    "labels 2-D": (_set("test", "regression_labels", lambda x: np.stack([x, x], 1)), False, "test", "regression_labels", None),
    "lengths 2-D": (_set("train", "vision_lengths", lambda x: x[:, None]), False, "train", "vision_lengths", None),
    "text_bert 2 rows": (_set("valid", "text_bert", lambda x: x[:, :2]), False, "valid", "text_bert", None),
    "D differs": (_set("valid", "audio", lambda x: x[:, :, :-1]), False, "valid", "audio", None),
    "T differs": (_set("test", "vision", lambda x: np.concatenate([x, x[:, :1]], axis=1)), False, "test", "vision", None),
    "NaN feature": (_item("train", "text", (3, 2, 1), np.nan), False, "train", "text", 3),
    "+inf feature": (_item("valid", "vision", (1, 0, 2), np.inf), False, "valid", "vision", 1),
    "NaN label": (_item("test", "regression_labels", 2, np.nan), False, "test", "regression_labels", 2),
    "inf label": (_item("train", "regression_labels", 1, -np.inf), False, "train", "regression_labels", 1),
    "MOSI label out of range": (_item("train", "regression_labels", 4, 3.5), False, "train", "regression_labels", 4),
    "SIMS label out of range": (_item("valid", "regression_labels", 0, 1.2), True, "valid", "regression_labels", 0),
    "SIMS unimodal NaN": (_item("test", "regression_labels_V", 3, np.nan), True, "test", "regression_labels_V", 3),
    "negative length": (_item("valid", "audio_lengths", 2, -1), False, "valid", "audio_lengths", 2),
    "length > T": (_item("test", "vision_lengths", 1, VISION_T + 1), False, "test", "vision_lengths", 1),
    "non-integer length": (_item("train", "audio_lengths", 3, 2.5), False, "train", "audio_lengths", 3),
    "text mask longer than T": (_set("train", "text_bert", lambda x: np.ones((5, 3, TEXT_T + 2))),
                                False, "train", "text_bert", 0),
    "text mask not 0/1": (_item("valid", "text_bert", (2, 1, 0), 2), False, "valid", "text_bert", 2),
    "raw_text wrong length": (_set("test", "raw_text", lambda x: x[:-1]), False, "test", "raw_text", None),
    "non-numeric features": (_set("train", "audio", lambda x: x.astype(str)), False, "train", "audio", None),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_names_split_field_sample(kind, tmp_path):
    mutate, sims, split, fld, index = BAD[kind]
    raw = make_mmsa(sims=sims)
    mutate(raw)
    path = dump(raw, tmp_path)
    with pytest.raises(DataFormatError) as exc:
        load_mmsa(path)
    msg = str(exc.value)
    assert str(path) in msg and f"split '{split}'" in msg and f"field '{fld}'" in msg
    if index is not None:
        assert f"sample {index} (id '{split}_{index}$_${index}')" in msg
    else:
        assert "sample " not in msg


@pytest.mark.parametrize("obj, needle", [
    ([1, 2, 3], "expected a dict"),
    ({"train": {}, "valid": {}}, "split 'test'"),
    ({"train": {}, "valid": [], "test": {}}, "split 'valid'"),
])
def test_bad_top_level(obj, needle, tmp_path):
    with pytest.raises(DataFormatError, match=needle):
        load_mmsa(dump(obj, tmp_path))


def test_unknown_dataset_in_meta():
    raw = make_mmsa()
    raw["meta"] = {"dataset": "iemocap"}
    with pytest.raises(DataFormatError, match="iemocap"):
        from_mmsa_dict(raw, "memory")


# ----------------------------------------------------------------------------- safe unpickling
class _Hostile:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_hostile_pickle_is_refused_and_not_run(tmp_path):
    target = tmp_path / "pwned"
    path = dump({"train": _Hostile(os.system, (f"echo pwned > {target}",))}, tmp_path)
    with pytest.raises(UnsafePickleError) as exc:
        load_mmsa(path)
    msg = str(exc.value)
    assert ("posix.system" in msg or "os.system" in msg or "nt.system" in msg) and str(path) in msg
    assert not target.exists()
    assert isinstance(exc.value, DataFormatError)


@pytest.mark.parametrize("payload, refused", [
    (_Hostile(builtins.eval, ("1 + 1",)), "builtins.eval"),
    (_Hostile(builtins.getattr, ("abc", "upper")), "builtins.getattr"),
    (torch.zeros(2), "torch."),
])
def test_other_globals_refused(payload, refused, tmp_path):
    with pytest.raises(UnsafePickleError, match=refused):
        safe_load_pickle(dump({"x": payload}, tmp_path))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_values_load(protocol, tmp_path):
    obj = OrderedDict(a=np.arange(12, dtype=np.float32).reshape(3, 4), s=np.float64(1.5), i=np.int64(7),
                      ids=np.array(["x$_$1", "y"], dtype=object), u=np.array(["ab", "c"]), b=b"raw",
                      dt=np.dtype("int16"), dtcls=type(np.dtype("float32")), plain={1, 2}, c=1 + 2j)
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = safe_load_pickle(path)
    assert isinstance(got, OrderedDict) and list(got) == list(obj)
    np.testing.assert_array_equal(got["a"], obj["a"])
    assert got["s"] == 1.5 and got["i"] == 7 and list(got["ids"]) == ["x$_$1", "y"]
    assert got["dt"] == np.dtype("int16") and got["dtcls"] is type(np.dtype("float32"))
    assert got["b"] == b"raw" and got["plain"] == {1, 2} and got["c"] == 1 + 2j


def test_old_numpy_core_pickle_loads_without_warning(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob = pickle.dumps({"a": arr, "s": np.float32(2.5)}, protocol=2)  # GLOBAL opcodes are plain text
    old = blob.replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in old
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = safe_load_pickle(path)
    np.testing.assert_array_equal(got["a"], arr)
    assert got["s"] == np.float32(2.5)


def test_truncated_and_garbage_files(tmp_path):
    blob = pickle.dumps(make_mmsa(), protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match="cut.pkl"):
        load_mmsa(path)
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DataFormatError, match="cut.pkl"):
        load_mmsa(path)


# ----------------------------------------------------------------------------- normalisation
def tiny_split(name: str, audio: np.ndarray, lengths) -> SplitData:
    n, T, _ = audio.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    audio = audio.astype(np.float32).copy()
    audio[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return SplitData(name, {"audio": audio}, {"audio": lengths}, np.zeros(n, np.float32), [str(i) for i in range(n)])


def test_normalizer_matches_hand_computed():
    # real steps: feature 0 takes 1, 3, 5 (mean 3, var 8/3); feature 1 is constant 10
    audio = np.array([[[1, 10], [3, 10], [100, 100]],
                      [[5, 10], [100, 100], [100, 100]]])
    sd = tiny_split("train", audio, [2, 1])
    norm = Normalizer.fit(sd, ("audio",))
    np.testing.assert_allclose(norm.mean["audio"], [3.0, 10.0], rtol=1e-6)
    np.testing.assert_allclose(norm.std["audio"][0], np.sqrt(8 / 3), rtol=1e-6)
    assert norm.std["audio"][1] == np.inf and norm.dead("audio").tolist() == [False, True]
    out = norm.transform(sd).features["audio"]
    s = np.sqrt(8 / 3)
    np.testing.assert_allclose(out[:, :, 0], [[-2 / s, 0, 0], [2 / s, 0, 0]], rtol=1e-6, atol=1e-7)
    assert (out[:, :, 1] == 0).all()          # constant feature -> 0
    assert (out[0, 2] == 0).all() and (out[1, 1:] == 0).all()  # padding exactly 0
    assert sd.features["audio"][0, 0, 0] == 1  # input untouched


def test_dead_feature_is_zero_in_every_split_and_said():
    # Feature 1 is constant on train (10); valid has 10.001 there. With a floored std that is a z-score of
    # 1000 (the old behaviour); a dead feature must give 0, and the report must say so.
    train = tiny_split("train", np.array([[[1, 10]], [[3, 10]], [[5, 10]]]), [1, 1, 1])
    valid = tiny_split("valid", np.array([[[3, 10.001]], [[1000, 10]]]), [1, 1])
    norm = Normalizer.fit(train, ("audio",))
    out = norm.transform(valid).features["audio"]
    assert (out[:, 0, 1] == 0).all()
    assert out[0, 0, 0] == 0 and out[1, 0, 0] == pytest.approx(10.0)  # 1000 is ~611 std away: clipped to 10
    report = "\n".join(norm.report())
    assert "1 of 2 features constant on the train split" in report
    assert "1 valid values" in report and "clipped" in report
    # a nearly constant feature (std relative to its size below DEAD_TOL) is dead too; a small but real one is not
    train2 = tiny_split("train", np.array([[[1e3, 1e-3]], [[1e3 + 1e-7, 2e-3]]]), [1, 1])
    assert Normalizer.fit(train2, ("audio",)).dead("audio").tolist() == [True, False]


def test_normalize_uses_train_only_and_state_dict_round_trip(tmp_path):
    data = from_mmsa_dict(make_mmsa(), "memory")
    data.splits["valid"].features["vision"] *= 10.0  # valid statistics now differ a lot
    out, norm = normalize(data, "tav", "all")  # every modality z-scored (the real-text rule: the next test)
    train_v = data["train"].features["vision"][data["train"].mask("vision")]
    np.testing.assert_allclose(norm.mean["vision"], train_v.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.std["vision"], train_v.std(0), rtol=1e-5)
    valid = data["valid"]
    mask = valid.mask("vision")
    want = np.clip((valid.features["vision"] - train_v.mean(0)) / train_v.std(0), -Z_CLIP, Z_CLIP)
    assert (np.abs(want[mask]) == Z_CLIP).any()  # the x10 valid split does reach the clip
    np.testing.assert_allclose(out["valid"].features["vision"][mask], want[mask], rtol=1e-4, atol=1e-5)
    for s in SPLITS:
        for m in ("text", "audio", "vision"):
            assert (out[s].features[m][~out[s].mask(m)] == 0).all()
    z = out["train"].features["text"][out["train"].mask("text")]
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    assert isinstance(out, MultimodalData) and out.dataset == "mosi"

    state = norm.state_dict()
    assert all(isinstance(sd[k], torch.Tensor) for sd in state.values() for k in ("mean", "std"))
    assert not any(sd["centred"] for sd in state.values())
    torch.save(state, tmp_path / "norm.pt")
    back = Normalizer.from_state_dict(torch.load(tmp_path / "norm.pt", weights_only=True))
    again = back.transform(data["test"])
    for m in ("text", "audio", "vision"):
        np.testing.assert_array_equal(again.features[m], out["test"].features[m])


def test_real_text_is_centred_not_scaled_and_the_rule_travels_with_the_state(tmp_path):
    """Default rule "auto": the text of real data (a pretrained encoder's states) keeps its scale, only its train
    mean removed and nothing clipped; audio and vision are z-scored; synthetic data and rule "all" z-score all."""
    data = from_mmsa_dict(make_mmsa(), "memory")
    assert not data.synthetic
    far = tuple(np.argwhere(data["test"].mask("text"))[0])  # a real step of the test split
    data.splits["test"].features["text"][far] += 1e4  # far beyond any clip: must pass through unclipped
    out, norm = normalize(data, "tav")
    assert norm.centred == ("text",)
    train_t = data["train"].features["text"][data["train"].mask("text")]
    for s in SPLITS:
        x, mask = data[s].features["text"], data[s].mask("text")
        np.testing.assert_allclose(out[s].features["text"][mask], (x - train_t.mean(0))[mask], rtol=1e-5, atol=1e-5)
        assert (out[s].features["text"][~mask] == 0).all()
    assert out["test"].features["text"][far].max() > 1e3
    z = out["train"].features["audio"][out["train"].mask("audio")]
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)  # audio still z-scored
    assert any("text: centred, not scaled" in line for line in norm.report())

    torch.save(norm.state_dict(), tmp_path / "norm.pt")
    back = Normalizer.from_state_dict(torch.load(tmp_path / "norm.pt", weights_only=True))
    assert back.centred == ("text",)
    np.testing.assert_array_equal(back.transform(data["test"]).features["text"], out["test"].features["text"])
    old = {m: {k: v for k, v in st.items() if k != "centred"} for m, st in norm.state_dict().items()}
    assert Normalizer.from_state_dict(old).centred == ()  # a checkpoint from before the rule: z-scored as then

    assert normalize(data, "tav", "all")[1].centred == ()
    assert normalize(data, "av")[1].centred == ()  # no text read: nothing to centre
    synth = synthetic_data("mosi", splits={"train": 40, "valid": 10, "test": 10}, seed=1)
    assert synth.synthetic and normalize(synth, "tav")[1].centred == ()
    with pytest.raises(ValueError, match="zscore must be one of"):
        normalize(data, "tav", "text")


def test_empty_split_is_refused_with_its_name():
    raw = make_mmsa()
    raw["valid"] = {k: v[:0] for k, v in raw["valid"].items()}  # every field with 0 samples
    with pytest.raises(DataFormatError, match=r"split 'valid'.*0 samples"):
        from_mmsa_dict(raw, "mem.pkl")


def test_labels_of_shape_n_by_1_are_read_as_n():
    raw = make_mmsa()
    raw["test"]["regression_labels"] = raw["test"]["regression_labels"][:, None]
    data = from_mmsa_dict(raw, "mem.pkl")
    assert data["test"].labels.shape == (SIZES["test"],)
    np.testing.assert_array_equal(data["test"].labels, raw["test"]["regression_labels"][:, 0])


def test_train_modality_without_any_real_time_step_is_refused():
    raw = make_mmsa()
    raw["train"]["vision_lengths"] = np.zeros(SIZES["train"], dtype=np.int64)
    with pytest.raises(DataFormatError, match=r"split 'train', field 'vision' lengths: every sample has length 0"):
        from_mmsa_dict(raw, "mem.pkl")


def test_to_tensors_carries_each_samples_index(small):
    t = small["valid"].to_tensors("tav")
    assert t["index"].dtype == torch.long and torch.equal(t["index"], torch.arange(len(small["valid"])))


def test_a_saved_config_without_zscore_reads_as_the_old_pipeline(small_data):
    """Checkpoints and suite records from before the rule z-scored everything: on synthetic data that is
    what "auto" does (nothing to tell apart), on real data it is not, and the difference is named."""
    import dataclasses

    from mcihn.model.config import MCIHNConfig
    from mcihn.training.runner import config_changes

    cfg = MCIHNConfig.tiny()
    old = {k: v for k, v in cfg.to_dict().items() if k != "zscore"}
    assert config_changes(old, cfg, small_data) == []
    real = dataclasses.replace(small_data, synthetic=False)
    assert config_changes(old, cfg, real) == ["zscore: 'all' then, 'auto' now"]
    assert config_changes(old, MCIHNConfig.tiny(zscore="all"), real) == []
    assert config_changes({**old, "lr": 0.5, "epochs": 99}, cfg, small_data) == [f"lr: 0.5 then, {cfg.lr!r} now"]
