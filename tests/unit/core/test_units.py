"""Units: libvirt integers, human strings and tc's words, converted exactly."""
import pytest

from nvhooks.policy import units
from nvhooks.errors import UnitError


@pytest.mark.parametrize("text, bits", [
    (1250, 1250 * 8192),                 # libvirt: KiB/s
    ("1250", 1250 * 8192),
    ("10mbit", 10_000_000),
    ("1.5gbit", 1_500_000_000),
    ("500kbit", 500_000),
    ("2MiB/s", 2 * 1024 * 1024 * 8),
    ("2mib/s", 2 * 1024 * 1024 * 8),
    ("1kibit", 1024),
    ("10kbps", 80_000),                  # tc: kbps = kilobytes/s
    ("1mbps", 8_000_000),
    ("1KB/s", 8000),
    ("1B/s", 8),
    ("100Mbit/s", 100_000_000),
    (" 10 mbit ", 10_000_000),
    ("0.5mbit", 500_000),
])
def test_parse_rate(text, bits):
    assert units.parse_rate(text) == bits


@pytest.mark.parametrize("text, size", [
    (64, 65536), ("64", 65536), ("64k", 65536), ("64kb", 65536), ("64KiB", 65536),
    ("1m", 1048576), ("1mb", 1048576), ("1500b", 1500), ("1500bytes", 1500),
    ("1kbit", 128), ("1mbit", 131072), ("1.5k", 1536),
])
def test_parse_size(text, size):
    assert units.parse_size(text) == size


@pytest.mark.parametrize("value, needle", [
    (0, "greater than zero"), ("0", "greater than zero"), (-5, "greater than zero"),
    ("-5mbit", "greater than zero"), ("0mbit", "greater than zero"),
    ("10mbitz", "unknown rate unit 'mbitz'"), ("10m", "a size unit"),
    ("1.5", "whole number"), (1.5, "has no unit"), (True, "not a number"),
    ("abc", "cannot read"), ("1.1bit", "whole number of bit/s"),
    (f"{2 ** 70}gbit", "largest rate"), (None, "not a rate"),
])
def test_rate_errors_name_value_and_field(value, needle):
    with pytest.raises(UnitError) as err:
        units.parse_rate(value, "rules[0].inbound.average")
    assert needle in str(err.value)
    assert str(err.value).startswith("rules[0].inbound.average: ")


@pytest.mark.parametrize("value, needle", [
    ("64kbit/s", "unknown size unit"), ("10mbps", "a rate unit"), ("5g", None),
    ("0.1b", "whole number of bytes"),
])
def test_size_errors(value, needle):
    if needle is None:                   # 5g is 5 GiB: over the kernel's u32
        needle = "largest size"
    with pytest.raises(UnitError, match=needle):
        units.parse_size(value, "burst")


def test_format_round_trips():
    for bits in (8, 1000, 1_500_000_000, 10_000_000, 1_234_567, 8192 * 1250):
        assert units.parse_rate(units.format_rate(bits)) == bits
    for size in (1, 1500, 65536, 1048576, 3 * 1024 ** 3):
        assert units.parse_size(units.format_size(size)) == size


def test_readable_forms():
    assert units.format_rate(1_500_000_000) == "1.5gbit"
    assert units.format_rate(10_000_000) == "10mbit"
    assert units.format_rate(999) == "999bit"
    assert units.format_size(65536) == "64KiB"
    assert units.format_size(1500) == "1500B"


def test_kernel_bytes_and_tc_words():
    assert units.rate_bytes(10_000_000) == 1_250_000
    assert units.tc_rate_word(10_000_000) == "10000000bit"
    assert units.tc_size_word(65536) == "65536b"
    assert units.to_libvirt_rate(8192 * 1250) == 1250
