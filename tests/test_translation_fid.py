"""Inception FID/KID per translation direction (issue 22): values against independent computations, the
protocol record, the photo datasets' defaults, best.pt by `fid_AtoB`, the weights check before training, and
`gantrain-eval --weights` on a generator file in the CycleGAN reference's format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, compose_cfg, run_metrics
from gantrain.cli import eval as eval_cli
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.metrics import inception
from gantrain.metrics.backbones import InceptionBackbone
from gantrain.trainer.trainer import Trainer
from test_metrics import TinyBackbone, scipy_fid, tiny_backbone, unbiased_poly_mmd2  # noqa: F401 - fixture reused

SIZE = 32


def unpaired_folder(root: Path, n_train: int, n_test: int) -> Path:
    """trainA/ trainB/ testA/ testB/ of random RGB PNGs; B is brighter, so the domains differ."""
    rng = np.random.default_rng(0)
    for phase, n in (("train", n_train), ("test", n_test)):
        for side, offset in (("A", 0), ("B", 100)):
            folder = root / f"{phase}{side}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = (rng.random((SIZE, SIZE, 3)) * 155 + offset).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


def photo_cfg(root: Path, extra: list[str] = ()):
    base = [o for o in TINY if not o.startswith(("data.batch_size", "eval."))]
    return validate_config(compose_cfg([
        "model=cyclegan", "data=unpaired_folder", f"data.root={root}", f"data.load_size={SIZE}", f"data.crop_size={SIZE}",
        *base, "data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=resnet_2blocks", "model.pool_size=2",
        *extra,
    ]))


def test_photo_data_defaults_and_digits_keep_classifier_metrics(tmp_path):
    cfg = photo_cfg(tmp_path)
    assert run_metrics(cfg) == ["translation", "fid", "kid"]
    for name in ("horse2zebra", "facades", "pix2pix_facades", "aligned_folder"):
        assert list(compose_cfg([f"data={name}"]).eval.data_metrics) == ["fid", "kid"], name
    digits = compose_cfg(["model=cyclegan", "data=digits2negative"]).eval
    assert run_metrics(compose_cfg(["model=cyclegan", "data=digits2negative"])) == ["translation"] and list(digits.data_metrics) == []


def test_fid_kid_per_direction_during_training_keep_best_and_record_protocol(tiny_backbone, tmp_path):
    root = unpaired_folder(tmp_path / "data", n_train=6, n_test=12)
    cfg = photo_cfg(root, [
        "eval.backbone=tiny", "eval.every=2", "eval.at_end=true", "eval.kid_subsets=3", "eval.monitor=fid_AtoB_tiny",
        f"eval.reference_cache={tmp_path / 'ref'}", "trainer.max_steps=4",
    ])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.setup()
    final = trainer.fit()
    keys = {f"{m}_{d}{s}_tiny" for m, s in (("fid", ""), ("kid", ""), ("kid", "_std")) for d in ("AtoB", "BtoA")}
    assert keys <= set(final) and "cycle_L1_A" in final  # the family metric still runs beside them
    # independent: translate the whole test split with the final nets, same features, scipy FID and all-pairs KID
    test = trainer.data.split("test")
    bb = TinyBackbone(cfg, trainer.data, trainer.info, "cpu")
    for d, src, dst in (("AtoB", "A", "B"), ("BtoA", "B", "A")):
        x = test.domain(src).batch(torch.arange(12))["image"]
        fake = bb.features(trainer.model.translate(x, d))["pool"].numpy()
        real = bb.features(test.domain(dst).batch(torch.arange(12))["image"])["pool"].numpy()
        assert final[f"fid_{d}_tiny"] == pytest.approx(scipy_fid(real, fake), rel=1e-4)
        assert final[f"kid_{d}_tiny"] == pytest.approx(unbiased_poly_mmd2(real, fake), rel=1e-6)  # subsets = all 12
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid_AtoB_tiny" in r]
    assert [r["step"] for r in evals] == [2, 4]
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"]["metric"] == "fid_AtoB_tiny" and best["step"] == best["best"]["step"]
    assert best["best"]["value"] == pytest.approx(min(r["eval/fid_AtoB_tiny"] for r in evals))
    proto = json.loads((tmp_path / "run" / "eval_last.json").read_text())["protocol"]
    fid = proto["metrics"]["fid"]
    assert proto["step"] == 4 and fid["translation_reference"] == "test" and fid["protocol"].startswith("CUT paper")
    assert fid["AtoB"] == {"source": "testA", "num_fake": 12, "reference": "reference_B", "num_real": 12}
    assert fid["reference_B"]["splits"] == ["testB"] and fid["image_size"] == SIZE and fid["weights_sha256"] == "t1"
    assert proto["metrics"]["kid"]["BtoA"]["kid_subset_size"] == 12
    # the other protocol: the target's train + test images as the reference (real features cached per split)
    cfg.eval.translation_reference = "train+test"
    from gantrain.metrics.evaluator import Evaluator

    ev = Evaluator(cfg, trainer.data, trainer.model, torch.device("cpu"))
    ev(None, 4)
    other = ev.protocol["metrics"]["fid"]
    assert other["reference_A"]["splits"] == ["trainA", "testA"] and other["BtoA"]["num_real"] == 18
    assert len(list((tmp_path / "ref").glob("unpaired_folder-trainA-tiny-*.pt"))) == 1


def test_missing_inception_weights_stop_a_photo_run_before_training(tmp_path):
    root = unpaired_folder(tmp_path / "data", n_train=2, n_test=2)
    cfg = photo_cfg(root, ["eval.inception_download=false", "eval.at_end=true", "eval.every=0"])
    trainer = Trainer(cfg, tmp_path / "run")
    with pytest.raises(GantrainError) as exc:
        trainer.setup()
    message = str(exc.value)
    assert message.startswith("the Inception-v3 weights for FID/KID/IS are missing") and "\n" not in message
    assert trainer.progress.step == 0 and not (tmp_path / "run" / "checkpoints").exists()


def _random_inception_weights(path: Path, monkeypatch) -> None:
    """torch-fidelity's extractor with random weights saved as the weights file (the true file cannot be fetched)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with monkeypatch.context() as m:
        m.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        torch.manual_seed(0)
        torch.save(fe.FeatureExtractorInceptionV3("x", ["2048"]).state_dict(), path)
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", inception.sha256_file(path)[:8])


def test_gantrain_eval_weights_scores_a_reference_generator_file(tmp_path, monkeypatch, capsys):
    from gantrain.nets.generators import build_generator
    from gantrain.nets.init import init_weights

    root = unpaired_folder(tmp_path / "data", n_train=2, n_test=4)
    weights = tmp_path / "inception.pth"
    _random_inception_weights(weights, monkeypatch)
    net = init_weights(build_generator("resnet_6blocks", 3, 3, ngf=4), "normal", 0.2).eval()
    gen_file = tmp_path / "horse2zebra.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, gen_file)  # as the reference saves under DDP
    eval_cli.main([
        "--weights", str(gen_file), "--arch", "resnet_6blocks", "--data", "unpaired_folder", "--device", "cpu",
        f"data.root={root}", f"data.load_size={SIZE}", f"data.crop_size={SIZE}", f"eval.inception_weights={weights}",
        f"eval.reference_cache={tmp_path / 'ref'}", "eval.kid_subsets=2",
    ])
    report = json.loads(capsys.readouterr().out)
    assert set(report["metrics"]) == {"fid_AtoB", "kid_AtoB", "kid_AtoB_std"}  # one direction: the file's
    assert np.isfinite(list(report["metrics"].values())).all()
    assert report["weights_sha256"] == inception.sha256_file(gen_file) and report["step"] is None
    fid = report["protocol"]["metrics"]["fid"]
    assert fid["weights_sha256"] == inception.sha256_file(weights) and fid["resize"] == f"tf_bilinear: {SIZE}x{SIZE} -> 299x299"
    assert fid["AtoB"]["num_fake"] == 4 and fid["AtoB"]["num_real"] == 4
    assert json.loads((tmp_path / "horse2zebra.eval.json").read_text())["metrics"] == report["metrics"]
    # independent: the file's net on testA and the real testB through the same extractor, all-pairs KID
    cfg = validate_config(compose_cfg(["data=unpaired_folder", f"data.root={root}", f"data.load_size={SIZE}",
                                       f"data.crop_size={SIZE}", f"eval.inception_weights={weights}"]))
    bb = InceptionBackbone(cfg, None, type("info", (), {"image_size": SIZE, "channels": 3})(), torch.device("cpu"))
    test = [np.stack([np.asarray(Image.open(p)) for p in sorted((root / f"test{s}").glob("*.png"))]) for s in "AB"]
    a, b = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1 for x in test)
    with torch.no_grad():
        fake, real = bb.features(net(a))["pool"].numpy(), bb.features(b)["pool"].numpy()
    assert report["metrics"]["kid_AtoB"] == pytest.approx(unbiased_poly_mmd2(real, fake), rel=1e-5)


def test_a_one_directional_model_is_scored_in_its_direction_only(tiny_backbone, tmp_path):
    """pix2pix trained B -> A (like any one-sided family) gets fid/kid/is _BtoA and nothing for A -> B."""
    from gantrain.metrics.evaluator import Evaluator
    from gantrain.runtime import Runtime
    from gantrain.runs import build_data, build_model

    cfg = validate_config(compose_cfg([
        "model=pix2pix", "data=edges2digits", "data.direction=BtoA", "model.ngf=4", "model.ndf=4", "eval.metrics=[fid,kid,is]",
        "eval.backbone=tiny", "eval.kid_subsets=2", "eval.is_splits=2", f"eval.reference_cache={tmp_path / 'ref'}",
    ]))
    data = build_data(cfg)
    model = build_model(cfg, data.info)
    model.attach(Runtime(torch.device("cpu"), "32"))
    ev = Evaluator(cfg, data, model, torch.device("cpu"))
    assert set(ev(None, 0)) == {"fid_BtoA_tiny", "kid_BtoA_tiny", "kid_BtoA_std_tiny", "is_BtoA_tiny", "is_BtoA_std_tiny"}
    assert ev.protocol["metrics"]["is"]["BtoA"] == {"source": "testB", "num_fake": 360}
    proto = ev.protocol["metrics"]["fid"]
    assert proto["BtoA"]["source"] == "testB" and proto["reference_A"]["splits"] == ["testA"] and "AtoB" not in proto
