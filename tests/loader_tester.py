"""The checks every checkpoint format must pass (diffusers' ``ModelTesterMixin`` pattern).

A tester class per format (tests/test_loader_formats.py) subclasses :class:`LoaderTesterMixin`, sets
``format`` and implements ``make_checkpoint(tmp_path) -> (path, load_kwargs, facts)``. ``facts`` says what
the test knows about the checkpoint, all optional:

- ``reference``: a module whose state dict the loaded UNet's must equal exactly;
- ``masks``: layer -> expected bool mask (absent: the format carries no masks, ``ck.masks`` is empty);
- ``scheduler``: class name of the loaded scheduler (absent: None);
- ``epoch``, ``nm``: the loaded ``epoch`` / ``nm``; ``extra``: a subset of ``ck.extra``;
- ``requires``: ``"trust_pickle"`` or ``"base_model"``: loading without that argument must fail with
  the matching error, and ``describe_checkpoint`` must say so;
- ``describe``: a subset of ``describe_checkpoint(path)``;
- ``corrupt``: the file to truncate, relative to a folder checkpoint (default: the checkpoint file).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from maskpro_eval.checkpoints import FORMATS, describe_checkpoint, load_checkpoint
from maskpro_eval.errors import BaseModelNotFoundError, CheckpointError, PickleNotTrustedError

#: fixed forward inputs (the tiny builders' 16 px, 3 channel UNets)
X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
T = torch.tensor([10, 500])

_REQUIRES = {"trust_pickle": (PickleNotTrustedError, "needs_trust_pickle"),
             "base_model": (BaseModelNotFoundError, "needs_base_model")}


def state_dicts_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


class LoaderTesterMixin:
    format: str = ""

    def make_checkpoint(self, tmp_path: Path) -> tuple[Path, dict, dict]:
        raise NotImplementedError

    # ------------------------------------------------------------------ fixtures (built and loaded once a class)

    @pytest.fixture(scope="class")
    @classmethod
    def built(cls, tmp_path_factory):
        return cls().make_checkpoint(tmp_path_factory.mktemp(cls.format))

    @pytest.fixture(scope="class")
    @classmethod
    def ck(cls, built):
        path, kwargs, _ = built
        return load_checkpoint(path, **kwargs)

    @pytest.fixture
    def facts(self, built):
        return built[2]

    # ------------------------------------------------------------------ the checks

    def test_format_name(self, ck):
        assert self.format in FORMATS
        assert ck.format == self.format

    def test_diffusers_unet_eval_cpu_float32_frozen(self, ck):
        from diffusers import UNet2DModel
        assert isinstance(ck.unet, UNet2DModel)
        assert not ck.unet.training and not any(m.training for m in ck.unet.modules())
        params = list(ck.unet.parameters())
        assert {(p.device.type, p.dtype) for p in params} == {("cpu", torch.float32)}
        assert not any(p.requires_grad for p in params)

    def test_forward_shape_and_finite(self, ck):
        with torch.no_grad():
            y = ck.unet(X, T).sample
        assert y.shape == X.shape
        assert torch.isfinite(y).all()

    def test_weights_equal_source(self, ck, facts):
        if "reference" not in facts:
            pytest.skip("the test does not know this checkpoint's weights")
        assert state_dicts_equal(ck.unet.state_dict(), facts["reference"].state_dict())

    def test_masks(self, ck, facts):
        expected = facts.get("masks")
        if expected is None:
            assert ck.masks == {}
            return
        assert set(ck.masks) == set(expected)
        for name, mask in ck.masks.items():
            w = ck.unet.get_submodule(name).weight
            assert mask.dtype == torch.bool and mask.shape == w.shape, name
            assert torch.equal(mask, expected[name]), name
            assert torch.equal(w, w * mask), name

    def test_declared_facts(self, ck, facts):
        assert (None if ck.scheduler is None else type(ck.scheduler).__name__) == facts.get("scheduler")
        assert ck.epoch == facts.get("epoch")
        assert ck.nm == facts.get("nm")
        extra = facts.get("extra", {})
        assert {k: ck.extra.get(k) for k in extra} == extra

    def test_describe_agrees_with_load(self, built, ck):
        path, _, facts = built
        d = describe_checkpoint(path)
        assert d["format"] == ck.format
        want = facts.get("describe", {})
        assert {k: d.get(k) for k in want} == want
        requires = facts.get("requires")
        for name, (_, key) in _REQUIRES.items():
            assert bool(d.get(key)) == (requires == name), key

    def test_missing_requirement_is_an_error(self, built):
        path, kwargs, facts = built
        requires = facts.get("requires")
        if requires is None:  # then the checkpoint loaded (fixture ck) without either
            assert not set(_REQUIRES) & set(kwargs)
            return
        error, _ = _REQUIRES[requires]
        with pytest.raises(error) as e:
            load_checkpoint(path, **{k: v for k, v in kwargs.items() if k != requires})
        cli, api = ("--trust-pickle", "trust_pickle=True") if requires == "trust_pickle" else ("--base-model",
                                                                                              "base_model=")
        assert cli in str(e.value) and api in str(e.value)  # the fix, for the pytest option and the API

    def test_loading_twice_is_identical(self, built, ck):
        path, kwargs, _ = built
        again = load_checkpoint(path, **kwargs)
        assert again.unet is not ck.unet
        assert state_dicts_equal(again.unet.state_dict(), ck.unet.state_dict())
        assert set(again.masks) == set(ck.masks) and all(torch.equal(again.masks[k], ck.masks[k]) for k in ck.masks)

    def test_truncated_file_is_a_checkpoint_error(self, built, tmp_path):
        path, kwargs, facts = built
        # a copy of the checkpoint with what sits beside it (config.json, sibling checkpoints), one file cut
        if path.is_dir():
            copy = shutil.copytree(path, tmp_path / path.name)
            target = copy / facts["corrupt"]
        else:
            copy = shutil.copytree(path.parent, tmp_path / path.parent.name) / path.name
            target = copy
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(copy, **kwargs)
        msg = str(e.value)
        assert "\n" not in msg and "truncated or corrupt" in msg and "Fix:" in msg
        assert str(target) in msg
        assert str(target) in describe_checkpoint(copy)["error"]  # inspect reports it too, without raising
