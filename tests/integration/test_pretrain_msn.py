"""`evalbench pretrain msn` (a tiny ViT), then `evalbench run --encoder msn` exactly as written; exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.adapters.msn import build_backbone
from evalbench.adapters.options.msn import MSNOptions
from evalbench.cli import main
from evalbench.specs.fields import parse
from tests.conftest import ENCODERS, Env
from tests.integration.pretrain_helpers import assert_resume_is_exact, pretrain_method

SETS = {
    "options.num_layers": 1, "options.hidden_dim": 32, "options.num_heads": 2, "options.mlp_dim": 64,
    "options.hidden": 64, "options.projection": 16, "options.prototypes": 16, "options.focal_views": 2,
    "options.norm_clips": 8, "options.mixup_bank": 16, "train.checkpoint_every": 1,
}  # fmt: skip
TINY = ["--preset", "smoke", "--workers", "0", "--batch-size", "4"]
for key, value in SETS.items():
    TINY += ["--set", f"{key}={value}"]


def msn(env: Env, *args: str) -> int:
    return pretrain_method("msn", env, *TINY, *args)


def test_pretrain_then_run_by_the_family_name(penv: Env, tmp_path: Path, capsys, caplog) -> None:
    shutil.copy(ENCODERS / "msn.yaml", penv.encoders / "msn.yaml")
    assert msn(penv, "--data", str(tmp_path / "clips"), "--steps", "2") == 0
    assert "registered encoder 'msn-smoke'" in capsys.readouterr().out
    with caplog.at_level("WARNING"):
        assert main(penv.cli("run", "--encoder", "msn", "--tasks", "synth_detect", "--seeds", "1")) == 0
    assert "scoring 'msn-smoke'" in caplog.text  # says which checkpoint the plain name scored
    assert (penv.results / "msn-smoke" / "synth_detect.linear.json").is_file()
    # the exported file is the target backbone alone, with the keys of the adapter's own network
    state, meta = load_checkpoint(penv.encoders / "checkpoints" / "pretrain" / "msn-smoke" / "encoder.pt")
    options = parse(MSNOptions, meta["options"], "encoder.pt")
    assert set(state) == set(build_backbone(options).state_dict())
    assert not any(k.startswith(("projector", "prototypes", "online", "target")) for k in state)
    assert (options.hidden_dim, options.window_frames, options.min_tail_frames) == (32, 64, 40)


def test_resume_is_exact(penv: Env, tmp_path: Path) -> None:
    assert_resume_is_exact(msn, penv, str(tmp_path / "clips"))  # bit-identical on CPU
