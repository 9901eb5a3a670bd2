"""MCIHN's configuration (mcihn.model.config.MCIHNConfig) and the modality letters it takes
(mcihn.modalities.parse_modalities): canonical order and refused spellings, the variant names of the
paper's ablations, the dict / JSON round trip, the presets, and the values a config refuses.
"""
from __future__ import annotations

import json

import pytest

from mcihn.model.config import MCIHNConfig
from mcihn.modalities import parse_modalities

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("spec", ["", "x", "tq", "T", "tt", "tat", [], ["text", "text"], ["sound"]])
def test_parse_modalities_errors(spec):
    with pytest.raises(ValueError, match="modalities"):
        parse_modalities(spec)


@pytest.mark.parametrize("spec,expected", [("tav", ("text", "audio", "vision")), ("vat", ("text", "audio", "vision")),
                                           ("vt", ("text", "vision")), ("a", ("audio",)),
                                           (["vision", "text"], ("text", "vision"))])
def test_parse_modalities_canonical_order(spec, expected):
    assert parse_modalities(spec) == expected
    assert MCIHNConfig.tiny(modalities=spec).modalities == expected


@pytest.mark.parametrize("kw,name", [
    ({}, "MCIHN"), ({"use_aae": False}, "MCIHN-1"), ({"use_cgmm": False}, "MCIHN-2"),
    ({"modalities": "vt"}, "-VT"), ({"modalities": "tv"}, "-VT"), ({"modalities": "va"}, "-VA"),
    ({"modalities": "ta"}, "-TA"), ({"modalities": "at"}, "-TA"), ({"modalities": "t"}, "-T"),
    ({"use_aae": False, "use_cgmm": False}, "MCIHN (no AAE, no CGMM)"),
    ({"modalities": "vt", "use_aae": False}, "-VT (no AAE)"),
])
def test_variant_names(kw, name):
    assert MCIHNConfig.tiny(**kw).variant == name


def test_config_dict_round_trip():
    cfg = MCIHNConfig.paper(modalities="va", use_aae=False, mmd_multipliers=[0.5, 2], grad_clip=None,
                            mmd_samples="tokens", notes={"why": "test"})
    d = cfg.to_dict()
    assert d["modalities"] == ["audio", "vision"] and d["mmd_multipliers"] == [0.5, 2.0]
    assert MCIHNConfig.from_dict(d) == cfg
    assert MCIHNConfig.from_dict(json.loads(json.dumps(d))) == cfg  # plain JSON types only
    assert MCIHNConfig.from_dict({**d, "not_a_field": 1}) == cfg  # unknown keys are ignored
    assert MCIHNConfig.tiny().to_dict() != MCIHNConfig.paper().to_dict()


def test_presets():
    assert (MCIHNConfig.paper().latent_len, MCIHNConfig.paper().latent_dim) == (32, 256)
    assert MCIHNConfig.from_preset("tiny", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="preset"):
        MCIHNConfig.from_preset("huge")


@pytest.mark.parametrize("kw", [dict(latent_dim=12, heads=5), dict(latent_dim=10, heads=4),
                                dict(latent_len=0), dict(batch_size=0), dict(mmd_samples="frames"),
                                dict(zscore="none")])
def test_config_validation(kw):
    with pytest.raises(ValueError):
        MCIHNConfig.tiny(**kw)


def test_config_heads_zero_is_a_value_error():
    with pytest.raises(ValueError):
        MCIHNConfig.tiny(heads=0)


@pytest.mark.parametrize("kernel", [2, 4])
def test_even_encoder_kernel_is_rejected(kernel, awkward_cfg):
    with pytest.raises(ValueError, match="odd"):
        awkward_cfg(enc_kernel=kernel)
