"""reconciler.dn: one unescaper for DN keys and for the OU names shown as team names."""
from reconciler.dn import escape_value, normalise_dn, ou_path, unescape_value


def test_unescape_value_reads_hex_pairs_as_utf8_and_a_backslash_as_the_next_character():
    assert unescape_value(r"R\26D \2A") == "R&D *"
    assert unescape_value(r"Sales\, EMEA") == "Sales, EMEA"
    assert unescape_value(r"J\C3\BCrgen") == "Jürgen"
    assert unescape_value("#0441") == "#0441"  # a BER-encoded value is compared as its hex text


def test_bytes_that_are_not_utf8_stay_apart_in_keys_and_are_replaced_in_names():
    assert normalise_dn(r"OU=a\FF,DC=x") != normalise_dn(r"OU=a\FE,DC=x")
    assert unescape_value(r"a\FF") == "a\udcff"
    assert unescape_value(r"a\FF", "replace") == "a\ufffd"
    assert ou_path(r"CN=x,OU=a\FF,DC=x", "DC=x") == ["a\ufffd"]


def test_escape_value_is_minimal_and_round_trips():
    for text in ["R&D *", " lead", "trail ", "a,b+c", "#hash", 'q"uote', "back\\slash"]:
        assert unescape_value(escape_value(text)) == text
    assert escape_value("R&D *") == "R&D *"
