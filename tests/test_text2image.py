"""Text-to-image: the shapes data, mismatching pairs, the GAN-CLS losses, encoders, captioned folders, CLI."""

from __future__ import annotations

import json
import sys
import tarfile
import threading
import types
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from conftest import compose_cfg, data_cfg, run_cli
from gantrain.data.captioned_sets import CaptionedFolder
from gantrain.data.download import fetch_archive
from gantrain.data.captions import decode_tokens, encode_captions
from gantrain.data.shapes import ATTRIBUTES, SHAPES, Shapes, render
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.metrics.shape_fill import fill_ratio, fill_scores
from gantrain.models.gan_cls import GANCLS
from gantrain.nets.text_conditional import TextConditionedGenerator

SMALL_SHAPES = ["data.num_train=96", "data.num_test=24", "data.image_size=16", "data.batch_size=8"]
TINY_CLS = [
    "model=gan_cls", "data=shapes", *SMALL_SHAPES, "model.ngf=8", "model.ndf=8", "model.pretrain_steps=2",
    "model.pretrain_batch=16", "model.text_dim=16", "model.proj_dim=8", "model.word_dim=8", "model.bank_size=16",
    "trainer.max_steps=3", "trainer.max_epochs=null", "trainer.device=cpu", "trainer.progress_bar=false",
    "trainer.sample_every=0", "trainer.ckpt_every=0", "logger.tensorboard=false",
]


def shapes(tmp_path, **kw) -> Shapes:
    cfg = data_cfg("shapes", num_train=96, num_test=24, image_size=16, root=str(tmp_path / "c"), **kw)
    return Shapes(cfg)


def test_shapes_deterministic_cached_and_captions_describe_attributes(tmp_path):
    a = shapes(tmp_path)
    b = shapes(tmp_path)  # from the cache
    c = Shapes(data_cfg("shapes", num_train=96, num_test=24, image_size=16, root=str(tmp_path / "other")))
    tr = a.split("train")
    assert tr.images.shape == (96, 3, 16, 16) and tr.tokens.shape == (96, 5, 16) and len(a.split("test")) == 24
    assert torch.equal(tr.images, b.split("train").images) and torch.equal(tr.tokens, c.split("train").tokens)
    vocab = a.info.vocab
    for word in ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "circle", "square", "triangle",
                 "small", "large", "top", "bottom", "left", "right", "center"]:
        assert word in vocab
    colours = ATTRIBUTES["colour"]
    for i in range(10):  # every caption names the colour; the colour is the image's dominant one
        colour = colours[int(tr.attrs[i, 0])]
        assert all(colour in decode_tokens(t, vocab).split() for t in tr.tokens[i])
    assert len({decode_tokens(t, vocab) for t in tr.tokens[:, :].reshape(-1, 16)}) > 100  # templates and synonyms


def test_mismatching_captions_come_from_other_content(tmp_path):
    tr = shapes(tmp_path).split("train")
    batch = tr.batch(torch.arange(32), torch.Generator().manual_seed(3))
    assert set(batch) >= {"image", "tokens", "wrong_tokens", "attrs", "index", "caption", "wrong_index"}
    assert (tr.content[batch["wrong_index"]] != tr.content[batch["index"]]).all()
    again = tr.batch(torch.arange(32), torch.Generator().manual_seed(3))
    assert torch.equal(batch["wrong_tokens"], again["wrong_tokens"])  # randomness only from the batch generator


def make_model(tmp_path, **over) -> tuple[GANCLS, Shapes]:
    data = shapes(tmp_path)
    cfg = compose_cfg(TINY_CLS + [f"model.{k}={v}" for k, v in over.items()])
    from gantrain.config.schema import validate_config

    cfg = validate_config(cfg)
    model = GANCLS(cfg.model, data.info)
    model.configure_optimizers(lambda name, params: torch.optim.Adam(params, lr=1e-4))
    model.prepare(data, tmp_path / "run")
    return model, data


def test_discriminator_loss_has_three_terms_and_interpolation_reaches_only_g(tmp_path):
    model, data = make_model(tmp_path, interpolate="true", lambda_ms=0.0)  # Reed et al.'s losses alone
    calls = []
    D = model.nets["D"]
    forward = D.forward
    D.forward = lambda x, h: calls.append((x.shape[0], next(D.parameters()).requires_grad)) or forward(x, h)
    batch = data.split("train").batch(torch.arange(8), torch.Generator().manual_seed(0))
    out = model.train_step(batch, 0)
    assert torch.allclose(out["D"], out["D_real"] + 0.5 * (out["D_wrong"] + out["D_fake"]))
    assert calls == [(8, True), (8, True), (8, True), (8, False), (4, False)]  # D: real, fake, wrong; G: fake, interpolated
    # by hand: D returns fixed logits per pair kind (real+right caption 2, generated -1, real+wrong caption 0.5)
    scores = iter([2.0, -1.0, 0.5, -1.0, -1.0])
    D.forward = lambda x, h: torch.full((x.shape[0],), next(scores)) + 0 * (x.sum() + sum(p.sum() for p in D.parameters()))
    out = model.train_step(batch, 1)
    bce = lambda s, y: F.binary_cross_entropy_with_logits(torch.tensor(s), torch.tensor(y))
    assert torch.allclose(out["D"], bce(2.0, 1.0) + 0.5 * (bce(0.5, 0.0) + bce(-1.0, 0.0)))
    assert torch.allclose(out["G"], bce(-1.0, 1.0)) and torch.allclose(out["score_wrong"], torch.sigmoid(torch.tensor(0.5)))
    base, _ = make_model(tmp_path, matching_aware="false")
    out = base.train_step(batch, 0)
    assert "D_wrong" not in out and torch.allclose(out["D"], out["D_real"] + out["D_fake"])


def test_mode_seeking_term_is_in_g_loss_and_draws_a_second_z_for_half_the_batch(tmp_path):
    model, data = make_model(tmp_path, lambda_ms=2.0)
    batch = data.split("train").batch(torch.arange(8), torch.Generator().manual_seed(0))
    D, G = model.nets["D"], model.nets["G"]
    D.forward = lambda x, h: torch.full((x.shape[0],), -1.0) + 0 * (x.sum() + sum(p.sum() for p in D.parameters()))
    sizes = []
    forward = G.forward
    G.forward = lambda z, h: sizes.append(z.shape[0]) or forward(z, h)
    out = model.train_step(batch, 0)
    assert sizes == [8, 4]  # the batch, then a second z for its first half with the same captions
    bce = F.binary_cross_entropy_with_logits(torch.tensor(-1.0), torch.tensor(1.0))
    assert out["G_ms"] > 0 and torch.allclose(out["G"], bce + 2.0 * out["G_ms"])
    off, _ = make_model(tmp_path, lambda_ms=0.0)
    assert "G_ms" not in off.train_step(batch, 0)
    with pytest.raises(GantrainError, match="model.lambda_ms=-1"):
        make_model(tmp_path, lambda_ms=-1)


def test_learned_encoder_is_pretrained_once_frozen_and_cached_in_the_run(tmp_path):
    model, data = make_model(tmp_path)
    T = model.nets["T"]
    assert (tmp_path / "run" / "text_encoder.pt").is_file()
    assert not any(p.requires_grad for p in T.parameters())
    assert set(model.optimizer_groups()) == {"G", "D"}
    again, _ = make_model(tmp_path)  # reloaded from the run, identical
    assert all(torch.equal(a, b) for a, b in zip(T.state_dict().values(), again.nets["T"].state_dict().values()))
    emb, unknown = model.embed_texts(["a small red circle at the top left", "a blorp square"])
    assert emb.shape == (2, 16) and unknown == ["blorp"]
    inputs = model.fixed_inputs(5, torch.Generator().manual_seed(0))
    assert inputs["label"].shape == (5, 4) and model.generate(inputs).shape == (5, 3, 16, 16)
    grid = model.sample_grids(inputs)["captions"]
    assert grid.shape[0] == 1 and grid.shape[-1] > 16 * 5


def test_precomputed_and_sentence_transformer_encoders(tmp_path, monkeypatch):
    data = shapes(tmp_path)
    tables = {"train": torch.randn(96, 5, 12), "test": torch.randn(24, 5, 12)}
    torch.save(tables, tmp_path / "emb.pt")
    model, _ = make_model(tmp_path, text_encoder="precomputed", text_encoder_path=str(tmp_path / "emb.pt"), text_dim=12)
    assert "T" not in model.nets
    batch = data.split("train").batch(torch.arange(4), torch.Generator().manual_seed(0))
    assert torch.equal(model.text.embed_batch(batch), tables["train"][batch["index"], batch["caption"]])
    with pytest.raises(GantrainError, match="cannot embed new captions"):
        model.embed_texts(["a red circle"])
    with pytest.raises(GantrainError, match="model.text_dim=12"):
        make_model(tmp_path, text_encoder="precomputed", text_encoder_path=str(tmp_path / "emb.pt"), text_dim=16)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(GantrainError, match=r"gantrain\[text\]"):
        make_model(tmp_path, text_encoder="sentence_transformer", text_encoder_path="local-model")

    class FakeST:
        def __init__(self, name, device=None):
            self.name = name

        def encode(self, texts, **kw):
            return torch.stack([torch.full((6,), float(len(t))) for t in texts]).numpy()

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeST))
    model, _ = make_model(tmp_path, text_encoder="sentence_transformer", text_encoder_path="local-model", text_dim=6)
    emb, unknown = model.embed_texts(["abc"])
    assert emb.tolist() == [[3.0] * 6] and unknown == []


def write_folder(root: Path) -> None:
    for cls, colour in (("reds", (255, 0, 0)), ("blues", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (20, 24), colour).save(root / cls / f"{i}.png")
            (root / cls / f"{i}.txt").write_text(f"a {cls[:-1]} picture\nplain {cls[:-1]} number {i}\n")


def test_captioned_folder_and_missing_releases(tmp_path):
    write_folder(tmp_path / "imgs")
    cfg = data_cfg("captioned_folder", root=str(tmp_path / "imgs"), image_size=16, cache_dir=str(tmp_path / "c"))
    src = CaptionedFolder(cfg)
    train, test = src.split("train"), src.split("test")
    assert len(train) == 4 and len(test) == 4 and train.tokens.shape[1] == 5  # the last class is held out
    assert decode_tokens(train.tokens[0, 0], src.info.vocab) == "a blue picture"
    assert test.content.unique().numel() == 4  # one class in the test split: each image is its own content
    from gantrain.data.captioned_sets import CUB

    with pytest.raises(GantrainError, match="text_c10"):
        CUB(data_cfg("cub", root=str(tmp_path)))
    with pytest.raises(GantrainError, match="needs data.root"):
        CUB(data_cfg("cub"))


def test_fetch_archive_from_a_local_server(tmp_path):
    src = tmp_path / "srv"
    (src / "pack" / "jpg").mkdir(parents=True)
    (src / "pack" / "jpg" / "a.txt").write_text("hello")
    with tarfile.open(src / "data.tgz", "w:gz") as tar:
        tar.add(src / "pack" / "jpg", arcname="jpg")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(src)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fetch_archive(f"http://127.0.0.1:{server.server_port}/data.tgz", tmp_path / "root")
        assert (tmp_path / "root" / "jpg" / "a.txt").read_text() == "hello"
        with pytest.raises(GantrainError, match="download it by hand"):
            fetch_archive(f"http://127.0.0.1:{server.server_port}/missing.tgz", tmp_path / "root")
    finally:
        server.shutdown()


def test_encode_captions_reports_unknown_words():
    ids, unknown = encode_captions(["a red zork", "red red"], ["<pad>", "<unk>", "a", "red"], 4)
    assert ids.tolist() == [[2, 3, 1, 0], [3, 3, 0, 0]] and unknown == ["zork"]


def test_cli_train_evaluate_and_sample_from_text(tmp_path):
    run = tmp_path / "run"
    res = run_cli(["gantrain", *TINY_CLS, "eval.num_samples=16", "eval.batch_size=8",
                   f"eval.classifier_cache={tmp_path / 'cls'}", f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run}"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = {k: v for r in rows for k, v in r.items()}
    assert {"eval/attr_acc_colour", "eval/attr_acc_position", "loss/score_wrong", "loss/D_wrong"} <= set(final)
    assert {"eval/diversity_ratio", "eval/diversity_real", "eval/fill_shape_acc", "eval/fill_real_circle"} <= set(final)
    assert final["eval/diversity_real"] > 0 and 0 <= final["eval/fill_real_shape_acc"] <= 1
    assert (run / "text_encoder.pt").is_file() and list((run / "samples").glob("captions_*.png"))
    (tmp_path / "caps.txt").write_text("a large blue square at the bottom\n")
    out = tmp_path / "out"
    res = run_cli(["gantrain.cli.sample", str(run), "--text", "a small red circle at the top left", "--text",
                   "a glorp disc", "--captions-file", str(tmp_path / "caps.txt"), "--num-per-text", "2",
                   "--interpolate", "a red circle", "a blue square", "--steps", "3", "--out", str(out), "--device", "cpu"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "glorp" in res.stderr
    prompts = json.loads((out / "prompts.json").read_text())
    assert prompts["000-a-small-red-circle-at-the-top-left"] == "a small red circle at the top left"
    assert (out / "002-a-large-blue-square-at-the-bottom" / "00001.png").is_file() and (out / "interpolation.png").is_file()
    res = run_cli(["gantrain.cli.sample", str(run), "--num", "3", "--out", str(tmp_path / "plain"), "--device", "cpu"], tmp_path)
    assert res.returncode == 0 and len(list((tmp_path / "plain").glob("*.png"))) == 3


def test_an_embedding_averages_num_captions_captions_of_its_image(tmp_path):
    """The official numCaption: 4 captions of the image drawn independently from the item key, the batch's own
    caption first, their embeddings averaged (for the wrong caption: 4 captions of the mismatching image)."""
    from gantrain.data.captions import caption_set

    data = shapes(tmp_path)
    batch = data.split("train").batch(torch.arange(8), torch.Generator().manual_seed(0))
    tables = {"train": torch.randn(96, 5, 12), "test": torch.randn(24, 5, 12)}
    torch.save(tables, tmp_path / "emb.pt")
    model, _ = make_model(tmp_path, text_encoder="precomputed", text_encoder_path=str(tmp_path / "emb.pt"), text_dim=12,
                          num_captions=4)
    caps = caption_set(batch["caption"], batch["key"], 4, 5)
    assert caps.shape == (8, 4) and torch.equal(caps[:, 0], batch["caption"])
    assert torch.equal(caps, caption_set(batch["caption"], batch["key"], 4, 5))  # a function of the keys only
    want = tables["train"][batch["index"][:, None], caps].mean(1)
    assert torch.allclose(model.text.embed_batch(batch), want)
    wrong = caption_set(batch["wrong_caption"], batch["key"], 4, 5, wrong=True)
    assert torch.allclose(model.text.embed_batch(batch, "wrong_"), tables["train"][batch["wrong_index"][:, None], wrong].mean(1))
    learned, _ = make_model(tmp_path, num_captions=4)
    T, tokens = learned.nets["T"], data.split("train").tokens
    with torch.no_grad():
        each = torch.stack([T(tokens[batch["index"], caps[:, j]]) for j in range(4)], 1)
    assert torch.allclose(learned.text.embed_batch(batch), each.mean(1), atol=1e-5)
    one, _ = make_model(tmp_path)  # the preset's 1: the batch's caption, as before
    assert torch.equal(one.text.embed_batch(batch), one.nets["T"](batch["tokens"]))


def test_fill_ratio_reads_the_shape_of_real_images():
    """Square ~1, disc ~pi/4, triangle ~1/2 on the rendered shapes (large, 64 px); an empty image reads 0."""
    attrs = np.array([[c, s, 1, 0] for s in range(3) for c in range(7)])
    images = render(attrs, 64, np.random.default_rng(0)).float().div(127.5).sub(1)
    fill = fill_ratio(images).view(3, 7).mean(1)
    assert abs(fill[0] - torch.pi / 4) < 0.05 and fill[1] > 0.95 and abs(fill[2] - 0.5) < 0.06
    assert fill_ratio(-torch.ones(1, 3, 8, 8)).item() == 0.0
    shape = torch.from_numpy(attrs[:, 1])
    out = fill_scores(images, shape, images, shape, ["circle", "square", "triangle"])
    assert out["fill_shape_acc"] == out["fill_real_shape_acc"] == 1.0 and out["fill_square"] == out["fill_real_square"]


def test_fill_reading_of_real_images_survives_small_noise():
    """Half-covered edge pixels of the rendered shapes sit at ~0.47 of full scale; the object threshold must not sit
    next to them, or noise of a few per cent of full scale (invisible) flips edges and the reading measures noise.
    At 32 px, the preset's size, noise of 3 % keeps the reading of real images within 0.03 of the clean one."""
    rng = np.random.default_rng(0)
    attrs = np.stack([rng.integers(len(values), size=600) for values in ATTRIBUTES.values()], 1)
    images = render(attrs, 32, rng).float().div(127.5).sub(1)
    shape, names = torch.from_numpy(attrs[:, list(ATTRIBUTES).index("shape")]), list(SHAPES)
    noisy = (images + 0.06 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    clean = fill_scores(images, shape, images, shape, names)["fill_shape_acc"]
    assert clean > 0.95
    assert fill_scores(noisy, shape, images, shape, names)["fill_shape_acc"] > clean - 0.03


@pytest.mark.parametrize("upsample, transposed, resized", [("transposed", 4, 0), ("resize", 1, 3), ("resize_last", 3, 1)])
def test_generator_upsampling_by_transposed_or_resize_convs(upsample, transposed, resized):
    """`model.g_upsample`: the 1x1 -> 4x4 projection stays a transposed conv; each later x2 is a 4x4 stride-2
    transposed conv or nearest x2 + 3x3 conv (`resize` every one, `resize_last` the output layer), same sizes out."""
    G = TextConditionedGenerator(10, 6, 4, 3, 32, 8, "batch", residual=False, upsample=upsample)
    kinds = [type(m) for m in G.net]
    assert kinds.count(nn.ConvTranspose2d) == transposed and kinds.count(nn.Upsample) == resized
    convs = [m for m in G.net if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [c.out_channels for c in convs] == [32, 16, 8, 3]
    assert G(torch.randn(2, 10), torch.randn(2, 6)).shape == (2, 3, 32, 32)


def test_a_misspelt_upsampling_fails_in_one_line():
    with pytest.raises(GantrainError, match="model.g_upsample.*transposed, resize, resize_last"):
        validate_config(compose_cfg(["model=gan_cls", "data=shapes", "model.g_upsample=bilinear"]))


def test_shapes_preset_draws_with_resize_convs_for_48_epochs_and_the_default_keeps_the_official_g():
    """The preset's measured run (configs/preset/gan_cls_shapes.yaml); without data=shapes the official nets."""
    preset = compose_cfg(["model=gan_cls", "data=shapes"])
    assert (preset.model.g_upsample, preset.model.lambda_ms, preset.trainer.max_epochs) == ("resize", 0.05, 48)
    official = compose_cfg(["model=gan_cls", "data=cub"])
    assert (official.model.g_upsample, official.model.lambda_ms, official.trainer.max_epochs) == ("transposed", 0.0, 600)
