"""Encoder adapters in the user's own file (``adapter: ./file.py:Class``) or module (``module:Class``).

Covers loading from a YAML, option parsing, the one-line errors, the cache
identity (the file's content, not its location), and the documented example
in ``docs/examples/`` together with its copy in ``encoders/README.md``.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.external import ExternalAdapterError, check_reference, load_external
from evalbench.embed.encoder import load_encoder_model
from evalbench.errors import EvalbenchError, SpecError
from evalbench.specs.encoder import EncoderSpec, parse_encoder_file, same_adapter_specs
from evalbench.specs.fields import parse
from tests.adapters.helpers import clips
from tests.conftest import REPO

DOCS = REPO / "docs" / "examples"

ADAPTER = textwrap.dedent(
    '''
    """Test adapter: per-frame RMS energy and zero-crossing rate."""

    from __future__ import annotations

    from dataclasses import dataclass

    import torch

    from evalbench.adapters.base import Encoder, Frames


    @dataclass(frozen=True)
    class FrameOptions:
        frame: int = 200


    class RmsZcr(Encoder):
        VERSION = 3
        Options = FrameOptions
        sample_rate = 8000
        embed_dim = 2

        def __init__(self, options: FrameOptions) -> None:
            super().__init__()
            self.frame = options.frame
            self.hop_seconds = options.frame / self.sample_rate

        @classmethod
        def from_options(cls, options, checkpoint):
            return cls(options)

        def encode(self, waveforms, lengths):
            n = max(waveforms.shape[1] // self.frame, 1)
            x = torch.nn.functional.pad(waveforms, (0, self.frame))[:, : n * self.frame].reshape(len(waveforms), n, -1)
            rms = x.pow(2).mean(-1).sqrt()
            zcr = (x[..., 1:] * x[..., :-1] < 0).float().mean(-1)
            mask = torch.arange(n)[None, :] < (lengths // self.frame).clamp(min=1)[:, None]
            return Frames(torch.stack([rms, zcr], -1), mask)


    class PlainOptions(RmsZcr):
        Options = None

        @classmethod
        def from_options(cls, options, checkpoint):
            assert isinstance(options, dict)
            return cls(FrameOptions(**options))


    class NotAnEncoder:
        pass


    def make_encoder():
        return RmsZcr(FrameOptions())
    '''
)


def write_spec(folder: Path, adapter: str, options: str = "{frame: 200}", name: str = "myenc") -> Path:
    """An encoder YAML ``folder/<name>.yaml`` naming ``adapter``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nadapter: '{adapter}'\ndescription: test\npooling: mean\noptions: {options}\n")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder holding ``rms_zcr.py`` (the test adapter) and ``myenc.yaml`` naming it."""
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "rms_zcr.py").write_text(ADAPTER)
    write_spec(tmp_path / "enc", "./rms_zcr.py:RmsZcr")
    return tmp_path / "enc"


def direct(wav: torch.Tensor, lengths: torch.Tensor, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """RMS energy and zero-crossing rate of each clip's frames, computed with numpy: ``(values, mask)``."""
    x = wav.numpy().astype(np.float64)
    n = max(x.shape[1] // frame, 1)
    x = np.pad(x, ((0, 0), (0, frame)))[:, : n * frame].reshape(len(x), n, frame)
    rms = np.sqrt((x**2).mean(-1))
    zcr = (x[..., 1:] * x[..., :-1] < 0).mean(-1)
    mask = np.arange(n)[None, :] < np.maximum(lengths.numpy() // frame, 1)[:, None]
    return np.stack([rms, zcr], -1), mask


def check_encodes(spec: EncoderSpec, frame: int) -> None:
    """Shape, finiteness, agreement with :func:`direct` within 1e-6, and batch invariance."""
    model = load_encoder_model(spec, torch.device("cpu")).model
    wav, lengths = clips(model.sample_rate, [1.0, 0.45, 1.3, 0.01])
    with torch.inference_mode():
        frames = model.encode(wav, lengths)
        alone = model.encode(wav[1:2, : lengths[1]], lengths[1:2])
    b, t, d = frames.embeddings.shape
    assert (b, d) == (4, model.embed_dim) and t == wav.shape[1] // frame
    assert frames.embeddings.dtype == torch.float32 and torch.isfinite(frames.embeddings).all()
    values, mask = direct(wav, lengths, frame)
    np.testing.assert_array_equal(frames.mask.numpy(), mask)
    np.testing.assert_allclose(frames.embeddings.numpy(), values, rtol=0, atol=1e-6)
    k = int(alone.mask.sum())
    torch.testing.assert_close(alone.embeddings[0, :k], frames.embeddings[1, :k], rtol=0, atol=1e-6)


def fingerprint(yaml: Path) -> str:
    return load_encoder_model(parse_encoder_file(yaml), torch.device("cpu")).fingerprint


def test_a_file_adapter_loads_from_its_yaml_and_encodes(folder: Path) -> None:
    spec = parse_encoder_file(folder / "myenc.yaml")
    options = spec.typed_options()
    assert type(options).__name__ == "FrameOptions" and options.frame == 200
    assert spec.adapter_class().__name__ == "RmsZcr"
    assert spec.adapter_version()["version"] == 3 and len(spec.adapter_version()["sha256"]) == 64
    check_encodes(spec, 200)


def test_options_are_parsed_into_the_options_dataclass(folder: Path) -> None:
    spec = parse_encoder_file(write_spec(folder, "./rms_zcr.py:RmsZcr", "{frame: 100}"))
    assert spec.typed_options().frame == 100
    check_encodes(spec, 100)
    for options, key, problem in (
        ("{frame: 100, fram: 3}", "options.fram", "did you mean 'frame'"),
        ("{frame: 1.5}", "options.frame", "expected an integer"),
    ):
        yaml = write_spec(folder, "./rms_zcr.py:RmsZcr", options)
        with pytest.raises(SpecError) as exc:
            parse_encoder_file(yaml)
        assert str(exc.value).startswith(f"{yaml}: {key}: ") and problem in str(exc.value)


def test_without_an_options_dataclass_the_options_are_a_plain_dict(folder: Path) -> None:
    spec = parse_encoder_file(write_spec(folder, "./rms_zcr.py:PlainOptions", "{frame: 100}"))
    assert spec.typed_options() == {"frame": 100}
    check_encodes(spec, 100)


def test_absolute_paths_and_modules_name_the_same_adapter(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = parse_encoder_file(write_spec(folder, f"{folder / 'rms_zcr.py'}:RmsZcr", name="absolute"))
    assert absolute.adapter_class() is parse_encoder_file(folder / "myenc.yaml").adapter_class()  # loaded once
    module_dir = folder.parent / "site"
    module_dir.mkdir()
    (module_dir / "rms_zcr_module.py").write_text(ADAPTER)
    monkeypatch.syspath_prepend(str(module_dir))
    spec = parse_encoder_file(write_spec(folder.parent / "other", "rms_zcr_module:RmsZcr"))
    loaded = spec.external_adapter()
    assert loaded is not None and loaded.source == (module_dir / "rms_zcr_module.py").resolve()
    assert loaded.sha256 == absolute.adapter_version()["sha256"]  # same bytes, same hash
    check_encodes(spec, 200)


BROKEN = "class RmsZcr:\n    pass\nraise RuntimeError('no GPU here\\nsecond line')\n"
NEVER_RUN = "raise RuntimeError('must not run')\nclass Present:\n    pass\n"
ENCODER = "evalbench.adapters.base.Encoder"


@pytest.mark.parametrize(
    ("adapter", "source", "expected"),
    [
        ("./missing.py:RmsZcr", None, "file {dir}/missing.py not found (relative to the YAML's folder"),
        ("./rms_zcr.py:RmsZc", None, "{dir}/rms_zcr.py defines no 'RmsZc'; did you mean 'RmsZcr'?"),
        (
            "./rms_zcr.py:NotAnEncoder",
            None,
            f"in {{dir}}/rms_zcr.py is a class with bases object, not a subclass of {ENCODER}",
        ),
        ("./rms_zcr.py:make_encoder", None, f"in {{dir}}/rms_zcr.py is a function, not a subclass of {ENCODER}"),
        ("./broken.py:RmsZcr", BROKEN, "importing {dir}/broken.py failed: RuntimeError: no GPU here"),
        ("./syntax.py:RmsZcr", "class RmsZcr(:\n", "{dir}/syntax.py line 1: SyntaxError: "),
        ("./other.py:Missing", NEVER_RUN, "{dir}/other.py defines no 'Missing'; classes in it: Present"),
        ("no_such_module_for_evalbench:Cls", None, "cannot import module 'no_such_module_for_evalbench': no module"),
        ("./rms_zcr.txt:RmsZcr", None, "'./rms_zcr.txt' is neither a .py file nor a module name"),
        ("./rms_zcr.py:", None, "'' after the last colon is not a class name"),
    ],
)
def test_unusable_adapters_are_one_line_errors_naming_the_yaml_and_value(
    folder: Path, adapter: str, source: str | None, expected: str
) -> None:
    if source is not None:
        (folder / adapter.split(":")[0]).write_text(source)
    yaml = write_spec(folder, adapter)
    with pytest.raises(EvalbenchError) as exc:
        parse_encoder_file(yaml)
    message = str(exc.value)
    assert isinstance(exc.value, SpecError) and "\n" not in message
    assert message.startswith(f"{yaml}: adapter: '{adapter}': "), message
    assert expected.format(dir=folder.resolve()) in message, message


def test_options_that_are_not_a_dataclass_are_refused(folder: Path) -> None:
    (folder / "plain.py").write_text(ADAPTER + "\n\nclass Bad(RmsZcr):\n    class Options:\n        frame = 1\n")
    with pytest.raises(ExternalAdapterError, match=r"Bad\.Options is not a dataclass"):
        parse_encoder_file(write_spec(folder, "./plain.py:Bad"))


def test_registered_names_are_unchanged_and_unknown_ones_mention_the_file_route() -> None:
    def spec(adapter: str) -> EncoderSpec:
        return parse(EncoderSpec, {"name": "x", "adapter": adapter, "description": "x"}, "x.yaml")

    with pytest.raises(SpecError, match=r"^x.yaml: adapter: unknown encoder adapter 'bylo'; did you mean 'byola'\?$"):
        spec("bylo")
    with pytest.raises(SpecError, match=r"known: .*byola.*; or name your own class as 'my_adapter.py:ClassName'"):
        spec("zzzzzz")
    assert spec("logmel").external_adapter() is None and spec("logmel").adapter_key() == "logmel"
    assert check_reference(r"C:\adapters\mine.py:Mine").target == r"C:\adapters\mine.py"


def test_the_fingerprint_follows_the_file_content_not_its_location(folder: Path, tmp_path: Path) -> None:
    first = fingerprint(folder / "myenc.yaml")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert fingerprint(copy / "myenc.yaml") == first  # identical copy elsewhere: same identity, cache reused
    assert fingerprint(write_spec(tmp_path / "abs", f"{folder / 'rms_zcr.py'}:RmsZcr")) == first
    (copy / "rms_zcr.py").write_text(ADAPTER + "\n# an edit that changes no output still changes the identity\n")
    edited = fingerprint(copy / "myenc.yaml")
    assert edited != first
    assert fingerprint(folder / "myenc.yaml") == first  # the original is untouched
    spec = parse_encoder_file(copy / "myenc.yaml")
    assert spec.config_for_fingerprint()["adapter"] == "external:RmsZcr"


def test_specs_of_one_adapter_are_those_naming_the_same_file(folder: Path, tmp_path: Path) -> None:
    write_spec(folder, "./rms_zcr.py:RmsZcr", name="sibling")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "rms_zcr.py").write_text(ADAPTER)
    write_spec(other, "./rms_zcr.py:RmsZcr", name="stranger")  # same text, different file
    spec = parse_encoder_file(folder / "myenc.yaml")
    assert [s.name for s in same_adapter_specs(spec, [folder, other])] == ["sibling"]


def test_load_external_without_a_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(ADAPTER)
    loaded = load_external("a.py:RmsZcr", tmp_path, "somewhere")
    assert loaded.options_class is not None and loaded.parse_options({}, "somewhere").frame == 200
    assert loaded.identity() == {"class": "RmsZcr", "version": 3, "sha256": loaded.sha256}


def test_the_documented_example_runs() -> None:
    spec = parse_encoder_file(DOCS / "energy.yaml")
    assert spec.adapter == "./energy_adapter.py:EnergyEncoder" and spec.typed_options().frame == 400
    check_encodes(spec, 400)


def test_the_readme_shows_the_documented_example_verbatim() -> None:
    readme = (REPO / "encoders" / "README.md").read_text()

    def blocks(lang: str) -> list[str]:  # fenced blocks, indented inside the list item
        return [textwrap.dedent(b) for b in re.findall(rf"```{lang}\n(.*?)```", readme, flags=re.S)]

    assert blocks("python") == [(DOCS / "energy_adapter.py").read_text()]
    assert (DOCS / "energy.yaml").read_text() in blocks("yaml")
