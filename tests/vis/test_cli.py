"""`imagemachines layers | visualize | models` from the command line."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.vis import read_recipe

runner = CliRunner()


def test_layers_table():
    result = runner.invoke(app, ["layers", "mobilenet_v2"])
    assert result.exit_code == 0, result.output
    assert "features.14" in result.output and "160" in result.output and "7×7" in result.output
    assert "features.14.conv" not in result.output
    full = runner.invoke(app, ["layers", "mobilenet_v2", "--all"])
    assert "features.14.conv.0.0" in full.output


def test_models_lists_default():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "mobilenet_v2  (default)" in result.output and "inception_v3" in result.output


def test_visualize_writes_png_json_and_contact_sheet(tmp_path):
    result = runner.invoke(app, ["visualize", "mobilenet_v2", "--weights", "none", "--layer", "features.6",
                                 "--channels", "0-2", "--size", "48", "--steps", "3", "--seed", "4",
                                 "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == sorted([f"mobilenet_v2-random-features-6_{c}-lucid-48px-3steps-seed4.png" for c in range(3)]
                          + ["mobilenet_v2-random-features-6-lucid-48px-3steps-seed4-sheet.png"])
    recipe = read_recipe(tmp_path / "mobilenet_v2-random-features-6_1-lucid-48px-3steps-seed4.png")
    sidecar = json.loads((tmp_path / "mobilenet_v2-random-features-6_1-lucid-48px-3steps-seed4.json").read_text())
    assert recipe == sidecar and recipe["seed"] == 4 and recipe["unit"] == "features.6:1"


def test_a_rerun_with_other_settings_keeps_the_earlier_render(tmp_path):
    base = ["visualize", "mobilenet_v2", "--weights", "none", "--layer", "features.2", "--channel", "1",
            "--device", "cpu", "--out", str(tmp_path), "--size", "32"]
    for steps in ("2", "3"):
        result = runner.invoke(app, [*base, "--steps", steps])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "mobilenet_v2-random-features-2_1-lucid-32px-2steps-seed0.png",
        "mobilenet_v2-random-features-2_1-lucid-32px-3steps-seed0.png"]


def test_renders_of_other_weights_get_their_own_files(tmp_path):
    import torch
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v2

    torch.manual_seed(0)
    state = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in mobilenet_v2().state_dict().items()}, str(state))
    out = tmp_path / "out"
    base = ["visualize", "mobilenet_v2", "--layer", "features.2", "--channel", "1", "--size", "32", "--steps", "2",
            "--device", "cpu", "--out", str(out)]
    for weights in ("none", str(state)):
        result = runner.invoke(app, [*base, "--weights", weights])
        assert result.exit_code == 0, result.output
    [from_file] = [p.name for p in out.glob("mobilenet_v2-file-*.png")]
    assert sorted(p.name for p in out.glob("*.png")) == sorted([
        "mobilenet_v2-random-features-2_1-lucid-32px-2steps-seed0.png", from_file])
    assert read_recipe(out / from_file)["weights_id"].startswith("file:" + from_file.split("-")[2])


def test_the_weights_part_of_a_file_name():
    from imagemachines.vis.cli import weights_tag

    assert weights_tag("MobileNet_V2_Weights.IMAGENET1K_V1:mobilenet_v2-b0353104.pth") == ""  # the default
    assert weights_tag("MobileNet_V2_Weights.IMAGENET1K_V2:mobilenet_v2-7ebf99e0.pth") == "IMAGENET1K_V2"
    assert weights_tag("random-init") == "random"
    assert weights_tag("file:0123456789abcdef") == "file-01234567"
    assert weights_tag("run:fedcba9876543210") == "run-fedcba98"


def test_visualize_class_by_name_needs_class_names(tmp_path):
    result = runner.invoke(app, ["visualize", "mobilenet_v2", "--weights", "none", "--class", "goldfish",
                                 "--out", str(tmp_path)])
    assert "no class 'goldfish'" in str(result.exception)


def test_cli_errors_exit_2_with_a_message():
    proc = subprocess.run(
        [sys.executable, "-m", "imagemachines", "visualize", "mobilenet_v2", "--weights", "none",
         "--layer", "features.99", "--channel", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "no layer 'features.99'" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "imagemachines", "visualize", "mobilenet_v2", "--weights", "none",
         "--layer", "features.6", "--channels", "30-40"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "0 to 31" in proc.stderr
