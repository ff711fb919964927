from herald.subscriptions.suppression import address_key, normalise


def test_an_address_is_compared_trimmed_and_lower_cased() -> None:
    assert normalise("  Ann.Lee@Example.COM ") == "ann.lee@example.com"


def test_the_key_depends_on_the_address_and_the_instance_key() -> None:
    key = b"k" * 32
    assert address_key(key, "Ann@example.com") == address_key(key, " ann@EXAMPLE.com")
    assert address_key(key, "ann@example.com") != address_key(key, "ann.lee@example.com")
    assert address_key(key, "ann@example.com") != address_key(b"j" * 32, "ann@example.com")
    assert len(address_key(key, "ann@example.com")) == 32
