"""Scale-out: DDP under torchrun (2 CPU ranks over gloo), sweeps with TensorBoard hparams, Optuna and SLURM configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY, run_cli

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(args: list[str], cwd: Path, dump: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 gantrain ...` on the CPU; each rank dumps its weights to `dump`."""
    dump.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GANTRAIN_TEST_DUMP": str(dump), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def load_dumps(dump: Path) -> tuple[dict, dict]:
    return torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


@pytest.mark.parametrize(
    "family",
    [pytest.param([], marks=pytest.mark.slow),  # the CycleGAN case checks the same and more (per-rank image pools)
     ["model=cyclegan", "data=digits2negative", "model.netG=resnet_2blocks"]],
    ids=["dcgan", "cyclegan"],
)
def test_ddp_two_ranks_one_run_dir_identical_weights_exact_resume(tmp_path, family):
    """Both ranks hold the same weights; resuming both from the midpoint reaches the uninterrupted run's weights
    (for CycleGAN also with each rank's own image pool restored from the checkpoint)."""
    proc = torchrun([*TINY, *family], tmp_path, tmp_path / "first")
    assert proc.returncode == 0, proc.stderr[-4000:]
    name = "cyclegan-digits2negative" if family else "dcgan-digits"
    runs = list((tmp_path / "runs" / name).iterdir())
    assert len(runs) == 1, runs  # rank 0 chose the directory for both ranks
    run = runs[0]
    r0, r1 = load_dumps(tmp_path / "first")
    assert_same(r0, r1)  # parameters and BatchNorm buffers
    assert any(("running_mean" in k) for k in r0) or family  # CycleGAN's instance norm keeps no statistics
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["images_seen"] == 4 * 16 * 2
    assert_same({f"{n}.{k}": v for n, sd in ckpt["nets"].items() for k, v in sd.items()}, r0)
    rngs = ckpt["per_rank"]["rng"]
    assert not torch.equal(rngs[0]["torch"], rngs[1]["torch"])  # each rank keeps its own noise stream
    assert (run / "metrics.jsonl").is_file() and not list(tmp_path.glob("runs/*/*/.hydra/*rank*"))

    # resume both ranks from the step-2 checkpoint: the same run dir, and the same weights as the uninterrupted run
    proc = torchrun([f"resume={run / 'checkpoints' / 'step_0000002.pt'}"], tmp_path, tmp_path / "resumed")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert list((tmp_path / "runs" / name).iterdir()) == [run]
    s0, s1 = load_dumps(tmp_path / "resumed")
    assert_same(s0, s1)
    assert_same(s0, r0)


def test_sweep_runs_four_jobs_with_tensorboard_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    proc = run_cli(
        ["gantrain", "-m", "optim.lr=1e-4,2e-4", "model.loss=bce,hinge", *TINY, "trainer.max_steps=2",
         "trainer.ckpt_every=0", "logger.tensorboard=true", "hydra.sweep.dir=sweep"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        acc = EventAccumulator(str(job / "tensorboard"), size_guidance={"tensors": 0})
        acc.Reload()
        assert "loss/D" in acc.Tags()["scalars"]
        plugin = acc.PluginTagToContent("hparams")  # the hparams plugin's session summary, per job
        assert "_hparams_/session_start_info" in plugin
        hp = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info.hparams
        seen.add((hp["optim.lr"].number_value, hp["model.loss"].string_value))
    assert seen == {(1e-4, "bce"), (1e-4, "hinge"), (2e-4, "bce"), (2e-4, "hinge")}




def seed_digits_classifier(folder: Path) -> str:
    """Cache an untrained (seeded) digits classifier where eval.classifier_cache looks, so a sweep test measures
    the sweeper's plumbing in seconds instead of training the metric net (minutes on a shared CPU)."""
    from gantrain.data.digits import digits_split_indices
    from gantrain.io import save_atomic
    from gantrain.nets.classifier import SmallClassifier, cache_file, net_blob, protocol_key

    torch.manual_seed(0)
    key = protocol_key("digits", 32, 1, 10, len(digits_split_indices()["train"]))
    path = cache_file("digits", key, str(folder))
    save_atomic(net_blob(SmallClassifier(1, 10), {**key, "test_accuracy": 0.0}, path), path)
    return str(folder)


def test_optuna_search_runs_two_trials(tmp_path):
    cache = seed_digits_classifier(tmp_path / "classifiers")
    proc = run_cli(
        ["gantrain", "hparams_search=optuna", *TINY, "trainer.max_steps=2", "trainer.ckpt_every=0",
         "eval.metrics=[classifier]", "eval.at_end=true",  # TINY turns evaluation off
         "eval.num_samples=32", "eval.batch_size=32", "eval.num_real=32", f"eval.classifier_cache={cache}",
         "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1",
         "hydra.sweeper.params={optim.lr:'tag(log, interval(0.0001, 0.001))',model.loss:'choice(bce, hinge)'}",
         "hydra.sweeper.storage=sqlite:///study.db", "hydra.sweep.dir=sweep"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    best = result["best_params"]  # the dict override merges into the preset space (optim.lr_D stays in it)
    assert 1e-4 <= best["optim.lr"] <= 1e-3 and best["model.loss"] in ("bce", "hinge") and result["best_value"] >= 0
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]
    assert (tmp_path / "study.db").stat().st_size > 0  # the sqlite storage the config comment suggests works


def test_submitit_local_launcher_runs_two_jobs(tmp_path):
    proc = run_cli(
        ["gantrain", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "optim.lr=1e-4,2e-4",
         *TINY, "trainer.max_steps=2", "trainer.ckpt_every=0", "hydra.sweep.dir=sweep"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        ckpt = torch.load(tmp_path / "sweep" / job / "checkpoints" / "last.pt", weights_only=False)
        assert ckpt["step"] == 2 and ckpt["config"]["optim"]["lr"] == (1e-4, 2e-4)[int(job)]
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # the jobs ran through submitit, not in-process

def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gantrain.config.paths import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4",
                                          "hydra.launcher.nodes=2", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node, launcher.partition) == (2, 4, 4, "gpu")
    assert launcher.timeout_min == 240


def test_ranks_come_from_a_submitit_slurm_task(monkeypatch):
    from gantrain.trainer.distributed import DistEnv

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "42", "SLURM_PROCID": "0", "SLURM_NTASKS": "1",
             "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "node7", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0"}
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    env = DistEnv.from_env()
    assert (env.rank, env.world) == (0, 1)
    assert os.environ["MASTER_ADDR"] == "node7" and os.environ["WORLD_SIZE"] == "1"


def test_sync_batchnorm_needs_cuda():
    from gantrain.errors import GantrainError
    from gantrain.trainer.distributed import DistEnv

    env = DistEnv(rank=0, world=2)
    env.__class__ = type("Active", (DistEnv,), {"active": property(lambda self: True)})
    with pytest.raises(GantrainError, match="sync_batchnorm=true needs CUDA"):
        env.convert_sync_batchnorm(torch.nn.ModuleDict(), torch.device("cpu"))
