"""torch.export ingest: each registered ATen op becomes standard torch and computes what the program computes."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeconv.errors import CheckpointError, ConfigError, UnsupportedLayerError
from spikeconv.ingest import activation_sites, check_supported
from spikeconv.ingest.exported import aten_op, available_aten_ops, ingest_exported, load_exported, register_aten_op


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return bn


def _cases() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, padding=1)
    return {
        "conv-bn-relu": nn.Sequential(conv, _bn(4), nn.ReLU()),
        "conv1d": nn.Sequential(nn.Flatten(2), nn.Conv1d(2, 3, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 30, 5)),
        "strided-grouped-conv": nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, dilation=2, groups=2, bias=False), nn.ReLU()),
        "relu6-hardtanh-clamp": nn.Sequential(_Lambda(F.relu6), nn.ReLU6(), nn.Hardtanh(0.0, 2.0),
                                              _Lambda(lambda x: torch.clamp(x, 0, 1.5)),
                                              _Lambda(lambda x: torch.clamp(x, min=0))),  # fmt: skip
        "max-avg-adaptive-pool": nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2, stride=1), nn.AdaptiveAvgPool2d(2),
                                               nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # fmt: skip
        "mean-sum": _Lambda(lambda x: x.mean((2, 3)) + x.sum(dim=-1).sum(-1)),
        "residual-add-sub-cat": _Lambda(lambda x: torch.cat([F.relu(x) + x * 0.5, x - F.relu(x) / 4.0, -x], dim=1)),
        "add-alpha": _Lambda(lambda x: torch.add(x, F.relu(x), alpha=2.0) - torch.sub(x, x.relu(), alpha=0.5)),
        "view-reshape-flatten": _Lambda(lambda x: torch.flatten(x.view(x.size(0), -1).reshape(x.shape[0], 2, -1), 1)),
        "dropout-clone-contiguous": nn.Sequential(nn.Dropout(0.3), _Lambda(lambda x: x.clone().contiguous()), nn.Dropout2d(0.2)),
        "unsqueeze-squeeze-permute-transpose": _Lambda(lambda x: x.unsqueeze(2).squeeze(2).permute(0, 2, 3, 1).transpose(1, 2)),
        "linear": nn.Sequential(nn.Flatten(), nn.Linear(2 * 8 * 8, 7), nn.ReLU(), nn.Linear(7, 3, bias=False)),
        "in-place-relu-relu6-add": _InPlaceBlock(),
        "layer-norm-gelu-softmax-select": _Lambda(lambda x: F.softmax(F.gelu(F.layer_norm(x, (8,))), dim=-1)[:, 0]),
        "products-bmm-unflatten": _Lambda(lambda x: torch.bmm(x.flatten(1, 2), x.flatten(1, 2).transpose(1, 2)).unflatten(2, (2, 8))
                                          * x.flatten(1, 2)[:, :, :2].unsqueeze(-1)),  # fmt: skip
    }


class _InPlaceBlock(nn.Module):
    """What torchvision's blocks do: ``ReLU(inplace=True)``, ``ReLU6(inplace=True)`` and ``out += identity``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.relu, self.relu6 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(inplace=True), nn.ReLU6(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv(x))
        out += x
        return self.relu6(out) + out  # reads ``out`` after the in-place ReLU6: it sees the capped values


CASES = _cases()
EXAMPLE = (torch.rand(1, 2, 8, 8),)


def _exported(model: nn.Module, decompose: bool) -> torch.export.ExportedProgram:
    program = torch.export.export(model.eval(), EXAMPLE)
    return program.run_decompositions() if decompose else program


@pytest.mark.parametrize("decompose", [False, True], ids=["training-ir", "core-aten"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_ingested_graph_matches_the_model_at_any_batch(name, decompose):
    model = CASES[name]
    gm = ingest_exported(_exported(model, decompose))
    assert gm.meta["spikeconv_stage"] == "ann"
    check_supported(gm)  # only standard torch remains
    assert not any(str(getattr(n.target, "namespace", "")) == "aten" for n in gm.graph.nodes)
    x = torch.randn(5, 2, 8, 8)  # exported with a batch of 1
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)


def test_every_registered_op_is_exercised_by_a_case():
    seen = set()
    for model in CASES.values():
        for decompose in (False, True):
            seen |= {n.target.overloadpacket.__name__ for n in _exported(model, decompose).graph.nodes
                     if hasattr(n.target, "overloadpacket")}  # fmt: skip
    # aliases and no-ops that other models or export modes emit (each is a one-line rewrite shared with a tested op)
    # attention (matmul of 4-D heads, scaled_dot_product_attention) has core-ATen forms ingest refuses:
    # tests/ingest/test_transformer_ingest.py
    assert set(available_aten_ops()) - seen == {"_unsafe_view", "alias", "alpha_dropout", "clamp_min", "concat", "contiguous",
                                                "detach", "native_dropout", "matmul", "scaled_dot_product_attention"}  # fmt: skip


@pytest.mark.parametrize("name", available_aten_ops())
def test_every_registered_op_has_a_note_and_a_documented_rewrite(name):
    op = aten_op(name)
    assert op.note and "|" not in op.note and op.rewrite.__doc__


def test_a_duplicate_registration_is_refused():
    with pytest.raises(ConfigError, match="already registered"):
        register_aten_op("conv2d", note="again")(lambda site: None)


def test_sites_and_bn_folding_for_a_residual_maxpool_net():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.pool = nn.Conv2d(2, 4, 3, padding=1), _bn(4), nn.MaxPool2d(2)
            self.conv2, self.fc = nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4, 3)

        def forward(self, x):
            x = self.pool(F.relu(self.bn1(self.conv1(x))))
            x = F.relu(x + self.conv2(x))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    gm = ingest_exported(torch.export.export(Net().eval(), EXAMPLE))
    assert len(activation_sites(gm)) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gm.modules())  # folded into conv1


def test_a_program_with_a_dynamic_batch_is_fixed_at_import_and_still_runs_any_batch():
    model = CASES[sorted(CASES)[0]].eval()
    program = torch.export.export(model, (torch.rand(3, 2, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=512)},))
    gm = ingest_exported(program)
    assert gm.meta["spikeconv_export_check"]["probe_shape"][0] == 2  # the probe batch it was exported again for
    for batch in (1, 7):
        x = torch.randn(batch, 2, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)


def test_unsupported_ops_are_all_listed_in_one_error():
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Sigmoid(), nn.SiLU(), nn.MaxPool2d(2))
    with pytest.raises(UnsupportedLayerError) as error:
        ingest_exported(torch.export.export(model.eval(), EXAMPLE))
    message = str(error.value)
    assert "2 node(s)" in message and "aten.sigmoid" in message and "aten.silu" in message and "\n" not in message


def test_ops_on_the_batch_dimension_are_refused():
    model = _Lambda(lambda x: x.reshape(1, -1) * 2)  # folds the batch into the features
    with pytest.raises(UnsupportedLayerError, match="batch"):
        ingest_exported(torch.export.export(model.eval(), (torch.rand(2, 2, 8, 8),)))


def _saved(program) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def test_pt2_bytes_and_files_load_and_a_pickled_part_is_refused(tmp_path):
    data = _saved(torch.export.export(CASES["conv-bn-relu"].eval(), EXAMPLE))
    path = tmp_path / "model.pt2"
    path.write_bytes(data)
    x = torch.rand(3, 2, 8, 8)
    torch.testing.assert_close(ingest_exported(path)(x), ingest_exported(data)(x))
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(tmp_path / "pickled.pt2", "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name.endswith("_weights_config.json"):
                config = json.loads(content)
                next(iter(config["config"].values()))["use_pickle"] = True
                content = json.dumps(config).encode()
            target.writestr(name, content)
    with pytest.raises(CheckpointError, match="pickled Python objects.*--trust-pickle"):
        load_exported(tmp_path / "pickled.pt2")
    with pytest.raises(CheckpointError, match="not a torch.export archive"):
        load_exported(b"PK not really")


def test_docs_list_every_registered_op():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "own_model.md").read_text()
    assert [name for name in available_aten_ops() if f"`aten.{name}`" not in text] == []
