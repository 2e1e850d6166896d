"""The one units module: b is a bit and B a byte everywhere, as tc and iperf write them."""

from __future__ import annotations

import pytest

from gapp_tui.errors import BadInput
from gapp_tui.units import (
    format_bandwidth,
    format_bytes,
    format_flops_rate,
    format_time,
    parse_bandwidth,
    parse_bytes,
    parse_duration,
    parse_flops_rate,
    parse_time,
)


@pytest.mark.parametrize("text, nbytes", [
    ("512MB", 512e6), ("512Mb", 64e6), ("1GiB", 2**30), ("4Gbit", 0.5e9), ("800kB", 8e5), ("8b", 1.0),
    ("2e9", 2e9), ("3 bytes", 3.0), (1024, 1024.0),
])
def test_sizes_parse_with_bits_lower_case_and_bytes_upper_case(text, nbytes):
    assert parse_bytes(text) == pytest.approx(nbytes)


def test_the_same_letters_mean_the_same_in_sizes_and_bandwidths():
    assert parse_bandwidth("12.5MB/s") == pytest.approx(parse_bytes("12.5MB"))
    assert parse_bandwidth("100Mb/s") == pytest.approx(parse_bytes("100Mb")) == pytest.approx(12.5e6)


@pytest.mark.parametrize("text", ["0MB", "-1GB", "12 parsecs", "lots", "", "1MBps"])
def test_a_bad_size_is_one_line_naming_the_value(text):
    with pytest.raises(BadInput) as exc:
        parse_bytes(text, "--memory")
    assert "\n" not in str(exc.value) and repr(text) in str(exc.value) and "--memory" in str(exc.value)


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("90s", 90), ("1.5h", 5400), ("2min", 120), ("600", 600),
                                           ("500ms", 0.5)])
def test_durations_read_m_as_minutes(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_short_times_refuse_an_ambiguous_m_and_need_a_unit():
    assert parse_time("2ms") == pytest.approx(2e-3) and parse_time("1min") == 60
    for bad in ("2m", "5", "-1ms"):
        with pytest.raises(BadInput):
            parse_time(bad)
    with pytest.raises(BadInput, match="must be positive"):
        parse_duration("0")


@pytest.mark.parametrize("text, rate", [("2GFLOP/s", 2e9), ("50 GFLOPs", 50e9), ("500MFLOPS", 5e8), ("20G", 20e9),
                                        ("1.5e9", 1.5e9)])
def test_flop_rates(text, rate):
    assert parse_flops_rate(text) == pytest.approx(rate)


def test_formatters_read_back():
    for value in (12.5e6, 125e6, 2.5e6):
        assert parse_bandwidth(format_bandwidth(value)) == pytest.approx(value, rel=1e-3)
    for value in (2e-3, 5e-4, 0.0, 1.5):
        assert parse_time(format_time(value)) == pytest.approx(value, rel=1e-3)
    for value in (2e9, 5e8, 1.25e12):
        assert parse_flops_rate(format_flops_rate(value)) == pytest.approx(value, rel=1e-2)
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(12) == "12 B"
