"""FID/KID/IS arithmetic against independent computations, reference caching, the missing-weights message,
evaluation during training (metrics.jsonl, best.pt, returned metrics) and `gantrain-eval` end to end."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from gantrain.cli import eval as eval_cli
from gantrain.config.schema import group_config, validate_config
from gantrain.data.digits import Digits
from gantrain.errors import GantrainError
from gantrain.metrics import inception, reference
from gantrain.metrics.backbones import BACKBONES, Backbone
from gantrain.metrics.base import EvalContext
from gantrain.nets.classifier import SmallClassifier, cache_file, protocol_key
from gantrain.metrics.evaluator import Evaluator
from gantrain.metrics.features import fid_from_features, inception_score
from gantrain.metrics.frechet import frechet_distance_features, kid_from_features
from gantrain.trainer.trainer import Trainer
from conftest import TINY, compose_cfg, data_cfg, run_cli, run_metrics


# ------------------------------------------------------------------ independent reference computations
def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def unbiased_poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """MMD^2 with k(a, b) = (a.b / d + 1)^3, diagonal terms left out of the within-set means."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def features_pair(n: int = 300, d: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    mix = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    b = torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix + 0.5
    return a, b


def test_fid_matches_scipy_sqrtm():
    a, b = features_pair()
    expected = scipy_fid(a.numpy(), b.numpy())
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_features(a, b) == pytest.approx(expected, rel=1e-6)  # the classifier metric's own code
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_matches_unbiased_polynomial_mmd():
    a, b = features_pair(120, 8)
    expected = unbiased_poly_mmd2(a.numpy(), b.numpy())
    mean, std, size = kid_from_features(a, b, subsets=3, subset_size=1000, seed=0)  # clipped to all 120: every subset is the full set
    assert size == 120
    assert mean == pytest.approx(expected, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)
    m1, s1, _ = kid_from_features(a, b, subsets=20, subset_size=40, seed=7)
    assert (m1, s1, 40) == kid_from_features(a, b, subsets=20, subset_size=40, seed=7)  # seeded subsets
    assert s1 > 0 and abs(m1 - expected) < 4 * s1


def test_inception_score_extremes_and_formula():
    k, n = 5, 200
    confident = torch.full((n, k), -30.0, dtype=torch.float64)
    confident[torch.arange(n), torch.arange(n) % k] = 30.0  # sure of one class each, classes balanced
    assert inception_score(confident, splits=1, seed=0)[0] == pytest.approx(k, rel=1e-6)
    assert 1 < inception_score(confident, splits=10, seed=0)[0] <= k  # shuffled splits are not exactly balanced
    assert inception_score(torch.zeros(n, k), splits=10, seed=0) == pytest.approx((1.0, 0.0))
    logits = torch.randn(n, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = torch.softmax(logits, 1).numpy()
    expected = np.exp((p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean())
    assert inception_score(logits, splits=1, seed=0)[0] == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------ a tiny stand-in feature network
class TinyBackbone(Backbone):
    """Fixed random convs: cheap features so the whole pipeline runs without the Inception weights."""

    name = "tiny"

    def __init__(self, cfg, data, info, device) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(info.channels, 6, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(24, 4)
        self.protocol = {"backbone": "tiny", "weights_sha256": "t1", "resize": "none"}

    @torch.no_grad()
    def features(self, images):
        pool = self.net(images.float())
        return {"pool": pool.double(), "logits": self.head(pool).double()}


@pytest.fixture
def tiny_backbone(monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny", TinyBackbone)
    return TinyBackbone


class RealImagesModel:
    """A 'generator' that returns real test images: FID then compares two real sets."""

    directions = ()

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.pos = images, 0

    def fixed_inputs(self, k, gen):
        return {"idx": torch.randint(len(self.images), (k,), generator=gen)}

    def generate(self, inputs, nets=None):
        return self.images[inputs["idx"]]


BLANK = RealImagesModel(torch.zeros(1, 1, 16, 16))  # for evaluators that are only built, never run


def eval_cfg(tmp_path, **eval_keys):
    cfg = OmegaConf.create({
        "seed": 0, "model": OmegaConf.to_container(group_config("model", "dcgan")),
        "data": data_cfg("digits", image_size=16),
        "trainer": OmegaConf.to_container(group_config("trainer", "default", max_steps=1)),
        "optim": OmegaConf.to_container(group_config("optim", "adam")),
        "logger": OmegaConf.to_container(group_config("logger", "none")),
        "eval": OmegaConf.to_container(group_config("eval", "default", **{
            "backbone": "tiny", "num_samples": 64, "num_real": 100, "kid_subsets": 4, "kid_subset_size": 50,
            "reference_cache": str(tmp_path / "ref"), **eval_keys})),
    })
    return validate_config(cfg)


def test_evaluator_fid_kid_is_on_tiny_backbone(tiny_backbone, tmp_path, monkeypatch):
    cfg = eval_cfg(tmp_path, metrics=["fid", "kid", "is"])
    data = Digits(cfg.data)
    test_images = data.split("test").batch(torch.arange(360))["image"]
    model = RealImagesModel(test_images)
    ev = Evaluator(cfg, data, model, torch.device("cpu"))
    out = ev(None, step=7)
    assert set(out) == {"fid_tiny", "kid_mean_tiny", "kid_std_tiny", "is_mean_tiny", "is_std_tiny"}
    # independent: the same 100 real and 64 generated images through the same features, scipy FID
    real = reference.real_images(data.split("test"), 100)
    fake = EvalContext(ev.setup).fake
    bb = TinyBackbone(cfg, data, data.info, "cpu")
    assert out["fid_tiny"] == pytest.approx(scipy_fid(bb.features(real)["pool"].numpy(), bb.features(fake)["pool"].numpy()), rel=1e-5)
    proto = ev.protocol
    assert proto["step"] == 7 and proto["num_fake"] == 64 and proto["seed"] == cfg.eval.seed
    assert proto["metrics"]["fid"]["num_real"] == 100 and proto["metrics"]["fid"]["reference_split"] == "test"
    assert proto["metrics"]["kid"]["kid_subset_size"] == 50 and proto["metrics"]["is"]["is_splits"] == 10
    assert proto["metrics"]["fid"]["weights_sha256"] == "t1"
    # noise scores worse than real images
    noise = RealImagesModel(torch.rand(64, 1, 16, 16) * 2 - 1)
    assert Evaluator(cfg, data, noise, torch.device("cpu"))(None, step=8)["fid_tiny"] > 5 * out["fid_tiny"]
    # reference features are cached on disk: a second evaluator never touches the real images
    assert len(list((tmp_path / "ref").glob("digits-test-tiny-*.pt"))) == 1
    monkeypatch.setattr(reference, "real_images", lambda *a, **k: pytest.fail("reference recomputed"))
    assert Evaluator(cfg, data, model, torch.device("cpu"))(None, 7) == out


def test_reference_cache_key_changes_with_protocol(tiny_backbone, tmp_path):
    cfg = eval_cfg(tmp_path, metrics=["fid"])
    data = Digits(cfg.data)
    Evaluator(cfg, data, BLANK, torch.device("cpu"))
    Evaluator(eval_cfg(tmp_path, metrics=["fid"], num_real=80), data, BLANK, torch.device("cpu"))
    Evaluator(eval_cfg(tmp_path, metrics=["fid"], split="train"), data, BLANK, torch.device("cpu"))
    files = list((tmp_path / "ref").glob("*.pt"))
    assert len(files) == 3
    keys = [torch.load(f, weights_only=True)["key"] for f in files]
    assert {(k["split"], k["n"]) for k in keys} == {("test", 100), ("test", 80), ("train", 100)}
    assert all(k["backbone"]["weights_sha256"] == "t1" and k["resolution"] == 16 for k in keys)


def test_unknown_metric_and_backbone_fail_with_choices(tmp_path):
    data = Digits(OmegaConf.create({"image_size": 16, "flip": False}))
    with pytest.raises(GantrainError, match="unknown eval.metrics.*choose from: .*classifier, fid"):
        Evaluator(eval_cfg(tmp_path, metrics=["fdi"]), data, BLANK, torch.device("cpu"))
    with pytest.raises(GantrainError, match="unknown eval.backbone 'tiny'"):
        Evaluator(eval_cfg(tmp_path, metrics=["fid"]), data, BLANK, torch.device("cpu"))
    with pytest.raises(GantrainError, match="eval.is_splits=10 needs 1 to eval.num_samples \\(6\\) splits"):
        Evaluator(eval_cfg(tmp_path, metrics=["is"], backbone="classifier", num_samples=6), data, BLANK, torch.device("cpu"))


# ------------------------------------------------------------------ Inception weights
def test_missing_weights_message_names_file_source_and_place(tmp_path):
    with pytest.raises(GantrainError) as exc:
        inception.resolve_weights(None, allow_download=False)
    msg = str(exc.value)
    assert "\n" not in msg
    assert inception.WEIGHTS_FILE in msg and inception.WEIGHTS_URL in msg and str(inception.cache_path()) in msg
    assert "eval.inception_weights=PATH" in msg
    with pytest.raises(GantrainError, match="eval.inception_weights=/nowhere/w.pth does not exist"):
        inception.resolve_weights("/nowhere/w.pth")


class _Server:
    """A local HTTP server for the download path (tests never reach the network)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server naming
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args):
                """Keep the test output free of request lines."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_weights_download_failure_hash_check_and_success(monkeypatch):
    payload = b"not really inception weights"
    server = _Server({"/w.pth": payload})
    try:
        with pytest.raises(GantrainError, match=f"cannot be downloaded \\(HTTP Error 404.*get {inception.WEIGHTS_FILE}"):
            inception.resolve_weights(None, url=server.url + "/missing.pth")
        with pytest.raises(GantrainError, match="its sha256 starts .*expected 6726825d"):
            inception.resolve_weights(None, url=server.url + "/w.pth")
        assert not inception.cache_path().exists() and not list(inception.cache_path().parent.glob("*.part"))
        digest = hashlib.sha256(payload).hexdigest()
        monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", digest[:8])
        path, sha = inception.resolve_weights(None, url=server.url + "/w.pth")
        assert path == inception.cache_path() and path.read_bytes() == payload and sha == digest
    finally:
        server.close()


def test_resizers_reach_299_and_grey_becomes_rgb():
    x = torch.linspace(-1, 1, 2 * 16 * 16).view(2, 1, 16, 16)
    rgb = inception.to_uint8_rgb(x)
    assert rgb.shape == (2, 3, 16, 16) and rgb.dtype == torch.uint8 and int(rgb.min()) == 0 and int(rgb.max()) == 255
    assert inception.resize_for_inception(rgb, "tf_bilinear").shape[-1] == 16  # done inside the extractor
    for method in ("bilinear_antialias", "bicubic_antialias"):
        assert inception.resize_for_inception(rgb, method).shape == (2, 3, 299, 299)


# ------------------------------------------------------------------ during training
def test_training_logs_eval_keeps_best_and_returns_metrics(tiny_cfg, tiny_backbone, tmp_path):
    cfg = validate_config(tiny_cfg([
        "eval.metrics=[fid,kid]", "eval.backbone=tiny", "eval.every=2", "eval.at_end=true", "eval.num_samples=32",
        "eval.num_real=64", "eval.kid_subsets=3", "eval.monitor=eval/fid_tiny", f"eval.reference_cache={tmp_path / 'ref'}",
    ]))
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.setup()
    final = trainer.fit()
    assert set(final) == {"fid_tiny", "kid_mean_tiny", "kid_std_tiny"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid_tiny" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(r["time/eval_s"] >= 0 for r in evals)
    assert evals[-1]["eval/fid_tiny"] == pytest.approx(final["fid_tiny"])
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    best_value = min(r["eval/fid_tiny"] for r in evals)
    assert best["best"]["value"] == pytest.approx(best_value) and best["step"] == best["best"]["step"]
    report = json.loads((tmp_path / "run" / "eval_last.json").read_text())
    assert report["protocol"]["step"] == 4 and report["protocol"]["metrics"]["fid"]["num_real"] == 64


def test_monitor_of_a_metric_not_computed_fails(tiny_cfg, tiny_backbone, tmp_path):
    cfg = validate_config(tiny_cfg([
        "eval.metrics=[is]", "eval.backbone=tiny", "eval.every=2", "eval.num_samples=20", "eval.monitor=fid",
        "trainer.max_steps=2",
    ]))
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.setup()
    with pytest.raises(GantrainError, match="eval.monitor=fid is not among the computed metrics \\(is_mean_tiny, is_std_tiny\\)"):
        trainer.fit()


# ------------------------------------------------------------------ gantrain-eval
def _trained_run(tiny_cfg, tmp_path) -> Path:
    cfg = validate_config(tiny_cfg(["data.image_size=16", "trainer.max_steps=2"]))
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.setup()
    trainer.fit()
    return tmp_path / "run"


def _random_digits_classifier(folder: Path) -> None:
    """A cached (untrained, fixed-seed) digits classifier, so the test does not spend minutes training one."""
    data = Digits(OmegaConf.create({"image_size": 16, "flip": False}))
    key = protocol_key("digits", 16, 1, 10, len(data.split("train")))
    torch.manual_seed(0)
    state = {k: v for k, v in SmallClassifier(1, 10).state_dict().items()}
    protocol = {**key, "test_accuracy": 0.1, "weights_sha256": "random0", "cache_file": "x"}
    path = cache_file("digits", key, str(folder))
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "protocol": protocol}, path)


def test_gantrain_eval_cli_prints_and_writes_json(tiny_cfg, tmp_path):
    run = _trained_run(tiny_cfg, tmp_path)
    _random_digits_classifier(tmp_path / "cls")
    proc = run_cli([
        "gantrain.cli.eval", str(run), "--metrics", "fid,kid,is,classifier", "--num", "40", "--split", "test",
        "eval.backbone=classifier", f"eval.classifier_cache={tmp_path / 'cls'}", f"eval.reference_cache={tmp_path / 'ref'}",
        "eval.kid_subsets=3", "eval.num_real=60", "--device", "cpu",
    ], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["step"] == 2 and report["checkpoint"].endswith("last.pt")
    assert {"fid_classifier", "kid_mean_classifier", "kid_std_classifier", "is_mean_classifier", "cls_fd", "classes_present"} <= set(report["metrics"])
    proto = report["protocol"]
    assert proto["num_fake"] == 40 and proto["seed"] == 1234 and proto["step"] == 2
    fid = proto["metrics"]["fid"]
    assert fid["weights_sha256"] == "random0" and fid["reference_split"] == "test" and fid["num_real"] == 60
    assert fid["resize"].startswith("none") and proto["metrics"]["kid"]["kid_subset_size"] == 40
    written = json.loads((run / "checkpoints" / "last.eval.json").read_text())
    assert written["metrics"] == report["metrics"]


def test_gantrain_eval_without_inception_weights_is_one_line(tiny_cfg, tmp_path, capsys):
    run = _trained_run(tiny_cfg, tmp_path)
    with pytest.raises(SystemExit) as exc:
        eval_cli.main([str(run), "--metrics", "fid", "--num", "8", "eval.inception_download=false", "--device", "cpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: the Inception-v3 weights for FID/KID/IS are missing") and inception.WEIGHTS_FILE in err
    with pytest.raises(SystemExit):
        eval_cli.main([str(run), "--metrics", "fid", "backbone=x"])
    assert "overrides must look like eval.KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_inception_backbone_runs_with_a_weights_file(tmp_path, monkeypatch):
    """The real extractor code path on randomly initialised weights (the true file cannot be downloaded here)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    torch.manual_seed(0)
    random_net = fe.FeatureExtractorInceptionV3("x", ["2048"])
    monkeypatch.undo()
    weights = tmp_path / "w.pth"
    torch.save(random_net.state_dict(), weights)
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", inception.sha256_file(weights)[:8])
    cfg = eval_cfg(tmp_path, metrics=["fid", "is"], backbone="inception", inception_weights=str(weights), num_real=6,
                   num_samples=6, is_splits=2, resize="bicubic_antialias")
    data = Digits(cfg.data)
    ev = Evaluator(cfg, data, RealImagesModel(data.split("test").batch(torch.arange(20))["image"]), torch.device("cpu"))
    out = ev(None, 1)
    assert set(out) == {"fid", "is_mean", "is_std"} and np.isfinite(list(out.values())).all()
    proto = ev.protocol["metrics"]["fid"]
    assert proto["resize"] == "bicubic_antialias: 16x16 -> 299x299" and proto["weights_sha256"] == inception.sha256_file(weights)


# ------------------------------------------------------------------ which metrics, and whether they fit the run
FAMILY_DEFAULTS = {  # what the family recipes set before families declared them (behaviour unchanged)
    "gan": ["classifier"], "dcgan": ["classifier"], "cgan": ["classifier"], "acgan": ["classifier"],
    "bigan": ["classifier", "latent_probe", "reconstruction"], "cogan": ["pair_agreement"],
    "gan_cls": ["text2image", "caption_diversity"],
    "cyclegan": ["translation"], "dualgan": ["translation"], "discogan": ["translation"], "unit": ["translation"],
    "cut": ["translation"], "fastcut": ["translation"], "pix2pix": ["paired"], "latent_encoder": ["classifier"],
}


@pytest.mark.parametrize("model", sorted(FAMILY_DEFAULTS))
def test_families_declare_their_default_metrics_and_eval_metrics_wins(model):
    assert run_metrics(compose_cfg([f"model={model}"])) == FAMILY_DEFAULTS[model]
    assert run_metrics(compose_cfg([f"model={model}", "eval.metrics=[fid]"])) == ["fid"]
    assert run_metrics(compose_cfg([f"model={model}", "eval=none"])) == []


@pytest.mark.parametrize("overrides, named", [
    (["model=cyclegan", "data=digits2negative", "eval.metrics=[paired]"],
     "eval.metrics=[paired] needs paired data (true targets); model=cyclegan data=digits2negative does not fit"),
    (["eval.metrics=[translation]"], "eval.metrics=[translation] needs two-domain data; model=dcgan data=digits"),
    (["eval.metrics=[classifier,reconstruction]"],
     "eval.metrics=[reconstruction] needs an unconditional model with an encoder E; model=dcgan data=digits"),
])
def test_an_unfit_metric_stops_the_run_before_its_first_step(tmp_path, overrides, named):
    run = tmp_path / "run"
    proc = run_cli(["gantrain", *TINY, f"hydra.run.dir={run}", *overrides, "eval.at_end=true"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()
