"""VLAN id sets."""
import pytest

from nvhooks.policy import vlanset
from nvhooks.errors import PolicyError


def test_parse_and_format():
    vids = vlanset.parse_vids("100,200-210, 5")
    assert vids == frozenset([5, 100] + list(range(200, 211)))
    assert vlanset.format_vids(vids) == "5,100,200-210"
    assert vlanset.parse_vids([10, "20-22", "30,31"]) == frozenset([10, 20, 21, 22, 30, 31])
    assert vlanset.parse_vids(7) == frozenset([7])
    assert vlanset.parse_vids(None) == frozenset()
    assert vlanset.ranges(vids) == [(5, 5), (100, 100), (200, 210)]
    assert vlanset.format_vids([]) == ""


@pytest.mark.parametrize("value, needle", [
    ("0", "outside 1-4094"), ("4095", "outside 1-4094"), ("10-5", "runs backwards"),
    ("100,90-110", "overlaps"), ("abc", "not a VLAN id"), (True, "not a VLAN id"),
    ("1-4095", "outside"), ({"a": 1}, "not a list"),
])
def test_errors(value, needle):
    with pytest.raises(PolicyError, match=needle) as err:
        vlanset.parse_vids(value, "bridges.br0.uplink_vids")
    assert "bridges.br0.uplink_vids" in str(err.value)
