import pytest

from embgraft.errors import ConfigError
from embgraft.text.normalise import unavailable_rules, variants


def test_variants_forward_then_inverse_in_order():
    assert list(variants("Ａb", ["nfkc", "lower"])) == [
        ("nfkc", "Ab"), ("lower", "ａb"), ("nfkc+lower", "ab"),
        ("widen", "Ａｂ"), ("upper", "ＡB"),
    ]


def test_t2s_and_s2t():
    if unavailable_rules(["t2s"]):
        pytest.skip("OpenCC not installed")
    assert list(variants("國", ["t2s"])) == [("t2s", "国")]
    assert list(variants("国", ["t2s"])) == [("s2t", "國")]
    assert ("nfkc+lower+t2s", "ab国") in list(variants("ＡＢ國", ["nfkc", "lower", "t2s"]))


def test_unknown_rule():
    with pytest.raises(ConfigError, match="unknown normalisation rule 'upper'"):
        list(variants("a", ["upper"]))
