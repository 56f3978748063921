"""Issue 13.3: a weights file that does not load into the named encoder says which encoder it fits.

Candidates are the specs of the same adapter; ``--checkpoint NAME=PATH,...`` gives files to several encoders.

The miniature "official" BYOL-A v1 file is the state dict of ``byola-v1-512``'s network with its seeded random
weights (built as :func:`evalbench.bench.extract.random_weights` builds it: the spec without its checkpoint).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from evalbench.adapters import checkpoints
from evalbench.adapters.checkpoints import KeyMismatch, load_into, matching, probing, read_checkpoint
from evalbench.embed import encoder as embed_encoder
from evalbench.embed.encoder import checkpoint_hint, checkpoint_matches, load_encoder_model
from evalbench.errors import EvalbenchError
from evalbench.specs.checkpoint_flag import apply_checkpoint_flag, parse_checkpoint_flag
from evalbench.specs.encoder import parse_encoder_file, same_adapter_specs, with_checkpoint
from tests.conftest import ENCODERS

CPU = torch.device("cpu")
V1_FILE = "AudioNTT2020-BYOLA-64x96d512.pth"


def spec(name: str, folder: Path = ENCODERS):
    return parse_encoder_file(folder / f"{name}.yaml")


def random_state(name: str, folder: Path = ENCODERS) -> dict[str, torch.Tensor]:
    """The state dict of ``name``'s network with the seeded random weights of its options."""
    model = load_encoder_model(dataclasses.replace(spec(name, folder), checkpoint=None), CPU).model
    return {k: v.clone() for k, v in model.weights_module.state_dict().items()}


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature official BYOL-A v1 512-d file: a bare state dict of the ``byola-v1-512`` network."""
    path = tmp_path_factory.mktemp("weights") / V1_FILE
    torch.save(random_state("byola-v1-512"), path)
    return path


# --- parsing --checkpoint -------------------------------------------------------------------------------------------

ONE = [["byola"]]
TWO = [["byola-v1-512"], ["msn", "msn-smoke"]]


@pytest.mark.parametrize(
    "value",
    ["a.pth", r"C:\w\a.pth", r"C:\w\x=1\a.pth", "run=3.pth", "dir/a,b.pth", "./byola=x.pth", "weights/byola=x.pth"],
)
def test_one_encoder_plain_paths_are_taken_whole(value: str) -> None:
    assert parse_checkpoint_flag(value, ONE) == value


def test_named_form_splits_on_the_first_equals_after_an_encoder_name() -> None:
    assert parse_checkpoint_flag("byola=a.pth", ONE) == {0: ("a.pth", "byola=a.pth")}
    assert parse_checkpoint_flag("byola=run=3.pth", ONE) == {0: ("run=3.pth", "byola=run=3.pth")}
    assert parse_checkpoint_flag(r"byola=C:\w\a.pth", ONE) == {0: (r"C:\w\a.pth", r"byola=C:\w\a.pth")}
    assert parse_checkpoint_flag("byola-v1-512=a.pth,msn=b.pt", TWO) == {
        0: ("a.pth", "byola-v1-512=a.pth"),
        1: ("b.pt", "msn=b.pt"),
    }
    # A comma not followed by an encoder name belongs to the path; an alias (the resolved name) counts as a name.
    assert parse_checkpoint_flag(r"byola-v1-512=C:\a,b=2.pth,msn-smoke=x=y.pt", TWO) == {
        0: (r"C:\a,b=2.pth", r"byola-v1-512=C:\a,b=2.pth"),
        1: ("x=y.pt", "msn-smoke=x=y.pt"),
    }
    assert parse_checkpoint_flag("msn=b.pt", TWO) == {1: ("b.pt", "msn=b.pt")}  # the other keeps its own weights


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a.pth", "--checkpoint needs exactly one --encoder, got 2 (byola-v1-512, msn); with several encoders name"),
        (r"C:\w\a.pth", "--checkpoint needs exactly one --encoder, got 2"),
        ("a.pth,msn=b.pt", "mixes a plain path with ENCODER=PATH parts"),
        ("clmr=c.pt,msn=b.pt", "'clmr' is not among the encoders of --encoder (byola-v1-512, msn)"),
        ("msn=a.pt,msn-smoke=b.pt", "encoder 'msn' is given two weights files"),
        ("msn=,byola-v1-512=a.pth", "'msn=' gives no path"),
    ],
)
def test_checkpoint_flag_mistakes_are_named(value: str, message: str) -> None:
    with pytest.raises(EvalbenchError, match=r"^--checkpoint") as err:
        parse_checkpoint_flag(value, TWO)
    assert message in str(err.value)


def test_apply_checkpoint_flag_to_several_encoders(tmp_path: Path, v1_file: Path) -> None:
    specs = [spec("byola-v1-512"), spec("logmel")]
    given = ["byola-v1-512", "logmel"]
    odd = tmp_path / "odd,name=1.pth"  # a comma and '=' in the file name
    shutil.copy(v1_file, odd)

    out = apply_checkpoint_flag(specs, given, f"byola-v1-512={odd}")
    assert out[0].name.startswith("byola-v1-512@odd_name_1-") and out[0].checkpoint.path == str(odd.resolve())
    assert out[0].checkpoint.source == f"--checkpoint byola-v1-512={odd}"
    assert out[1] == specs[1]  # not named: its own weights (none)

    one = apply_checkpoint_flag(specs[:1], given[:1], str(odd))  # the plain form with one encoder still works
    assert one[0].name == out[0].name and one[0].checkpoint.source == f"--checkpoint {odd}"

    with pytest.raises(EvalbenchError, match=r"--checkpoint logmel=.*nope\.pt: file .* not found"):
        apply_checkpoint_flag(specs, given, f"byola-v1-512={odd},logmel={tmp_path / 'nope.pt'}")
    with pytest.raises(EvalbenchError, match=r"'clmr' is not among the encoders of --encoder \(byola-v1-512, logmel\)"):
        apply_checkpoint_flag(specs, given, f"byola-v1-512={v1_file},clmr={v1_file}")
    with pytest.raises(EvalbenchError, match=r"'b\.pt' needs its encoder: ENCODER=PATH"):
        apply_checkpoint_flag(specs, given, f"byola-v1-512={v1_file},b.pt")
    with pytest.raises(
        EvalbenchError,
        match=r"--checkpoint: file .*clmr=.* not found; .*; 'clmr' is not the encoder of --encoder \(byola-v1-512\)",
    ):
        apply_checkpoint_flag(specs[:1], given[:1], f"clmr={v1_file}")


# --- the probe: checks without loading, one read ----------------------------------------------------------------------


def test_probing_checks_everything_but_loads_nothing_and_reads_nothing(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "w.pth")
    state, meta = read_checkpoint(tmp_path / "w.pth")
    assert set(state) == {"module.weight", "module.bias"}  # read_checkpoint strips nothing
    (tmp_path / "w.pth").unlink()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with probing(tmp_path / "w.pth", state, meta):
        assert load_into(dst, tmp_path / "w.pth", "toy") == {}  # prefix stripped, keys checked, file not read
        with pytest.raises(KeyMismatch) as err:
            load_into(nn.Linear(4, 2), tmp_path / "w.pth", "toy")
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # nothing loaded
    assert err.value.brief == "1 mis-shaped key, e.g. weight (2, 3) (expected (2, 4))"
    assert "wrong shapes: weight (2, 3) (expected (2, 4))" in str(err.value)  # the full list is still there
    with pytest.raises(EvalbenchError, match="checkpoint file not found"):  # outside the block: the file again
        load_into(dst, tmp_path / "w.pth", "toy")


def test_matching_reads_the_file_once_weights_only(v1_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = torch.load

    def load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "load", load)
    matches, candidates = checkpoint_matches(with_checkpoint(spec("byola"), str(v1_file)), v1_file, [ENCODERS])
    assert calls == [True]
    assert matches == ["byola-v1-512"]
    assert {"byola-v1-512", "byola-v1-1024", "byola-v1-2048", "byola-random"} <= set(candidates)
    assert "byola" not in candidates  # the encoder that failed is not its own alternative


def test_specs_differing_only_in_ignored_options_share_one_check(
    v1_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "encoders"
    folder.mkdir()
    for name, seed in (("twin-a", 1), ("twin-b", 2)):  # byola-v1-512's network, other seeds: one network to build
        data = yaml.safe_load((ENCODERS / "byola-v1-512.yaml").read_text())
        data.update(name=name, options={**data["options"], "seed": seed})
        del data["checkpoint"]
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(ENCODERS / "byola.yaml", folder)  # the failing spec's own folder is searched too
    built = []
    real = embed_encoder.build_unloaded
    monkeypatch.setattr(
        embed_encoder, "build_unloaded", lambda adapter, opts: built.append(opts) or real(adapter, opts)
    )
    wrong = with_checkpoint(spec("byola", folder), str(v1_file))
    matches, candidates = checkpoint_matches(wrong, v1_file, [folder])
    assert candidates == ["twin-a", "twin-b"] and matches == ["twin-a", "twin-b"] and len(built) == 1


# --- the hint ---------------------------------------------------------------------------------------------------------


def test_wrong_family_names_the_matching_spec(v1_file: Path) -> None:
    wrong = with_checkpoint(spec("byola"), str(v1_file))
    with pytest.raises(EvalbenchError) as err:
        load_encoder_model(wrong, CPU, encoders_dir=[ENCODERS])
    msg = str(err.value)
    assert msg.startswith(f"--checkpoint: {v1_file.resolve()} does not load into encoder 'byola' (")
    assert msg.endswith("this file matches `byola-v1-512`; use `--encoder byola-v1-512`")
    assert "mis-shaped key" in msg and "\n" not in msg and len(msg) < 400  # short: counts and one example each
    assert isinstance(err.value.__cause__, KeyMismatch)  # the full list stays on the chained error
    right = with_checkpoint(spec("byola-v1-512"), str(v1_file))
    enc = load_encoder_model(right, CPU, encoders_dir=[ENCODERS])
    expected = torch.load(v1_file, weights_only=True)
    assert all(torch.equal(v, expected[k]) for k, v in enc.model.weights_module.state_dict().items())


def test_named_checkpoint_hint_says_how_to_name_it(v1_file: Path) -> None:
    (wrong,) = apply_checkpoint_flag([spec("byola")], ["byola"], f"byola={v1_file}")
    with pytest.raises(EvalbenchError) as err:
        load_encoder_model(wrong, CPU, encoders_dir=[ENCODERS])
    msg = str(err.value)
    assert msg.startswith(f"--checkpoint byola={v1_file}: ")
    assert msg.endswith(f"use `--encoder byola-v1-512` and `--checkpoint byola-v1-512={v1_file}`")


def test_no_match_lists_the_candidates_with_the_short_reason(tmp_path: Path) -> None:
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "other.pth")
    wrong = with_checkpoint(spec("byola-v1-512"), str(tmp_path / "other.pth"))
    with pytest.raises(EvalbenchError) as err:
        load_encoder_model(wrong, CPU, encoders_dir=[ENCODERS])
    msg = str(err.value)
    assert "does not load into encoder 'byola-v1-512' (" in msg and "missing keys, e.g. " in msg
    assert "2 unexpected keys, e.g. bias" in msg
    assert "it matches none of " in msg and "byola-v1-1024" in msg and "byola-v1-2048" in msg and msg.endswith("either")
    assert "byola-v1-512," not in msg.split("it matches none of ")[1]


def test_unreadable_file_keeps_its_own_message(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EvalbenchError, match="cannot load as a weights-only torch checkpoint") as err:
        load_encoder_model(with_checkpoint(spec("byola"), str(tmp_path / "junk.pth")), CPU, encoders_dir=[ENCODERS])
    assert "matches" not in str(err.value)


def test_a_specs_own_checkpoint_that_fails_gets_the_hint(v1_file: Path, tmp_path: Path) -> None:
    """A user folder's ``byola.yaml`` whose file is really the v1 one; its folder joins the default overlay."""
    folder = tmp_path / "mine"
    folder.mkdir()
    data = yaml.safe_load((ENCODERS / "byola.yaml").read_text())
    data["checkpoint"] = {"path": str(v1_file)}
    (folder / "byola.yaml").write_text(yaml.safe_dump(data))
    mine = spec("byola", folder)
    assert "byola-v1-512" in [s.name for s in same_adapter_specs(mine)]  # default overlay + the spec's folder
    with pytest.raises(EvalbenchError) as err:
        load_encoder_model(mine, CPU)
    msg = str(err.value)
    assert msg.startswith(f"{folder / 'byola.yaml'}: checkpoint.path: {v1_file} does not load into encoder 'byola'")
    assert msg.endswith("this file matches `byola-v1-512`; use `--encoder byola-v1-512`")


def test_later_folders_override_and_the_best_match_comes_first(v1_file: Path, tmp_path: Path) -> None:
    """Same file > own weights > random twin or no checkpoint; a user spec of the same name hides the built-in one."""
    folder = tmp_path / "user"
    folder.mkdir()
    base = yaml.safe_load((ENCODERS / "byola-v1-512.yaml").read_text())
    specs = {
        "aaa-nockpt": {k: v for k, v in base.items() if k != "checkpoint"},
        "mine-v1": {**base, "checkpoint": {"path": str(v1_file)}},  # its own checkpoint is this very file
        "byola-v1-1024": {**base, "description": "overrides the built-in 1024-d spec with a 512-d one"},
    }
    for name, data in specs.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**data, "name": name}))
    wrong = with_checkpoint(spec("byola"), str(v1_file))
    matches, _ = checkpoint_matches(wrong, v1_file, [ENCODERS, folder])
    assert matches == ["mine-v1", "byola-v1-1024", "byola-v1-512", "aaa-nockpt"]
    hint = checkpoint_hint(wrong, v1_file, [ENCODERS, folder])
    assert hint == (
        "this file matches `mine-v1` (also `byola-v1-1024`, `byola-v1-512`, `aaa-nockpt`); use `--encoder mine-v1`"
    )
    assert checkpoint_matches(wrong, v1_file, [folder, ENCODERS])[0] == ["mine-v1", "byola-v1-512", "aaa-nockpt"]


def test_family_rules_apply_msn_backbone_prefix(tmp_path: Path) -> None:
    """Each candidate is checked by its own loader: MSN strips ``backbone.``, and its options must agree."""
    folder = tmp_path / "encoders"
    folder.mkdir()
    base = yaml.safe_load((ENCODERS / "msn-smoke.yaml").read_text())
    base = {k: base[k] for k in ("adapter", "description", "pooling", "options")}
    for name, layers in (("tiny2", 2), ("tiny3", 3)):
        opts = {**base["options"], "num_layers": layers, "hidden_dim": 48, "mlp_dim": 96}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**base, "name": name, "options": opts}))
    state = {f"backbone.{k}": v for k, v in random_state("tiny2", folder).items()}
    torch.save(state, tmp_path / "msn.pth")
    wrong = with_checkpoint(spec("tiny3", folder), str(tmp_path / "msn.pth"))
    assert checkpoint_matches(wrong, tmp_path / "msn.pth", [folder]) == (["tiny2"], ["tiny2"])
    tiny2 = dataclasses.replace(spec("tiny2", folder), checkpoint=None)
    v1 = dataclasses.replace(spec("byola-v1-512"), checkpoint=None)
    verdicts = matching(
        tmp_path / "msn.pth",
        {"msn": lambda: load_encoder_model(tiny2, CPU).model, "byola": lambda: load_encoder_model(v1, CPU).model},
    )
    assert verdicts["msn"] is None and "unexpected keys, e.g. backbone." in verdicts["byola"]
