"""Every checkpoint format through the same checks (tests/loader_tester.py), on tiny faithful copies built
by tests/builders.py; format-specific behaviour on top. Bad inputs and overrides: tests/test_loading.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from maskpro_eval.checkpoints import FORMATS, load_checkpoint
from maskpro_eval.errors import CheckpointError
from tests.builders import (build_maskpro_run, ddim_pipeline, prune_resnet_inner, save_ddim_list,
                            save_diff_pruning_folder, save_mask_folder, save_masked_unet_folder, save_old_pickle,
                            save_plain_state_dict, tiny_unet)
from tests.loader_tester import LoaderTesterMixin

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pruned_unet():
    return prune_resnet_inner(tiny_unet(0))


# ---------------------------------------------------------------- diffusers folders

class TestPipelineSafetensors(LoaderTesterMixin):
    format = "diffusers-pipeline"

    def make_checkpoint(self, tmp_path):
        unet = tiny_unet(0)
        folder = ddim_pipeline(unet, tmp_path / "pipe")
        return folder, {}, {"reference": unet, "scheduler": "DDIMScheduler",
                            "corrupt": "unet/diffusion_pytorch_model.safetensors",
                            "extra": {"params": sum(p.numel() for p in unet.parameters())},
                            "describe": {"config_matches_weights": True, "num_tensors": len(unet.state_dict()),
                                         "keys": ["model_index.json", "scheduler/", "unet/"]}}


class TestPipelineBin(LoaderTesterMixin):
    format = "diffusers-pipeline"

    def make_checkpoint(self, tmp_path):
        unet = tiny_unet(0)
        folder = ddim_pipeline(unet, tmp_path / "pipe", safe=False)
        return folder, {}, {"reference": unet, "scheduler": "DDIMScheduler",
                            "corrupt": "unet/diffusion_pytorch_model.bin"}


class TestUnetFolder(LoaderTesterMixin):
    format = "diffusers-unet"

    def make_checkpoint(self, tmp_path):
        unet = tiny_unet(0)
        unet.save_pretrained(tmp_path / "u")
        return tmp_path / "u", {}, {"reference": unet, "corrupt": "diffusion_pytorch_model.safetensors"}


class TestMaskedDiffusersFolder(LoaderTesterMixin):
    format = "diffusers-masked"

    def make_checkpoint(self, tmp_path):
        unet = tiny_unet(0)
        sd, masks = save_masked_unet_folder(unet, tmp_path / "m")
        ref = tiny_unet(0)
        ref.load_state_dict({k: v for k, v in sd.items() if not k.endswith(".mask")})
        return tmp_path / "m", {}, {"reference": ref, "masks": masks, "corrupt": "diffusion_pytorch_model.safetensors"}

    def test_weight_not_multiplied_by_its_mask_is_an_error(self, tmp_path):
        from safetensors.torch import save_file
        unet = tiny_unet(0)
        sd, _ = save_masked_unet_folder(unet, tmp_path / "m")
        sd["down_blocks.0.resnets.0.conv2.weight"] = unet.state_dict()["down_blocks.0.resnets.0.conv2.weight"]
        save_file(sd, tmp_path / "m" / "diffusion_pytorch_model.safetensors")
        with pytest.raises(CheckpointError, match=r"down_blocks\.0\.resnets\.0\.conv2"):
            load_checkpoint(tmp_path / "m")


class TestDiffPruningFolder(LoaderTesterMixin):
    """Dense config + pruned .bin + pruned/*.pth: the pickle is used, the EMA of the latest step preferred."""
    format = "diffusers-pruned-pickle"

    def make_checkpoint(self, tmp_path):
        folder = tmp_path / "run" / "pruned" / "ddpm_tiny_pruned"
        ema = save_diff_pruning_folder(tiny_unet(0), pruned_unet(), folder)
        return folder, {"trust_pickle": True}, {"reference": ema, "scheduler": "DDIMScheduler",
                                                "requires": "trust_pickle",
                                                "corrupt": "pruned/unet_ema_pruned-200.pth"}

    def test_latest_ema_pickle_is_used(self, ck):
        assert Path(ck.extra["weights_file"]).name == "unet_ema_pruned-200.pth"


# ---------------------------------------------------------------- pickles

class TestPickledModule(LoaderTesterMixin):
    """torch.save(module) of diffusers 0.17 (old module paths, an attribute missing), structurally pruned."""
    format = "pickled-module"

    def make_checkpoint(self, tmp_path):
        pruned = pruned_unet()
        p = save_old_pickle(pruned, tmp_path / "unet_pruned.pth")
        return p, {"trust_pickle": True}, {
            "reference": pruned, "requires": "trust_pickle",
            "extra": {"pickle_remaps": {"diffusers.models.unet_2d.UNet2DModel":
                                        "diffusers.models.unets.unet_2d.UNet2DModel",
                                        **{f"diffusers.models.unet_2d_blocks.{c}":
                                           f"diffusers.models.unets.unet_2d_blocks.{c}"
                                           for c in ("DownBlock2D", "AttnDownBlock2D", "UpBlock2D",
                                                     "AttnUpBlock2D", "UNetMidBlock2D")}}}}

    def test_written_with_old_module_paths(self, built):
        import zipfile
        assert b"diffusers.models.unet_2d\n" in zipfile.ZipFile(built[0]).read("unet_pruned/data.pkl")


class TestDDIMList(LoaderTesterMixin):
    format = "ddim-list"

    def make_checkpoint(self, tmp_path):
        p = tmp_path / "logs" / "ckpt_1000.pth"
        ema = save_ddim_list(pruned_unet(), p)
        return p, {"trust_pickle": True}, {"reference": ema, "epoch": 7, "requires": "trust_pickle",
                                           "extra": {"step": 1000, "weights": "ema"}}


# ---------------------------------------------------------------- MaskPro

@pytest.fixture(scope="module")
def maskpro_run(tmp_path_factory):
    return build_maskpro_run(tmp_path_factory.mktemp("mp"), tiny_unet(0))


class _MaskProRun(LoaderTesterMixin):
    """Facts shared by the formats of a MaskPro run (masks from the logits' top 2 of 4)."""

    @pytest.fixture(scope="class")
    @classmethod
    def built(cls, maskpro_run, tmp_path_factory):
        path, kwargs, facts = cls().make_checkpoint(tmp_path_factory.mktemp(cls.format), maskpro_run)
        return path, kwargs, {"reference": maskpro_run.ref, "masks": maskpro_run.masks, **facts}

    def make_checkpoint(self, tmp_path, run=None):
        raise NotImplementedError


class TestMaskProTrainer(_MaskProRun):
    format = "maskpro-trainer"

    def make_checkpoint(self, tmp_path, run=None):  # the base pipeline is found above the checkpoint
        return run.ckdir / "checkpoint_epoch_2.pt", {}, {
            "nm": (2, 4), "epoch": 2, "scheduler": "DDIMScheduler",
            "extra": {"params": sum(p.numel() for p in run.trained.parameters())}}

    def test_logs_masks_and_stale_current_mask(self, ck, maskpro_run):
        assert ck.training_logs == maskpro_run.logs
        assert list(ck.masks) == maskpro_run.wrapped
        first = maskpro_run.wrapped[0]
        assert ck.mask_disagreements[first] == pytest.approx(0.5)
        assert all(v == 0 for k, v in ck.mask_disagreements.items() if k != first)
        assert any(first in n and "current_mask" in n for n in ck.notes)


class TestMaskProState(_MaskProRun):
    format = "maskpro-state"

    def make_checkpoint(self, tmp_path, run=None):  # the sibling checkpoint_epoch_2.pt gives the weights
        return run.ckdir / "maskpro_state_epoch_2.pt", {}, {"nm": (2, 4), "epoch": 2, "scheduler": "DDIMScheduler"}


class TestMaskFolderUnderscores(_MaskProRun):
    format = "mask-folder"
    style, folder = "underscores", "initial_masks"

    def make_checkpoint(self, tmp_path, run=None):
        folder = save_mask_folder(run.masks, tmp_path / self.folder, self.style)
        first = run.wrapped[0]
        name = f"{first.replace('.', '_') if self.style == 'underscores' else first}.pt"
        return folder, {"base_model": run.trained}, {"requires": "base_model", "corrupt": name,
                                                     "describe": {"num_tensors": len(run.masks)}}


class TestMaskFolderDots(TestMaskFolderUnderscores):
    style, folder = "dots", "learned_masks"


# ---------------------------------------------------------------- plain state dicts (config.json beside them)

class TestStateDictPt(LoaderTesterMixin):
    format = "state-dict"
    kind = "pt-state_dict"

    def make_checkpoint(self, tmp_path):
        unet = tiny_unet(0)
        return save_plain_state_dict(unet, tmp_path, self.kind), {}, {"reference": unet}


class TestStateDictPthEma(TestStateDictPt):
    kind = "pth-ema"


class TestStateDictSafetensors(TestStateDictPt):
    kind = "safetensors"


class TestStateDictBare(TestStateDictPt):
    kind = "bare"


def test_every_format_has_a_tester():
    testers = {c.format for c in globals().values()
               if isinstance(c, type) and issubclass(c, LoaderTesterMixin) and c.__name__.startswith("Test")}
    assert testers == set(FORMATS)
