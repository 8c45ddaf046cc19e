"""``risam ablate``: the variant table, its errors, and two variants trained and evaluated alike on RefShapes."""

import json

import pytest

from risam import create_model, load_weights
from risam.ablation import VARIANTS, list_variants, parse_variants, variant_config
from risam.cli import main
from risam.config import ConfigError
from risam.config.experiment import load_config
from risam.data.refshapes import generate_refshapes


def test_variant_names_and_their_errors(tmp_path, capsys):
    assert parse_variants("full, conv_fusion") == ["full", "conv_fusion"]
    for name in ("full", "no_fe", "conv_fusion", "sam_decoder", "te_fusion", "sdf_fusion", "bcm_fusion"):
        assert name in list_variants()
    assert VARIANTS["no_attn_mask"].overrides == {"head.tau": 0.0}
    assert VARIANTS["full"].results["RefCOCO val"].iou == 76.20
    assert VARIANTS["sam_decoder"].results["RefCOCO+ val"].precision == (73.14, 71.10, 67.55, 59.94, 33.85)
    assert VARIANTS["sam_directly"].results["G-Ref val (G)"].iou == 46.23

    assert main(["ablate", "--config", "refshapes_tiny", "--variants", "full,no_such_variant"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("risam ablate: error: unknown variant(s) ['no_such_variant']")
    assert "valid variants: full, no_fe, conv_fusion" in err

    # A config that already trains its text encoder: "unfrozen_text" would be "full" again.
    trained_text = load_config("refshapes_tiny", ["model.overrides={text_encoder.freeze: false}"])
    with pytest.raises(ConfigError, match=r"'unfrozen_text'.*same risam_tiny as 'full'"):
        variant_config(trained_text, "unfrozen_text", "out")
    # Paper-sized timm backbones on the paper models, tiny random ones on risam_tiny; the config's overrides stay.
    vit = variant_config(load_config("refcoco"), "vit_b_imagenet", tmp_path / "vit")
    assert vit.model.overrides["image_encoder.tap_indices"] == [5, 8, 11]
    assert "image_encoder.timm_kwargs" not in vit.model.overrides
    assert vit.train.output_dir == str(tmp_path / "vit")
    tiny_vit = variant_config(trained_text, "vit_b_imagenet", "out")
    assert tiny_vit.model.overrides["image_encoder.timm_kwargs"]["embed_dim"] == 64
    assert tiny_vit.model.overrides["text_encoder.freeze"] is False


def test_list_shows_trainable_parameters(capsys):
    assert main(["ablate", "--config", "refshapes_tiny", "--set", "model.overrides={}", "--list"]) == 0
    out = capsys.readouterr().out
    full = sum(p.numel() for p in create_model("risam_tiny").parameters() if p.requires_grad)
    assert f"| full | Tab. 2 #4 | 76.20 | {full:,} | - |" in out
    assert "| sam_directly | Tab. 11 | 57.23 |" in out


def test_ablate_trains_and_evaluates_two_variants_into_one_table(tmp_path, capsys):
    data = tmp_path / "data"
    generate_refshapes(data, num_images=8, seed=2)
    out = tmp_path / "ablation"
    settings = [
        f"data.root={data}",
        # The frozen tiny encoders ship in the package, so the evaluator rebuilds exactly what was trained.
        "model.overrides={}",
        "data.num_workers=0",
        "batch.global_groups=2",
        "optim.epochs=1",
        "train.max_steps=2",
        "train.progress=false",
        "eval.images_per_batch=4",
    ]
    args = ["ablate", "--config", "refshapes_tiny", "--variants", "full,conv_fusion", "--out", str(out)]
    assert main(args + [part for setting in settings for part in ("--set", setting)]) == 0
    table = json.loads((out / "ablation.json").read_text())
    assert (table["model"], table["dataset"], table["split"], table["seed"]) == ("risam_tiny", "refshapes", "val", 0)
    assert table["budget"] == {"epochs": 1, "max_steps": 2, "global_groups": 2}
    assert [row["name"] for row in table["variants"]] == ["full", "conv_fusion"]
    markdown = (out / "ablation.md").read_text()
    assert "| Variant | Paper | Pr@50 | Pr@60 | Pr@70 | Pr@80 | Pr@90 | IoU | Paper IoU (RefCOCO val) |" in markdown
    for row in table["variants"]:
        run = out / row["name"]
        config, _ = load_weights(run / "checkpoints" / "last.safetensors")
        assert config.head.fusion == ("conv" if row["name"] == "conv_fusion" else "mutual_attention")
        model = create_model(checkpoint=run / "checkpoints" / "last.safetensors")
        assert row["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
        results = row["results"]
        assert results == json.loads((run / "results_val.json").read_text())
        assert results["num_samples"] > 0 and list(results["precision"]) == ["0.5", "0.6", "0.7", "0.8", "0.9"]
        assert row["train_seconds"] > 0 and row["eval_seconds"] > 0
        paper = row["paper_results"]["RefCOCO val"]
        cells = [f"{100 * results['precision'][key]:.2f}" for key in results["precision"]]
        cells += [f"{100 * results['overall_iou']:.2f}", f"{paper['iou']:.2f}", f"{row['trainable_params']:,}"]
        assert f"| {row['name']} | {row['paper']} | " + " | ".join(cells) + " |" in markdown
    assert table["variants"][1]["paper_results"]["RefCOCO val"]["iou"] == 71.27
    assert markdown.strip() in capsys.readouterr().out
