"""CoGAN: weight sharing, the summed two-domain step, pair sampling and the pixel-agreement metric."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from conftest import TINY, compose_cfg, run_cli
from gantrain.metrics.base import EvalSetup
from gantrain.config.schema import validate_config
from gantrain.data.digit_domains import Digits2Negative, negative
from gantrain.errors import GantrainError
from gantrain.metrics.latent import PairAgreement
from gantrain.nets.coupled import CoupledDiscriminator, CoupledGenerator, discriminator_blocks, generator_blocks
from gantrain.trainer.trainer import Trainer

COGAN = ["model=cogan", "data=digits2negative", "data.image_size=16", "model.z_dim=8", "data.batch_size=8"]


def test_generators_share_first_blocks_and_discriminators_last_blocks():
    g_blocks = lambda c: generator_blocks(8, c, 16, 4, "batch")  # noqa: E731 (16 px: 3 blocks, the last per domain)
    d_blocks = lambda c: discriminator_blocks(c, 16, 4, "batch")  # noqa: E731
    G = CoupledGenerator(g_blocks, (1, 1), shared=2)
    assert len(G.shared) == 2 and len(G.tails["A"]) == len(G.tails["B"]) == 1
    z = torch.randn(3, 8)
    a, b = G(z)
    assert a.shape == b.shape == (3, 1, 16, 16)
    with torch.no_grad():  # one shared weight feeds both domains
        G.shared[0][0].weight.zero_()
    a0, b0 = G(z)
    assert torch.allclose(a0[0], a0[1]) and torch.allclose(b0[0], b0[1])
    D = CoupledDiscriminator(d_blocks, (1, 1), shared=2)
    assert len(D.heads["A"]) == 1 and len(D.shared) == 2
    assert D(torch.randn(3, 1, 16, 16), "B").shape == (3,)
    none = CoupledGenerator(g_blocks, (1, 1), shared=0)
    assert sum(p.numel() for p in none.parameters()) > sum(p.numel() for p in G.parameters())
    with pytest.raises(GantrainError, match="shared_g=3 is out of range"):
        CoupledGenerator(g_blocks, (1, 1), shared=3)
    with pytest.raises(GantrainError, match="shared_d"):
        CoupledDiscriminator(d_blocks, (1, 1), shared=-1)


def test_cogan_default_shares_all_but_the_domain_layers_and_trains(tmp_path):
    cfg = validate_config(compose_cfg(TINY + COGAN + ["trainer.max_steps=2"]))
    assert cfg.model.z_dist == "uniform" and cfg.optim.weight_decay == 5e-4  # the paper's solver (recipe/cogan)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.setup()
    G, D = trainer.model.nets["G"], trainer.model.nets["D"]
    assert G.shared_blocks == 2 and D.shared_blocks == 2  # 16 px: 3 blocks each
    before = {k: v.clone() for k, v in G.state_dict().items()}
    metrics = trainer.fit()
    assert trainer.progress.step == 2 and metrics == {}  # eval disabled by TINY
    assert any(not torch.equal(v, G.state_dict()[k]) for k, v in before.items() if k.startswith("shared"))
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/D_A", "loss/D_B", "loss/G_A", "loss/G_B"} <= set(log[-1])


class PerfectPair(nn.Module):
    """B is exactly the negative of A: agreement 1; with `wrong` B = A, agreement only where A is grey."""

    def __init__(self, wrong: bool = False) -> None:
        super().__init__()
        self.wrong = wrong

    def sample_outputs(self, inputs, nets=None):
        a = inputs["z"].view(-1, 1, 2, 2)
        return {"A": a, "B": a if self.wrong else -a}

    def fixed_inputs(self, n, gen):
        return {"z": torch.rand(n, 4, generator=gen) * 2 - 1}


def test_pair_agreement_hand_computed():
    cfg = OmegaConf.create({"eval": {"seed": 0, "num_samples": 300, "batch_size": 128}})
    unloaded = type("Unloaded", (Digits2Negative,), {"info": SimpleNamespace(name="digits2negative")})
    data = Digits2Negative.__new__(unloaded)  # the transform only: no images loaded
    metric = PairAgreement(EvalSetup(cfg, data, PerfectPair(), torch.device("cpu")))
    assert metric.evaluate(PerfectPair(), None) == {"pair_agreement": 1.0, "pair_l1": pytest.approx(0.0, abs=1e-6)}
    # A uniform on [0, 1] after rescaling: 1 - A > 0.5 and A > 0.5 never agree
    assert metric.evaluate(PerfectPair(wrong=True), None)["pair_agreement"] == 0.0
    assert torch.equal(negative(torch.tensor([0.25])), torch.tensor([0.75]))
    dcgan = object.__new__(type("M", (), {"cfg": OmegaConf.create({"name": "dcgan"})}))
    with pytest.raises(GantrainError, match=r"eval.metrics=\[pair_agreement\] needs a two-domain generator.*model=dcgan"):
        PairAgreement.check(EvalSetup(cfg, data, dcgan, torch.device("cpu")))


def test_sample_cli_writes_pairs_into_A_and_B(tmp_path):
    cfg = validate_config(compose_cfg(TINY + COGAN + ["trainer.max_steps=1"]))
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.setup()
    trainer.fit()
    out = tmp_path / "pairs"
    done = run_cli(["gantrain.cli.sample", str(tmp_path / "run"), "--num", "3", "--out", str(out), "--batch-size", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    for d in ("A", "B"):
        assert sorted(p.name for p in (out / d).iterdir()) == ["00000.png", "00001.png", "00002.png"]
