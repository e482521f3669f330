"""Checkpoints in NED's layouts: strict loading, round trips, named problems, missing files."""

from __future__ import annotations

import pickle

import pytest
import torch

from ned_core.errors import CorruptModelError, InvalidOptionError, MissingModelError
from ned_core.ned import checkpoints
from ned_core.ned.checkpoints import load_deca_encoder
from ned_core.ned.deca_encoder import DecaCoarseEncoder
from ned_core.ned.manipulator_nets import Discriminator, Generator, MappingNetwork, StyleEncoder
from ned_core.ned.renderer_nets import Generator as RendererGenerator


@pytest.fixture(scope="module")
def manipulator_nets():
    torch.manual_seed(0)
    return Generator(), MappingNetwork(), StyleEncoder(), Discriminator()


@pytest.fixture
def ned_manipulator_file(tmp_path, manipulator_nets):
    """A manipulator checkpoint written the way NED's CheckpointIO writes it."""
    g, f, e, d = manipulator_nets
    path = tmp_path / "02_nets_finetuned.pth"
    torch.save({"generator": g.state_dict(), "mapping_network": f.state_dict(),
                "style_encoder": e.state_dict(), "discriminator": d.state_dict()}, path)
    return path


def test_ned_manipulator_file_loads_strictly(ned_manipulator_file, manipulator_nets):
    assert checkpoints.check_checkpoint(ned_manipulator_file, "manipulator") == []
    g, f, e = checkpoints.load_manipulator(ned_manipulator_file)
    assert not g.training
    x, z, y = torch.randn(1, 10, 51), torch.randn(1, 4), torch.tensor([4])
    with torch.no_grad():
        assert torch.equal(g(x, f(z, y)), manipulator_nets[0](x, manipulator_nets[1](z, y)))
        assert torch.equal(e(x), manipulator_nets[2](x))
    d = checkpoints.load_manipulator_discriminator(ned_manipulator_file)
    assert torch.equal(d.seq2[4].weight, manipulator_nets[3].seq2[4].weight)


def test_manipulator_round_trip(tmp_path, manipulator_nets):
    g, f, e, _ = manipulator_nets
    path = checkpoints.save_manipulator(tmp_path / "sub" / "10_nets.pth", g, f, e)
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"generator", "mapping_network", "style_encoder"}
    g2, f2, e2 = checkpoints.load_manipulator(path)
    for a, b in ((g, g2), (f, f2), (e, e2)):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not list(path.parent.glob(".*tmp*"))


def test_problems_are_named(tmp_path, manipulator_nets):
    g, f, e, _ = manipulator_nets
    gen = dict(g.state_dict())
    del gen["seq1.0.weight"]
    gen["seq2.4.weight"] = torch.zeros(52, 1024)
    gen["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"generator": gen, "mapping_network": f.state_dict()}, path)
    problems = checkpoints.check_checkpoint(path, "manipulator")
    assert "generator: missing tensor seq1.0.weight (512x67)" in problems
    assert "generator: seq2.4.weight has shape 52x1024, expected 51x1024" in problems
    assert "generator: unexpected tensor extra.weight" in problems
    assert "missing entry 'style_encoder'" in problems
    assert len(problems) == 4
    with pytest.raises(CorruptModelError, match="seq1.0.weight") as err:
        checkpoints.load_manipulator(path)
    assert err.value.path == str(path)


def test_missing_and_unreadable_files(tmp_path):
    missing = tmp_path / "manipulator_checkpoints" / "02_nets_finetuned.pth"
    with pytest.raises(MissingModelError) as err:
        checkpoints.load_manipulator(missing)
    assert str(missing) in err.value.message and "github.com/foivospar/NED" in err.value.message
    problem = checkpoints.check_checkpoint(missing, "manipulator")[0]
    assert problem.startswith("NED manipulator checkpoint not found")
    with pytest.raises(MissingModelError, match="renderer"):
        checkpoints.load_renderer(tmp_path / "20_net_G.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert "cannot be read" in checkpoints.check_checkpoint(garbage, "renderer")[0]
    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps({"generator": print}, protocol=2))
    assert "cannot be read" in checkpoints.check_checkpoint(code, "manipulator")[0]  # weights_only refuses
    with pytest.raises(InvalidOptionError):
        checkpoints.check_checkpoint(garbage, "vocoder")


def test_renderer_round_trip_keeps_neds_duplicated_keys(tmp_path):
    torch.manual_seed(0)
    g = RendererGenerator()
    path = checkpoints.save_renderer(tmp_path / "20_net_G.pth", g)
    state = torch.load(path, weights_only=True)
    assert len(state) == 337 and "model_res_img.0.resnetblock_sequential.1.weight" in state
    assert checkpoints.check_checkpoint(path, "renderer") == []
    loaded = checkpoints.load_renderer(path)
    assert torch.equal(loaded.model_final_img[1].weight, g.model_final_img[1].weight)
    assert not loaded.training
    del state["model_down_img.13.conv_block.5.bias"]
    assert checkpoints.state_dict_problems(loaded, state) == [
        "missing tensor model_down_img.13.conv_block.5.bias (512)"]


def test_renderer_discriminator_file(tmp_path):
    from ned_core.ned.renderer_nets import MultiscaleDiscriminator

    d = MultiscaleDiscriminator()
    path = checkpoints.save_renderer(tmp_path / "15_net_D.pth", d)
    assert checkpoints.check_checkpoint(path, "renderer_discriminator") == []
    assert checkpoints.check_checkpoint(path, "renderer")  # a D file is not a G file
    loaded = checkpoints.load_renderer_discriminator(path)
    assert torch.equal(loaded.scale1_layer4[0].weight, d.scale1_layer4[0].weight)


def test_deca_model_file_loads_e_flame_strictly(tmp_path):
    enc = DecaCoarseEncoder()
    path = tmp_path / "deca_model.tar"
    torch.save({"E_flame": enc.state_dict(), "E_detail": {"x": torch.zeros(1)}, "D_detail": {}}, path)
    assert checkpoints.check_checkpoint(path, "deca") == []
    loaded = load_deca_encoder(path)
    assert not loaded.training
    assert torch.equal(loaded.layers[2].weight, enc.layers[2].weight)
    with pytest.raises(MissingModelError, match="DECA"):
        load_deca_encoder(tmp_path / "nope.tar")


def test_network_sizes_are_read_from_the_files_tensors():
    from ned_core.ned.renderer_nets import MultiscaleDiscriminator

    assert checkpoints.manipulator_config({})["generator"] == {
        "input_dim": 51, "style_dim": 16, "hidden_dim": 512, "lstm_dim": 512, "lstm_layers": 2}
    full = checkpoints.renderer_config(checkpoints.empty_network(RendererGenerator).state_dict())
    assert full == {"cond_nc": 9, "n_frames": 3, "output_nc": 3, "ngf": 64, "n_downsample": 3, "n_blocks": 9}
    tiny = RendererGenerator(ngf=4, n_downsample=2, n_blocks=3)
    assert checkpoints.renderer_config(tiny.state_dict())["n_blocks"] == 3
    d = MultiscaleDiscriminator(ndf=8, n_layers=2, num_D=3)
    assert checkpoints.discriminator_config(d.state_dict()) == {
        "cond_nc": 9, "image_nc": 3, "ndf": 8, "n_layers": 2, "num_D": 3}
    enc = checkpoints.empty_network(lambda: DecaCoarseEncoder(layers=(1, 2, 1, 1)))
    assert checkpoints.deca_config({"E_flame": enc.state_dict()}) == {"code_size": 236, "layers": (1, 2, 1, 1)}
