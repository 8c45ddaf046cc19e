"""``risam ablate``: the variant table, its errors, and two variants trained and evaluated alike on RefShapes."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from risam import create_model, get_config, load_weights
from risam.ablation import CLAIMS, VARIANTS, Claim, list_variants, parse_variants, variant_config
from risam.ablation.figure import FULL_COLOUR, draw_ablation
from risam.ablation.runner import _seeded, _settings
from risam.ablation.summary import ablation_markdown, judge, spread
from risam.cli import main
from risam.config import ConfigError
from risam.data.refshapes import generate_refshapes
from risam.io.config_files import load_config

CONVERGED_RUNS = Path(__file__).parent.parent / "docs" / "results" / "ablation_refshapes_tiny_converged_runs"


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


def _ablate(out, data, *extra, table_only=False):
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
        *extra,
    ]
    args = ["ablate", "--config", "refshapes_tiny", "--variants", "full,conv_fusion", "--out", str(out)]
    args += ["--seeds", "0,1", *(["--table-only"] if table_only else [])]
    return main(args + [part for setting in settings for part in ("--set", setting)])


def test_ablate_trains_and_evaluates_two_variants_over_two_seeds_into_one_table(tmp_path, capsys):
    data = tmp_path / "data"
    generate_refshapes(data, num_images=8, seed=2)
    out = tmp_path / "ablation"
    assert _ablate(out, data) == 0
    table = json.loads((out / "ablation.json").read_text())
    assert (table["model"], table["dataset"], table["split"], table["seeds"]) == (
        "risam_tiny",
        "refshapes",
        "val",
        [0, 1],
    )
    assert table["budget"] == {"epochs": 1, "max_steps": 2, "global_groups": 2}
    assert [row["name"] for row in table["variants"]] == ["full", "conv_fusion"]
    assert 0 < table["sentence_free_baseline"] < 1
    markdown = (out / "ablation.md").read_text()
    assert (
        "| Variant | Paper | Seeds | IoU | IoU min-max | mIoU | Pr@50 | Pr@60 | Pr@70 | Pr@80 | Pr@90 | Gap |"
        in markdown
    )
    for row in table["variants"]:
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        ious = []
        for run in row["runs"]:
            folder = out / row["name"] / f"seed_{run['seed']}"
            config, _ = load_weights(folder / "checkpoints" / "last.safetensors")
            assert config.head.fusion == ("conv" if row["name"] == "conv_fusion" else "mutual_attention")
            assert run["results"] == json.loads((folder / "results_val.json").read_text())
            assert run == json.loads((folder / "run.json").read_text())
            assert run["train_seconds"] > 0 and run["eval_seconds"] > 0
            ious.append(run["results"]["overall_iou"])
        model = create_model(checkpoint=out / row["name"] / "seed_0" / "checkpoints" / "last.safetensors")
        assert row["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert row["tau"] == model.config.head.tau == 0.35
        iou = row["summary"]["overall_iou"]
        assert (iou["values"], iou["min"], iou["max"]) == (ious, min(ious), max(ious))
        assert iou["mean"] == pytest.approx(sum(ious) / 2) and iou["sd"] == pytest.approx(
            abs(ious[0] - ious[1]) / 2**0.5
        )
        assert set(row["summary"]) == {"overall_iou", "mean_iou", "grounding_gap"} | {
            f"precision@{key}" for key in ("0.5", "0.6", "0.7", "0.8", "0.9")
        }
        paper = row["paper_results"]["RefCOCO val"]
        cell = f"{100 * iou['mean']:.2f} ± {100 * iou['sd']:.2f} ({paper['iou']:.2f}) | "
        cell += f"{100 * iou['min']:.2f}-{100 * iou['max']:.2f}"
        assert f" | {row['paper']} | 2 | {cell} | " in markdown
    pr50 = table["variants"][1]["summary"]["precision@0.5"]  # conv_fusion: the paper's Pr@50 is 79.30
    assert f" | {100 * pr50['mean']:.2f} ± {100 * pr50['sd']:.2f} (79.30) | " in markdown
    seed_weights = [
        load_weights(out / "full" / f"seed_{seed}" / "checkpoints" / "last.safetensors")[1] for seed in (0, 1)
    ]
    assert any(not torch.equal(seed_weights[0][key], seed_weights[1][key]) for key in seed_weights[0])  # seeds reach it
    claims = {claim["claim"]: claim for claim in table["claims"]}
    assert claims["Feature Enhancement helps"]["verdict"] == "not measured"
    fusion = claims["Mutual-Aware Attention beats the other fusions"]
    assert fusion["verdict"].endswith("(1 of 4 rivals measured)") and [r["name"] for r in fusion["rivals"]] == [
        "conv_fusion"
    ]
    full_ious, conv_ious = (row["summary"]["overall_iou"]["values"] for row in table["variants"])
    ahead = sum(a > b for a, b in zip(full_ious, conv_ious, strict=True))
    assert fusion["rivals"][0]["paired"] == [ahead, 2]
    assert f"; ahead at {ahead} of 2 seeds)" in markdown
    with Image.open(out / "ablation.png") as figure:
        assert figure.format == "PNG" and figure.width >= 800
    assert markdown.strip() in capsys.readouterr().out

    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("last.safetensors")}
    assert _ablate(out, data) == 0  # every run recorded: nothing trains again
    assert {path: path.stat().st_mtime_ns for path in out.rglob("last.safetensors")} == stamps
    assert json.loads((out / "ablation.json").read_text()) == table
    (out / "ablation.json").unlink()
    shutil.rmtree(out / "conv_fusion" / "seed_1")
    stamps.pop(out / "conv_fusion" / "seed_1" / "checkpoints" / "last.safetensors")
    assert _ablate(out, data, table_only=True) == 0  # the table of what is recorded; nothing trains
    assert {path: path.stat().st_mtime_ns for path in out.rglob("last.safetensors")} == stamps
    shrunk = json.loads((out / "ablation.json").read_text())
    assert [len(row["runs"]) for row in shrunk["variants"]] == [2, 1]
    assert shrunk["variants"][0] == table["variants"][0]
    assert _ablate(out, data, "optim.lr=1e-3") == 2
    assert "records a run with other settings" in capsys.readouterr().err


def test_claims_are_judged_by_the_seed_spread():
    def summary(*values):
        return {"overall_iou": spread(values)}

    claim = Claim("FE helps", "Tab. 2", ("no_fe",))
    assert judge(claim, {"full": summary(0.50, 0.52, 0.51), "no_fe": summary(0.40, 0.45, 0.49)})["verdict"] == "agrees"
    assert judge(claim, {"full": summary(0.50, 0.52), "no_fe": summary(0.51, 0.60)})["verdict"] == "can't tell"
    lost = judge(claim, {"full": summary(0.40, 0.42), "no_fe": summary(0.50, 0.60)})
    assert lost["verdict"] == "disagrees" and lost["rivals"][0]["difference"] == pytest.approx(-14.0)
    assert judge(claim, {"full": summary(0.50), "no_fe": summary(0.40)})["verdict"] == "can't tell"
    assert judge(claim, {"full": summary(0.50, 0.52)})["verdict"] == "not measured"
    two = Claim("2 blocks are best", "Tab. 4", ("ma_blocks_1", "ma_blocks_3"))
    mixed = {"full": summary(0.5, 0.52), "ma_blocks_1": summary(0.3, 0.32), "ma_blocks_3": summary(0.55, 0.6)}
    assert judge(two, mixed)["verdict"] == "disagrees"
    assert spread([0.2, 0.4])["sd"] == pytest.approx(0.1414213, rel=1e-5)
    paired = {"full": {"overall_iou": spread([0.40, 0.41, 0.45], [0, 1, 2])}}
    paired["no_fe"] = {"overall_iou": spread([0.44, 0.39], [0, 2])}  # seed 1 not run: seeds 0 and 2 pair
    rival = judge(claim, paired)["rivals"][0]
    assert rival["outcome"] == "within the spread" and rival["paired"] == [1, 2]
    assert "paired" not in lost["rivals"][0]  # summaries without seeds: nothing to pair


def test_converged_recipe_differs_from_the_ablation_recipe_in_its_budget_and_matches_its_recorded_run(tmp_path):
    short, long = load_config("refshapes_tiny_ablation"), load_config("refshapes_tiny_ablation_converged")
    # The recorded run of `full` at seed 0 (on 3,000 images) is found by a later `risam ablate` only while the
    # recipe's settings equal those it records.
    record = json.loads((CONVERGED_RUNS / "full" / "seed_0" / "run.json").read_text())
    assert record["settings"] == _settings(_seeded(variant_config(long, "full", tmp_path), 0), "val")
    assert record["results"]["overall_iou"] >= 0.60 and record["results"]["num_samples"] == 2100
    budget = {"optim": ("epochs", "milestones"), "train": ("output_dir", "eval_every_epochs")}
    for section, fields in long.to_dict().items():
        other = short.to_dict()[section]
        assert {k: v for k, v in fields.items() if k not in budget.get(section, ())} == {
            k: v for k, v in other.items() if k not in budget.get(section, ())
        }, section


def test_each_claim_tests_one_factor_or_names_the_others():
    claims = {claim.text: claim for claim in CLAIMS}
    for claim in CLAIMS:
        assert claim.baseline in VARIANTS and set(claim.rivals) <= VARIANTS.keys()
    # The paper's fusion verdict mixes fusion type and mask; beside it, the mask held on and held off.
    assert "without the attention mask" in claims["Mutual-Aware Attention beats the other fusions"].differences
    on = claims["MA beats SDF and BCM, the mask held equal (on)"]
    off = claims["MA beats SDF and BCM, the mask held equal (off)"]
    assert (on.baseline, on.rivals, on.differences) == ("full", ("sdf_fusion_masked", "bcm_fusion_masked"), "")
    assert (off.baseline, off.rivals, off.differences) == ("no_attn_mask", ("sdf_fusion", "bcm_fusion"), "")
    for claim in (on, off):
        heads = [get_config("risam_tiny", VARIANTS[name].overrides).head for name in (claim.baseline, *claim.rivals)]
        masked = {head.tau > 0 and (head.fusion == "mutual_attention" or head.masked_fusion) for head in heads}
        assert masked == {claim is on}, claim.text
    # The decoder claim without the mask: its rivals differ from no_attn_mask in the decoder's keys only.
    decoders = claims[
        "the Mutual-Aware Mask Decoder beats SAM's decoder and its own ablation, the mask held equal (off)"
    ]
    assert decoders.baseline == "no_attn_mask" and "34% more trainable parameters" in decoders.differences
    base = get_config("risam_tiny", VARIANTS["no_attn_mask"].overrides).to_dict()["head"]
    changed = {}
    for name in decoders.rivals:
        head = get_config("risam_tiny", VARIANTS[name].overrides).to_dict()["head"]
        changed[name] = {key for key in head.keys() | base.keys() if head.get(key) != base.get(key)}
    assert changed == {"sam_decoder_unmasked": {"decoder"}, "decoder_no_text_unmasked": {"decoder_text_guidance"}}

    def summary(*values):
        return {"overall_iou": spread(values, list(range(len(values))))}

    summaries = {"no_attn_mask": summary(0.44, 0.46), "sdf_fusion": summary(0.40, 0.41), "full": summary(0.5, 0.6)}
    verdict = judge(off, summaries)
    assert verdict["verdict"] == "agrees (1 of 2 rivals measured)" and verdict["baseline"] == "no_attn_mask"
    assert verdict["rivals"][0]["outcome"] == "no_attn_mask better beyond the spread"
    assert verdict["rivals"][0]["difference"] == pytest.approx(4.5) and verdict["rivals"][0]["paired"] == [2, 2]
    table = {
        "model": "risam_tiny",
        "dataset": "refshapes",
        "split": "val",
        "seeds": [0, 1],
        "budget": {"epochs": 5, "max_steps": None, "global_groups": 4},
        "variants": [],
        "claims": [verdict, judge(claims["RISAM beats SAM used directly"], summaries)],
    }
    markdown = ablation_markdown(table)
    assert "| no_attn_mask | agrees (1 of 2 rivals measured) | sdf_fusion +4.50 (no_attn_mask better" in markdown
    assert markdown.endswith(
        "| RISAM beats SAM used directly | Tab. 11 | full | not measured | - | no Feature "
        "Enhancement, no fusion, SAM's decoder |"
    )


def _figure_row(name: str, tau: float, ious: tuple[float, ...]) -> dict:
    return {
        "name": name,
        "paper": "Fig. 8",
        "tau": tau,
        "runs": [{}] * len(ious),
        "summary": {"overall_iou": spread(ious)},
    }


def _red_rows(path) -> list[int]:
    """The pixel rows of a PNG that hold ``full``'s colour."""
    red = tuple(int(FULL_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(path) as image:
        pixels = image.convert("RGB")
        return [y for y in range(pixels.height) if any(pixels.getpixel((x, y)) == red for x in range(pixels.width))]


def test_figure_draws_the_tau_sweep_below_the_bars(tmp_path):
    rows = [
        _figure_row("full", 0.35, (0.40, 0.42)),
        _figure_row("conv_fusion", 0.35, (0.38, 0.39)),
        _figure_row("no_attn_mask", 0.0, (0.41, 0.43)),
    ]
    budget = {"epochs": 5, "max_steps": None, "global_groups": 4}
    table = {"model": "risam_tiny", "dataset": "refshapes", "split": "val", "seeds": [0, 1], "budget": budget}
    table["variants"] = rows
    draw_ablation(table | {"sentence_free_baseline": 0.2}, tmp_path / "bars.png")
    swept = rows + [_figure_row(f"tau_{tau}", tau, (0.3 + tau / 10, 0.31 + tau / 10)) for tau in (0.1, 0.2, 0.3)]
    draw_ablation(table | {"variants": swept, "sentence_free_baseline": None}, tmp_path / "sweep.png")
    with Image.open(tmp_path / "bars.png") as bars, Image.open(tmp_path / "sweep.png") as sweep:
        assert sweep.width == bars.width and sweep.height > bars.height + 200  # a second panel below the bars
        split = bars.height - 40  # the sweep panel starts below the bar panel's height
    assert max(_red_rows(tmp_path / "bars.png")) < split
    assert max(_red_rows(tmp_path / "sweep.png")) > split  # full's point is marked on the curve
    draw_ablation(table | {"variants": swept[3:]}, tmp_path / "only_sweep.png")  # the tau points alone: one panel
    with Image.open(tmp_path / "only_sweep.png") as only, Image.open(tmp_path / "sweep.png") as sweep:
        assert only.height < sweep.height - 200
    assert not _red_rows(tmp_path / "only_sweep.png")
