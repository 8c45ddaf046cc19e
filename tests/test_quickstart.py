import json

from risam.cli import main


def test_quickstart_writes_results_overlays_and_table(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["quickstart", "--out", str(out), "--images", "12"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "refshapes" and results["split"] == "val" and results["model"] == "risam_tiny"
    assert results["num_samples"] > 0 and 0.0 <= results["overall_iou"] <= 1.0
    assert "| Pr@50 |" in (out / "results.md").read_text()
    assert 0.0 < results["sentence_free_baseline"] < 1.0 and "grounding_gap" in results
    assert set(results["by_type"]) <= {"attribute", "position", "ordinal", "relation"} and results["by_type"]
    panels = sorted((out / "overlays").glob("*_sent*.png"))
    assert 0 < len(panels) <= 8
    assert (out / "run" / "checkpoints" / "last.safetensors").is_file()
    assert results["checkpoint"].endswith("last.safetensors")
    assert "overall IoU on RefShapes val" in capsys.readouterr().out
