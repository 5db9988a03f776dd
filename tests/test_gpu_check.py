"""The prepared GPU check (benchmarks/gpu_check.py) run as `make gpu-check DEVICE=cpu` runs it: the same script, tiny
shapes, float32, so the script cannot go stale between the rare GPU runs. One subprocess run of the whole check
(steps, sampler, pipeline); its last stdout line is the JSON report. Then the pieces that only matter on CUDA,
checked on CPU: the CUDA run's command lines, and the isolation of process-wide settings between parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vqvideo.lit.configs import read_yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402  (a script folder, not a package)
import gpu_check_report  # noqa: E402

STAGES = ("vqvae", "top_prior", "bottom_prior")


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.md"
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), out


def test_every_part_ran_and_passed(cpu_check):
    report, _ = cpu_check
    assert report["failed"] == [] and report["profile"].startswith("cpu")
    assert {"steps", "sampler", "pipeline", "decode", "compile"} == set(report["parts"])
    assert all(report["parts"][part]["ok"] for part in ("steps", "sampler", "pipeline"))
    assert "CUDA only" in report["decode"]["skipped"] and "CUDA only" in report["compile"]["skipped"]


def test_sampler_codes_identical_and_timed(cpu_check):
    sampler = cpu_check[0]["sampler"]
    assert sampler["identical"] is True
    for group in ("demo", "bench"):
        assert set(sampler[group]) == {"top", "bottom"}
        assert all(row["identical"] and row["cached_s"] > 0 for row in sampler[group].values())
    assert all(row["naive_over_cached"] > 0 for row in sampler["bench"].values())


def test_training_steps_ran_for_every_paper_stage(cpu_check):
    report, _ = cpu_check
    for key in ("step", "memory", "tflops", "mfu", "batch_size"):
        assert set(report[key]) == set(STAGES), key
    assert all(report["step"][stage] > 0 and report["tflops"][stage] > 0 for stage in STAGES)
    assert all(0 < report["mfu"][stage] for stage in STAGES)
    assert all(report["memory"][stage] is None for stage in STAGES)  # CUDA's allocator only
    assert report["batch_size"] == {"vqvae": 2, "top_prior": 2, "bottom_prior": 2}  # the shrunk YAMLs' batch
    assert "measured float32 matmul" in report["peak"]["source"]


def test_pipeline_stages_ran_through_the_cli(cpu_check):
    stages = cpu_check[0]["pipeline"]["stages"]
    assert list(stages) == ["vqvae", "precompute", "top_prior", "bottom_prior", "predict", "vqvae_gpu_decode"]
    assert all(stage["ok"] for stage in stages.values())
    assert "--trainer.accelerator cpu" in stages["vqvae"]["result"]["command"]
    assert stages["vqvae_gpu_decode"]["skipped"] == "CUDA only (this run: cpu)"


def test_markdown_and_json_written(cpu_check):
    report, out = cpu_check
    page = out.read_text()
    assert page.startswith("# vqvideo GPU check: cpu") and "| top_prior |" in page and "identical" in page
    assert json.loads(out.with_suffix(".json").read_text())["sampler"]["identical"] is True


# ----- pieces of the check that only matter on CUDA, checked here on CPU ---------------------------------

def test_cuda_command_lines_parse(tmp_path):
    """The CUDA run's `vqvideo` command lines are valid for each tool's parser (flags, types, devices "1,")."""
    from vqvideo.lit.cli import build_cli
    from vqvideo.commands.precompute import build_parser as precompute_parser
    from vqvideo.commands.predict import build_parser as predict_parser

    profile = gpu_check.profile_for("cuda:1")
    assert (profile.accelerator, profile.precision, profile.autocast) == ("gpu", "bf16-mixed", torch.bfloat16)
    config_dir = gpu_check.derive_experiment("demo", tmp_path, gpu_check.PIPELINE)
    commands = gpu_check.pipeline_commands(config_dir, profile)
    for stage in ("vqvae", "top_prior", "bottom_prior"):
        assert commands[stage][commands[stage].index("--trainer.precision") + 1] == "bf16-mixed"
        with pytest.raises(SystemExit) as exit_info:  # --print_config validates every key, then exits 0
            build_cli([*commands[stage], "--print_config"])
        assert exit_info.value.code in (0, None)
    gpu_decode_dir = gpu_check.derive_experiment("demo", tmp_path / "gpu_decode",
                                                 gpu_check.merged(gpu_check.PIPELINE, gpu_check.GPU_DECODE))
    gpu_decode_fit = gpu_check.pipeline_commands(gpu_decode_dir, profile)["vqvae"]
    assert read_yaml(gpu_decode_dir / "vqvae.yaml")["data"]["init_args"]["decode_device"] == "gpu"
    with pytest.raises(SystemExit) as exit_info:
        build_cli([*gpu_decode_fit, "--print_config"])
    assert exit_info.value.code in (0, None)
    precompute = precompute_parser().parse_args(commands["precompute"][1:])
    assert (precompute.trainer.accelerator, precompute.trainer.devices) == ("gpu", "1,")
    assert predict_parser().parse_args(commands["predict"][1:]).device == "cuda:1"


def test_stage_settings_do_not_leak_between_parts():
    """A deterministic Trainer turns deterministic algorithms on (CUDA's NLLLoss then raises in a prior fit); predict
    sets one thread: the check restores both after each part, as separate processes would."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with gpu_check.isolated_torch_state():  # flipped, whatever state the suite left
        torch.use_deterministic_algorithms(not deterministic)
        torch.set_num_threads(threads + 1)
    assert torch.are_deterministic_algorithms_enabled() == deterministic and torch.get_num_threads() == threads


def test_derived_configs_move_outputs_and_shrink(tmp_path):
    config_dir = gpu_check.derive_experiment("kinetics600_256", tmp_path, gpu_check.TINY)
    vqvae = read_yaml(config_dir / "vqvae.yaml")
    assert vqvae["data"]["init_args"]["resolution"] == 32 and vqvae["model"]["init_args"]["vqvae"]["code_dim"] == 8
    assert vqvae["model"]["init_args"]["vqvae"]["bottom_stride"] == [2, 4, 4]  # the rest is the paper's
    top = (config_dir / "top_prior.yaml").read_text()
    assert "outputs/kinetics600_256" not in top and str(config_dir / "run") in top


def test_gpu_decoding_without_the_extra_is_skipped_with_the_reason(monkeypatch, tmp_path):
    """On a CUDA machine without PyNvVideoCodec (and PyPI's CPU-only decord), the decode part and the pipeline's
    decode_device gpu stage report "skipped: <the one-line reason>" instead of failing or crashing."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # the extra not installed: import raises ImportError
    profile = gpu_check.profile_for("cuda")
    decode = gpu_check.attempt("decode", lambda: gpu_check.check_decode(profile))
    fit = gpu_check.attempt("pipeline: vqvae_gpu_decode", lambda: gpu_check.fit_with_gpu_decoding({}, profile))
    for outcome in (decode, fit):
        assert outcome["ok"] and outcome["skipped"].startswith(
            "decode_device='gpu' is unavailable here: PyNvVideoCodec is not installed;"), outcome
        assert "pip install 'vqvideo[gpu]'" in outcome["skipped"] and "\n" not in outcome["skipped"]
    page = gpu_check_report.markdown(gpu_check.summary({"decode": decode}, gpu_check.profile_for("cpu"),
                                                       0.0))
    assert "| decode | skipped: decode_device='gpu' is unavailable here: PyNvVideoCodec is not installed" in page
