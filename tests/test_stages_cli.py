"""`vqvideo fit`, `validate` and `test` of every stage through the CLI users run, on the bundled real clips.

The chain of `make demo` at toy size, from YAMLs written here on the structure of experiments/demo/*.yaml: the VQ-VAE
is fit on 8-frame 32 px clips, the code cache is built from the checkpoint that fit wrote (the tiny precompute of
tests/cache_helpers.py), and both priors are fit on that cache. Each stage is then validated and tested from its
plain YAML and `--ckpt_path`, although its architecture was changed on the fit's command line: the checkpoint's
architecture is the one restored. The latent facts reach the modules linked from the data, never typed in a YAML.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from cache_helpers import NUM_FRAMES, RESOLUTION, TINY_VQVAE, precompute_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_models import EXPERIMENTS, tiny_bottom_config, tiny_top_config

from vqvideo.cache.manifest import read_manifest
from vqvideo.callbacks.video_logger import BOTTOM_TAG, TOP_TAG, VQVAE_TAG
from vqvideo.commands import precompute
from vqvideo.lit.checkpoints import read_checkpoint
from vqvideo.lit.cli import build_cli
from vqvideo.lit.configs import read_yaml
from vqvideo.lit.describe import describe_config

TRAINER = dict(accelerator="cpu", max_steps=2, val_check_interval=2, check_val_every_n_epoch=None,
               limit_val_batches=1, limit_test_batches=1, num_sanity_val_steps=0, log_every_n_steps=1,
               enable_progress_bar=False, enable_model_summary=False)
VIDEO_LOGGER = {"every_n_validations": 1, "num_clips": 1, "num_samples": 1}
# What each stage's fit changes on the command line, away from its YAML; validate/test must restore it.
FIT_OVERRIDES = {"vqvae": ("vqvae", "hidden_channels", 8), "top_prior": ("prior", "num_layers", 1),
                 "bottom_prior": ("prior", "num_layers", 1)}
TAGS = {"vqvae": VQVAE_TAG, "top_prior": TOP_TAG, "bottom_prior": BOTTOM_TAG}


def plain(config) -> dict:
    """A config dataclass as YAML values (tuples as lists)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()}


def write_stage_yaml(stage: str, workspace: Path) -> Path:
    """experiments/demo/<stage>.yaml with a tiny model, a tiny trainer and every output under `workspace`."""
    config = read_yaml(EXPERIMENTS / "demo" / f"{stage}.yaml")
    init_args, data = config["model"]["init_args"], config["data"]["init_args"]
    init_args["optimization"]["warmup_steps"] = 1
    if stage == "vqvae":
        init_args["vqvae"] = plain(TINY_VQVAE) | {"hidden_channels": 12}  # the fit overrides it to 8
        data.update(num_frames=NUM_FRAMES, resolution=RESOLUTION, batch_size=2, num_workers=0, max_clips_per_video=1,
                    index_cache_dir=str(workspace / "index"), progress=False)
    else:
        architecture = tiny_top_config() if stage == "top_prior" else tiny_bottom_config()
        init_args["prior"] = plain(architecture)  # num_layers 2: the fit overrides it to 1
        data.update(cache_dir=str(workspace / "codes"), batch_size=4, num_workers=0)
    trainer = config["trainer"]
    trainer.pop("max_time")
    trainer.update(TRAINER, default_root_dir=str(workspace))
    trainer["logger"]["init_args"]["save_dir"] = str(workspace / "tb")
    for callback in trainer["callbacks"]:
        if callback["class_path"].endswith("ModelCheckpoint"):
            callback["init_args"]["dirpath"] = str(workspace)
        if callback["class_path"].endswith("VideoLogger"):
            callback["init_args"].update(VIDEO_LOGGER)
    path = workspace / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit(stage: str, workspace: Path) -> tuple[Path, Path]:
    """`vqvideo fit` of the stage's YAML with one architecture setting changed on the command line → (YAML, ckpt)."""
    config = write_stage_yaml(stage, workspace)
    section, key, value = FIT_OVERRIDES[stage]
    cli = build_cli(["fit", "--config", str(config), f"--model.init_args.{section}.{key}", str(value)])
    assert cli.trainer.state.finished and cli.trainer.global_step == TRAINER["max_steps"]
    checkpoint = workspace / f"{stage}.ckpt"
    assert checkpoint.is_file()
    return config, checkpoint


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stages")


@pytest.fixture(scope="module")
def vqvae_stage(workspace) -> tuple[Path, Path]:
    return fit("vqvae", workspace)


@pytest.fixture(scope="module")
def code_cache(workspace, vqvae_stage) -> Path:
    """The code cache of the fitted VQ-VAE: 9 clips (6 train, 3 val) of 8×32×32 → top 2×4×4, bottom 4×8×8."""
    _, checkpoint = vqvae_stage
    assert precompute.main(precompute_args(checkpoint, workspace / "codes", workspace / "index")) == 0
    return workspace / "codes"


@pytest.fixture(scope="module")
def prior_stages(workspace, code_cache) -> dict[str, tuple[Path, Path]]:
    return {stage: fit(stage, workspace) for stage in ("top_prior", "bottom_prior")}


def stage_files(stage: str, vqvae_stage, prior_stages) -> tuple[Path, Path]:
    return vqvae_stage if stage == "vqvae" else prior_stages[stage]


def restored_setting(cli, stage: str):
    section, key, _ = FIT_OVERRIDES[stage]
    return cli.model.hparams[section][key]


METRICS = {"vqvae": ("loss", "psnr", "recon_mse", "psnr_top_only", "psnr_mean_colour"), "top_prior": ("loss", "bits_per_code", "unigram_bits_per_code"),
           "bottom_prior": ("loss", "bits_per_code", "unigram_bits_per_code")}


@pytest.mark.parametrize("subcommand", ["validate", "test"])
@pytest.mark.parametrize("stage", ["vqvae", "top_prior", "bottom_prior"])
def test_validate_and_test_from_the_yaml_and_the_checkpoint(stage, subcommand, vqvae_stage, prior_stages):
    config, checkpoint = stage_files(stage, vqvae_stage, prior_stages)
    cli = build_cli([subcommand, "--config", str(config), "--ckpt_path", str(checkpoint)])
    assert restored_setting(cli, stage) == FIT_OVERRIDES[stage][2]  # the checkpoint's, not the YAML's
    prefix = {"validate": "val", "test": "test"}[subcommand]
    metrics = cli.trainer.callback_metrics
    for name in METRICS[stage]:
        assert math.isfinite(metrics[f"{prefix}/{name}"].item()), f"{prefix}/{name}"
    if stage != "vqvae":
        bits, unigram = metrics[f"{prefix}/bits_per_code"].item(), metrics[f"{prefix}/unigram_bits_per_code"].item()
        assert bits == pytest.approx(metrics[f"{prefix}/loss"].item() / math.log(2), rel=1e-5)
        assert 0 < unigram <= math.log2(16)  # the tiny VQ-VAE's 16 codes


def test_the_vqvae_records_the_clip_shape_of_its_data(vqvae_stage):
    config, checkpoint = vqvae_stage
    assert "clip_shape" not in read_yaml(config)["model"]["init_args"]
    hparams = read_checkpoint(checkpoint)["hyper_parameters"]
    assert tuple(hparams["clip_shape"]) == (NUM_FRAMES, RESOLUTION, RESOLUTION)
    assert hparams["vqvae"]["hidden_channels"] == 8  # the fit's command line, not the YAML's 12


@pytest.mark.parametrize("stage", ["top_prior", "bottom_prior"])
def test_a_priors_checkpoint_holds_the_caches_latent_facts(stage, code_cache, prior_stages):
    config, checkpoint = prior_stages[stage]
    assert "code_spec" not in read_yaml(config)["model"]["init_args"]  # linked, not typed
    hparams = read_checkpoint(checkpoint)["hyper_parameters"]
    assert hparams["code_spec"] == read_manifest(code_cache).code_spec.as_dict()
    assert hparams["prior"]["num_layers"] == 1


@pytest.mark.parametrize("stage", ["vqvae", "top_prior", "bottom_prior"])
def test_the_fit_logged_its_video(stage, workspace, vqvae_stage, prior_stages):
    """Priors decode their samples with the VQ-VAE the cache's manifest names (the fitted one)."""
    name = read_yaml(stage_files(stage, vqvae_stage, prior_stages)[0])["trainer"]["logger"]
    runs = sorted((workspace / "tb" / name["init_args"]["name"]).glob("version_*"))
    events = EventAccumulator(str(runs[0]), size_guidance={"images": 0})  # version_0: the fit
    events.Reload()
    assert TAGS[stage] in events.Tags()["images"]


def test_describe_reads_a_priors_facts_from_its_cache(code_cache, prior_stages):
    top = describe_config(prior_stages["top_prior"][0])
    assert top["data_facts_from"] == f"the DataModule of {prior_stages['top_prior'][0]}"
    assert top["predicted_shape"] == [1, 4, 4]  # 2 top slices per 8-frame clip, 1 of them given
    assert describe_config(prior_stages["bottom_prior"][0])["bottom_shape"] == [4, 8, 8]


def test_a_full_disk_during_fit_is_one_message_and_leaves_no_truncated_checkpoint(tmp_path, monkeypatch, capsys):
    """The checkpoint write fails half-way with ENOSPC: `vqvideo fit` exits 2 with one message naming the checkpoint
    folder and roughly a checkpoint's size, and no partial .ckpt remains under any name."""
    import errno

    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    from vqvideo.cli import main

    def half_written(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"partial checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", half_written)
    config = write_stage_yaml("vqvae", tmp_path)
    assert main(["fit", "--config", str(config)]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"vqvideo fit: no space left on the device of {tmp_path} while writing checkpoints")
    assert "needed" in message and "--ckpt_path" in message
    assert not list(tmp_path.glob("*.ckpt")) and not list(tmp_path.glob(".*.tmp"))
