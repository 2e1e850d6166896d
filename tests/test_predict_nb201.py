"""NAS-Bench-201 networks as deployed: the kept-graph rule and the fast feature assembly."""

from __future__ import annotations

import random

import pytest
import torch

from gapp_tui.errors import BadInput
from gapp_tui.predict import nb201

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]


def test_operations_whose_result_cannot_reach_the_output_are_removed():
    # node 1 = conv3x3(x) feeds only node 2 through `none`: dead; node 2 = zeros, its conv1x1 still runs
    edges = nb201.kept_edges(nb201.parse_arch(ARCHS[2]))
    assert edges == [(2, 3, "nor_conv_1x1")]
    cell = nb201.Cell(ARCHS[2], 16)
    assert list(cell.ops) == ["e23"]


def test_a_cell_whose_output_gets_only_none_is_a_constant_network():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|"
    assert nb201.cell_key(arch) == "const"
    net = nb201.build_network(arch)
    assert isinstance(net, nb201.ConstantNetwork)


def test_network_runs_and_has_the_published_shape():
    net = nb201.build_network(ARCHS[0])
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    # 15 cells, 2 reductions: the chain the predictor sums over
    feats = nb201.NB201Features()
    blocks = feats.blocks(ARCHS[0])
    assert sum(c for _, c in blocks) == 1 + 15 + 2 + 1


@pytest.mark.parametrize("arch", ARCHS + [random.Random(0).choice(ARCHS)])
def test_fast_cell_features_equal_the_extractors(arch):
    for stage in range(3):
        a, b = nb201.extract_cell_graph(arch, stage), nb201.compose_cell_graph(arch, stage)
        assert sorted(map(tuple, a.data.x.tolist())) == sorted(map(tuple, b.data.x.tolist()))
        assert torch.allclose(a.data.totals, b.data.totals)
        ka, kb = a.data.op_kind.tolist(), b.data.op_kind.tolist()
        pairs = lambda g, k: sorted((k[s], k[d]) for s, d in g.data.edge_index.t().tolist())  # noqa: E731
        assert pairs(a, ka) == pairs(b, kb)


def test_malformed_arch_is_bad_input():
    with pytest.raises(BadInput, match="malformed"):
        nb201.parse_arch("|nor_conv_3x3~0|")
    with pytest.raises(BadInput, match="bad edge"):
        nb201.parse_arch("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
